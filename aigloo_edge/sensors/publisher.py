"""One publisher for every source: readings merged per device into the contract's payloads.

A station's fields arrive in pieces (a status packet has some, the next others): they are merged
and published together on `power/battery` and `power/solar`; each probe on
`env/<probe>/climate`. A reading goes out when it moves past its deadband, or every `heartbeat`
unchanged (so readers see it is fresh); `ts` is when it was taken, `source` who took it. A device
that is lost is reported stale, never republished as fresh: a probe's climate says `stale`, the
station's retained battery and solar are cleared until it reports again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace

from aigloo_edge.mqtt import Session
from aigloo_edge.payloads import Battery, Climate, Outputs, Payload, Solar
from aigloo_edge.sensors.readings import ClimateReading, Lost, Reading, StationReading
from aigloo_edge.sensors.settings import Deadbands

log = logging.getLogger(__name__)

STATION = "station"


@dataclass
class _Published:
    """What went out last for one topic, to apply deadbands and the heartbeat."""

    values: Mapping[str, object] = field(default_factory=dict)
    at: float = 0.0


class Publisher:
    def __init__(
        self,
        session: Session,
        deadbands: Deadbands,
        heartbeat_s: float,
        *,
        capacity_wh: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.topics = session.topics
        self.deadbands = deadbands
        self.heartbeat_s = heartbeat_s
        self.capacity_wh = capacity_wh
        self._clock = clock
        self.station = StationReading()
        self.probes: dict[str, ClimateReading] = {}
        self.lost: set[str] = set()
        self._published: dict[str, _Published] = {}

    async def put(self, reading: Reading) -> None:
        """The sink every source hands its readings to."""
        if isinstance(reading, Lost):
            await self._lose(reading)
        elif isinstance(reading, StationReading):
            self.station = _merge(self.station, reading)
            self.lost.discard(STATION)
            await self._publish_station(force=False)
        else:
            self.probes[reading.probe] = reading
            self.lost.discard(reading.probe)
            await self._publish_climate(reading, force=False)

    async def run(self) -> None:
        """Republish unchanged readings every heartbeat, so their `ts` shows they are fresh."""
        while True:
            await asyncio.sleep(min(self.heartbeat_s, 5.0))
            now = self._clock()
            if STATION not in self.lost and self._due(self.topics.battery(), now):
                await self._publish_station(force=True)
            for probe, reading in list(self.probes.items()):
                if probe not in self.lost and self._due(self.topics.env_climate(probe), now):
                    await self._publish_climate(replace(reading, at=now), force=True)

    def _due(self, topic: str, now: float) -> bool:
        last = self._published.get(topic)
        return last is not None and now - last.at >= self.heartbeat_s

    # --- station -------------------------------------------------------------------------

    async def _publish_station(self, *, force: bool) -> None:
        reading = self.station
        if reading.solar_w is not None:
            solar = Solar(watts=reading.solar_w, source=reading.source, ts=reading.at)
            await self._maybe(self.topics.solar(), solar, {"watts": reading.solar_w}, force)
        if reading.soc_pct is None or reading.watts_in is None or reading.watts_out is None:
            return  # not enough for a battery payload yet
        battery = Battery(
            soc_pct=reading.soc_pct,
            watts_in=reading.watts_in,
            watts_out=reading.watts_out,
            remaining_min=reading.remaining_min,
            capacity_wh=reading.capacity_wh or self.capacity_wh,
            outputs=Outputs(ac=reading.ac, dc=reading.dc, usb=reading.usb),
            source=reading.source,
            ts=reading.at,
        )
        values = {f.name: getattr(reading, f.name) for f in fields(reading) if f.name != "at"}
        await self._maybe(self.topics.battery(), battery, values, force)

    # --- probes --------------------------------------------------------------------------

    async def _publish_climate(self, reading: ClimateReading, *, force: bool) -> None:
        climate = Climate(
            probe=reading.probe,
            temperature_c=reading.temperature_c,
            humidity_pct=reading.humidity_pct,
            battery_pct=reading.battery_pct,
            rssi_dbm=reading.rssi_dbm,
            ts=reading.at,
        )
        values = {"temperature_c": reading.temperature_c, "humidity_pct": reading.humidity_pct}
        await self._maybe(self.topics.env_climate(reading.probe), climate, values, force)

    # --- shared --------------------------------------------------------------------------

    async def _maybe(
        self, topic: str, payload: Payload, values: Mapping[str, object], force: bool
    ) -> None:
        last = self._published.get(topic)
        quiet = last is not None and not self._moved(last.values, values)
        if not force and quiet and last is not None and self._clock() - last.at < self.heartbeat_s:
            return
        self._published[topic] = _Published(values, self._clock())
        await self.session.set_state(topic, payload)

    def _moved(self, before: Mapping[str, object], after: Mapping[str, object]) -> bool:
        for name, value in after.items():
            old = before.get(name)
            if isinstance(value, float) and isinstance(old, float):
                if abs(value - old) >= self._deadband(name):
                    return True
            elif value != old:
                return True
        return False

    def _deadband(self, name: str) -> float:
        d = self.deadbands
        if name == "soc_pct":
            return d.soc_pct
        if name.startswith("watts") or name == "solar_w":
            return d.watts
        if name == "temperature_c":
            return d.temperature_c
        if name == "humidity_pct":
            return d.humidity_pct
        return 1.0  # remaining minutes, capacity: a whole unit

    async def _lose(self, lost: Lost) -> None:
        if lost.device in self.lost:
            return
        self.lost.add(lost.device)
        log.warning("%s lost: %s", lost.device, lost.reason, extra={"device": lost.device})
        if lost.device == STATION:
            self.station = StationReading()  # nothing of it may come back as fresh
            for topic in (self.topics.battery(), self.topics.solar()):
                self._published.pop(topic, None)
                await self.session.clear_state(topic)
            return
        last = self.probes.pop(lost.device, None)
        if last is not None:
            topic = self.topics.env_climate(lost.device)
            self._published.pop(topic, None)
            stale = Climate(
                probe=lost.device, temperature_c=last.temperature_c, stale=True, ts=last.at
            )
            await self.session.set_state(topic, stale)


def _merge(before: StationReading, update: StationReading) -> StationReading:
    """Fields the update carries replace the old ones; the others are kept."""
    changes = {f.name: getattr(update, f.name) for f in fields(update)}
    kept = {name: value for name, value in changes.items() if value is not None}
    return replace(before, **kept)
