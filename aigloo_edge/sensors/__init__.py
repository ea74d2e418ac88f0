"""The sensor and actuator bridge (on the Mini): readings in from BLE, the EcoFlow cloud or any
MQTT topic; `power/battery`, `power/solar` and `env/<probe>/climate` out; station outputs and
fans driven from their command topics.

`ble` is the only module that imports bleak; sources produce `readings` types; `publisher`
merges them into the contract's payloads. Import the submodule you need: this package keeps its
import light.
"""
