"""EcoFlow RIVER 2 / DELTA 2 stations over Bluetooth LE (the encrypt-type-7 protocol).

Pure cores: `crc`, `frames` (outer frames, inner packets, reassembly), `crypto` (ECDH on
SECP160r1, session key, AES), `models`, `status` (heartbeat decoding) and `session` (the client
state machine). Thin shells: `driver` (one Link) and `source` (scan, connect, reconnect).
Protocol facts and their sources: docs/ecoflow-ble-protocol.md.
"""

from aigloo_edge.sensors.ecoflow.driver import StationConnection, Timeouts
from aigloo_edge.sensors.ecoflow.session import AuthRefusedError, ClientSession
from aigloo_edge.sensors.ecoflow.source import EcoflowBleSource, SourceStats

__all__ = [
    "AuthRefusedError",
    "ClientSession",
    "EcoflowBleSource",
    "SourceStats",
    "StationConnection",
    "Timeouts",
]
