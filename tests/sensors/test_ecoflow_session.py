"""EcoFlow BLE session, pure parts: the key exchange, session key, auth digest and status
decoding reproduce the public project's vectors (tests/data/ecoflow/vectors.json names each
source), and the client state machine replays the reference handshake byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.ecoflow.crypto import (
    KEY_TABLE_SIZE,
    CipherKey,
    EphemeralKey,
    auth_payload,
    key_table,
    session_key,
    temporary_key,
)
from aigloo_edge.sensors.ecoflow.frames import (
    FRAME_COMMAND,
    FRAME_PROTOCOL,
    Packet,
    decode_frame,
    decode_packet,
    encode_frame,
    encode_packet,
)
from aigloo_edge.sensors.ecoflow.models import DELTA_2_MAX, RIVER_2, model_for
from aigloo_edge.sensors.ecoflow.session import (
    Authenticated,
    AuthRefusedError,
    ClientSession,
    Phase,
    Step,
)
from aigloo_edge.sensors.ecoflow.status import StatusDecoder
from aigloo_edge.sensors.readings import StationReading

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "ecoflow" / "vectors.json").read_text()
)
ECDH = VECTORS["ecdh"]
AUTH = VECTORS["auth"]
SESSION = CipherKey(bytes.fromhex(ECDH["session_key"]), bytes.fromhex(ECDH["iv"]))
PEER_PUBLIC = bytes.fromhex(ECDH["public_keys"]["1"])
PEER_REPLY = encode_frame(FRAME_COMMAND, b"\x01\x00\x00" + PEER_PUBLIC)
KEY_INFO_REPLY = bytes.fromhex(ECDH["key_info_reply"])


def from_station(packet: Packet) -> bytes:
    """A packet as the station sends it, encrypted with the vectors' session key."""
    return encode_frame(FRAME_PROTOCOL, SESSION.encrypt(encode_packet(packet)))


def sent_packet(frame: bytes) -> Packet:
    """A frame the client wrote, decrypted with the vectors' session key."""
    return decode_packet(SESSION.decrypt(decode_frame(frame).payload))


def feed(session: ClientSession, *chunks: bytes) -> Step:
    total = Step()
    for chunk in chunks:
        step = session.receive(chunk, at=1.0)
        total.writes += step.writes
        total.events += step.events
    return total


def reference_session() -> ClientSession:
    """The reference test's client: scalar 130, the synthetic serial and user id."""
    return ClientSession(
        AUTH["serial"], AUTH["user_id"], RIVER_2, key=EphemeralKey.from_scalar(130)
    )


def authenticated_session() -> ClientSession:
    session = reference_session()
    session.start()
    feed(session, PEER_REPLY, KEY_INFO_REPLY, from_station(Packet(0x35, 0x21, 0x35, 0x89)))
    feed(session, from_station(Packet(0x35, 0x21, 0x35, 0x86, b"\x00")))
    assert session.ready
    return session


@pytest.mark.parametrize("scalar", list(ECDH["public_keys"]))
def test_public_keys_of_fixed_scalars_match_the_reference(scalar: str) -> None:
    """X || Y, 40 bytes, no 04 prefix, leading zeros kept (scalar 130), 161-bit n - 1."""
    key = EphemeralKey.from_scalar(int(scalar, 0))
    assert key.public_bytes().hex() == ECDH["public_keys"][scalar]


def test_shared_secret_gives_the_reference_temporary_key_and_iv() -> None:
    """ECDH(130, G) keeps the X coordinate's leading zero; key = shared[:16], IV = MD5."""
    shared = EphemeralKey.from_scalar(130).shared_secret(PEER_PUBLIC)
    assert len(shared) == 20
    temporary = temporary_key(shared)
    assert temporary.key.hex() == ECDH["initial_key"]
    assert temporary.iv.hex() == ECDH["iv"]


def test_key_info_reply_gives_the_reference_session_key() -> None:
    """The key-info reply decrypts to sRand 00..0f and seed 02 01; the table at pos 32 and
    MD5 give the reference session key."""
    temporary = CipherKey(bytes.fromhex(ECDH["initial_key"]), bytes.fromhex(ECDH["iv"]))
    plain = temporary.decrypt(decode_frame(KEY_INFO_REPLY).payload[1:33])
    assert plain.hex() == ECDH["key_info_plaintext"]
    derived = session_key(plain[:16], plain[16:18], temporary.iv)
    assert derived == SESSION


