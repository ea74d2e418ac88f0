"""Build the sources a `sensors:` section enables (imports only what it needs: bleak, httpx)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aigloo_edge.mqtt import Session
from aigloo_edge.sensors.bridge import Source
from aigloo_edge.sensors.readings import OutputSwitch
from aigloo_edge.sensors.settings import SensorsConfig


def build_sources(
    config: SensorsConfig, session: Session, clock: Callable[[], float] = time.time
) -> tuple[dict[str, Source], OutputSwitch | None]:
    """The enabled sources by name, and the one that switches the station's outputs."""
    sources: dict[str, Source] = {}
    switch: OutputSwitch | None = None
    if config.thermopro is not None:
        from aigloo_edge.sensors.ble import BleakScannerSource
        from aigloo_edge.sensors.thermopro import ThermoProSource

        sources["thermopro"] = ThermoProSource(config.thermopro, BleakScannerSource(), clock)
    if config.ecoflow_ble is not None:
        from aigloo_edge.sensors.ble import BleakConnector, BleakScannerSource
        from aigloo_edge.sensors.ecoflow.source import EcoflowBleSource

        station = EcoflowBleSource(
            config.ecoflow_ble, BleakConnector(), BleakScannerSource(), clock
        )
        sources["ecoflow_ble"], switch = station, station
    if config.ecoflow_cloud is not None:
        from aigloo_edge.sensors.ecoflow_cloud import EcoflowCloudSource

        cloud = EcoflowCloudSource(config.ecoflow_cloud, clock)
        sources["ecoflow_cloud"], switch = cloud, cloud
    if config.mqtt_map is not None:
        from aigloo_edge.sensors.mqtt_map import MqttMapSource

        sources["mqtt_map"] = MqttMapSource(config.mqtt_map, session, clock)
    return sources, switch