def test_key_table_matches_the_documented_size_and_ends() -> None:
    """The shipped table is 65 280 bytes with the documented first and last bytes."""
    table = key_table()
    vector = VECTORS["key_table"]
    assert len(table) == KEY_TABLE_SIZE == vector["size"]
    assert table[:32].hex() == vector["first_32"]
    assert table[-18:].hex() == vector["last_18"]


def test_auth_payload_is_the_reference_md5() -> None:
    """Upper-case hex MD5 of user id then serial, as 32 ASCII bytes."""
    assert auth_payload(AUTH["user_id"], AUTH["serial"]) == AUTH["payload"].encode()


def test_invalid_station_public_keys_are_refused() -> None:
    """An all-zero key (the reference's abort case) or a point off the curve is a SensorError."""
    key = EphemeralKey.from_scalar(130)
    with pytest.raises(SensorError, match="invalid public key"):
        key.shared_secret(bytes(40))
    with pytest.raises(SensorError, match="invalid public key"):
        key.shared_secret(PEER_PUBLIC[:-1] + bytes([PEER_PUBLIC[-1] ^ 1]))


def test_session_replays_the_reference_handshake() -> None:
    """The reference test's notifications (stale opcodes, an undersized reply, fragments and
    repeated key replies) lead to exactly its writes: public key, key-info request, then the
    encrypted auth status and auth packets."""
    session = reference_session()
    assert session.start().hex() == ECDH["public_request"]
    step = feed(
        session,
        encode_frame(FRAME_COMMAND, b"\x02" + bytes(32)),
        encode_frame(FRAME_COMMAND, b"\x01\x00\x00"),
        PEER_REPLY[:13],
        PEER_REPLY[13:],
        PEER_REPLY,
        KEY_INFO_REPLY[:17],
        KEY_INFO_REPLY[17:],
        PEER_REPLY,
    )
    assert step.writes[0].hex() == VECTORS["derived"]["key_info_request"]
    assert encode_packet(sent_packet(step.writes[1])).hex() == VECTORS["derived"]["auth_status"]
    assert len(step.writes) == 2
    assert session.phase is Phase.AUTH_STATUS
    step = feed(session, from_station(Packet(0x35, 0x21, 0x35, 0x89, b"\x00")))
    assert encode_packet(sent_packet(step.writes[0])).hex() == VECTORS["derived"]["auth"]
    step = feed(session, from_station(Packet(0x35, 0x21, 0x35, 0x86, b"\x00")))
    assert step.events == [Authenticated()]
    assert session.ready


def test_ac_command_encrypts_to_the_documented_frame() -> None:
    """AC on for a RIVER 2 (to the MPPT, 0x05) is the documented encrypted frame."""
    session = authenticated_session()
    frame = session.command("ac", True)
    assert frame.hex() == VECTORS["derived"]["ac_on_encrypted_with_session_key"]
    assert (
        encode_packet(sent_packet(session.command("dc", False))).hex()
        == (VECTORS["derived"]["dc_off"])
    )


@pytest.mark.parametrize(
    ("code", "cause", "permanent"),
    [
        (0x06, "wrong user id", True),
        (0x03, "user id has the wrong length", True),
        (0x07, "maximum number of bound devices", True),
        (0x01, "try again", False),
        (0x02, "upgrade is in progress", False),
        (0x42, "unknown error", True),
    ],
)
def test_auth_error_codes_name_their_cause(code: int, cause: str, permanent: bool) -> None:
    """The station's verdict becomes AuthRefusedError naming the cause (never the user id)."""
    session = reference_session()
    session.start()
    feed(session, PEER_REPLY, KEY_INFO_REPLY, from_station(Packet(0x35, 0x21, 0x35, 0x89)))
    with pytest.raises(AuthRefusedError, match=cause) as caught:
        feed(session, from_station(Packet(0x35, 0x21, 0x35, 0x86, bytes([code]))))
    assert caught.value.permanent is permanent
    assert AUTH["user_id"] not in str(caught.value)
    assert AUTH["serial"] in str(caught.value)


def test_packets_failing_their_checks_are_counted_not_fatal() -> None:
    """A decrypted packet with a bad CRC is counted; the session stays authenticated."""
    session = authenticated_session()
    plain = bytearray(encode_packet(Packet(0x02, 0x21, 0x20, 0x02, bytes(40))))
    plain[-1] ^= 0xFF
    step = feed(session, encode_frame(FRAME_PROTOCOL, SESSION.encrypt(bytes(plain))))
    assert step.events == []
    assert session.stats.packet_errors == 1
    assert session.ready


def test_status_before_authentication_is_ignored() -> None:
    """Heartbeats that arrive before the verdict produce no readings."""
    session = reference_session()
    session.start()
    feed(session, PEER_REPLY, KEY_INFO_REPLY)
    heartbeat = Packet(0x02, 0x21, 0x20, 0x02, bytes(100))
    assert feed(session, from_station(heartbeat)).events == []


def merged(readings: list[StationReading]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for reading in readings:
        for name in ("soc_pct", "watts_in", "watts_out", "solar_w", "remaining_min", "ac", "dc"):
            if getattr(reading, name) is not None:
                values[name] = getattr(reading, name)
        if reading.usb is not None:
            values["usb"] = reading.usb
    return values


def test_captured_delta2_max_status_decodes_to_the_reference_values() -> None:
    """The six captured DELTA 2 Max heartbeats give the reference test's values: SoC 75.44,
    5601 min to empty (not charging), AC on, USB off, 12 V off, 0 W in and out."""
    decoder = StatusDecoder(model_for("R351TEST1234"), capacity_wh=2048.0)
    readings = []
    for captured in VECTORS["delta2_max_packets"]["packets"]:
        reading = decoder.decode(decode_packet(bytes.fromhex(captured["hex"])), at=5.0)
        if reading is not None:
            readings.append(reading)
    expected = VECTORS["delta2_max_packets"]["expected"]
    assert merged(readings) == {
        "soc_pct": expected["soc_pct"],
        "remaining_min": expected["remaining_discharging_min"],
        "watts_in": expected["watts_in"],
        "watts_out": expected["watts_out"],
        "solar_w": 0.0,
        "ac": expected["ac"],
        "dc": expected["dc"],
        "usb": expected["usb"],
    }
    assert {(r.source, r.at, r.capacity_wh) for r in readings} == {("ecoflow_ble", 5.0, 2048.0)}


def test_keepalive_and_unknown_packets_give_no_reading() -> None:
    """The 0x35/0x20 keepalive and the extra-battery kit packet carry nothing we report."""
    decoder = StatusDecoder(DELTA_2_MAX)
    keepalive = VECTORS["delta2_max_packets"]["keepalive"]
    ping = Packet(0x35, 0x20, 0x35, 0x20, bytes.fromhex(keepalive["payload"]))
    kit = decode_packet(bytes.fromhex(VECTORS["delta2_max_packets"]["packets"][1]["hex"]))
    assert decoder.decode(ping, at=1.0) is None
    assert decoder.decode(kit, at=1.0) is None


def test_short_heartbeats_give_only_the_fields_they_carry() -> None:
    """A PD heartbeat cut after the watts gives watts but no 12 V or USB state."""
    decoder = StatusDecoder(model_for("R331ZEB4TEST0001"))  # DELTA 2: USB and 12 V from PD
    payload = bytearray(20)
    payload[15:19] = (35).to_bytes(2, "little") + (120).to_bytes(2, "little")
    reading = decoder.decode(Packet(0x02, 0x21, 0x20, 0x02, bytes(payload)), at=1.0)
    assert reading == StationReading(watts_in=120.0, watts_out=35.0, at=1.0)


def test_unknown_serial_prefixes_are_refused_by_name() -> None:
    """A serial of a model we do not speak to is a SensorError listing the supported ones."""
    with pytest.raises(SensorError, match="R621"):
        model_for("Z999ABCD12345678")
