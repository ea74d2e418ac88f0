"""The client side of the protocol as a pure state machine: notification bytes in, bytes to
write and events out. No I/O and no clock: the driver passes the time readings are stamped with.

Handshake (cleartext frames): our public key -> the station's; `02` -> the encrypted key info,
from which the session key follows. Then, encrypted: auth status (0x35/0x89) -> auth with the
MD5 of user id and serial (0x35/0x86) -> the station's verdict; after `00` it pushes heartbeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from aigloo_edge.errors import SensorError
from aigloo_edge.sensors.ecoflow.crypto import (
    PUBLIC_KEY_SIZE,
    CipherKey,
    EphemeralKey,
    auth_payload,
    session_key,
    temporary_key,
)
from aigloo_edge.sensors.ecoflow.frames import (
    FRAME_COMMAND,
    FRAME_PROTOCOL,
    FrameError,
    Packet,
    Reassembler,
    decode_packet,
    encode_frame,
    encode_packet,
)
from aigloo_edge.sensors.ecoflow.models import APP, IOT, Model, output_command
from aigloo_edge.sensors.ecoflow.status import StatusDecoder
from aigloo_edge.sensors.readings import OutputName, StationReading

AUTH_STATUS = (IOT, 0x89)
AUTH = (IOT, 0x86)
KEEPALIVE = (IOT, 0x20)
AUTH_ERRORS = {
    0x01: "general error, try again",
    0x02: "a firmware (OTA) upgrade is in progress",
    0x03: "the user id has the wrong length",
    0x04: "the station's IoT module is in an error state (it needs an IoT reset in the app)",
    0x05: "the station could not read its user key",
    0x06: "wrong user id (another account, or an account of another region)",
    0x07: "the station has reached its maximum number of bound devices",
}
TRANSIENT_AUTH_ERRORS = frozenset({0x01, 0x02})


class AuthRefusedError(SensorError):
    """The station answered the authentication with an error code."""

    def __init__(self, serial: str, code: int | None) -> None:
        self.code = code
        cause = AUTH_ERRORS.get(code, "unknown error") if code is not None else "empty answer"
        shown = "none" if code is None else f"{code:#04x}"
        super().__init__(f"EcoFlow station {serial} refused authentication: {cause} (code {shown})")

    @property
    def permanent(self) -> bool:
        """True when trying again cannot help: the config or the station needs a change."""
        return self.code not in TRANSIENT_AUTH_ERRORS


class Phase(Enum):
    KEY_EXCHANGE = "waiting for the station's public key"
    KEY_INFO = "waiting for the key info"
    AUTH_STATUS = "waiting for the auth status"
    AUTH = "waiting for the authentication verdict"
    READY = "authenticated"


@dataclass(frozen=True, slots=True)
class Authenticated:
    pass


@dataclass(frozen=True, slots=True)
class StatusReceived:
    reading: StationReading


Event = Authenticated | StatusReceived


@dataclass
class Step:
    """What one notification led to: frames to write, events to act on."""

    writes: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class SessionStats:
    packet_errors: int = 0  # decrypted packets that failed their CRC or layout checks
    ignored_frames: int = 0  # stale handshake replies, frames out of turn


class ClientSession:
    def __init__(
        self,
        serial: str,
        user_id: str,
        model: Model,
        *,
        key: EphemeralKey | None = None,
        capacity_wh: float | None = None,
    ) -> None:
        self.serial = serial
        self.model = model
        self.phase = Phase.KEY_EXCHANGE
        self.stats = SessionStats()
        self.reassembler = Reassembler()
        self._auth = auth_payload(user_id, serial)  # the user id itself is not kept
        self._key = key or EphemeralKey.generate()
        self._decoder = StatusDecoder(model, capacity_wh)
        self._temporary: CipherKey | None = None
        self._cipher: CipherKey | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    def start(self) -> bytes:
        """The first frame: `01 00` and our public key."""
        return encode_frame(FRAME_COMMAND, b"\x01\x00" + self._key.public_bytes())

    def command(self, output: OutputName, on: bool) -> bytes:
        if not self.ready:
            raise SensorError(f"EcoFlow station {self.serial} is not authenticated yet")
        return self._encrypted(output_command(self.model, output, on))

    def receive(self, chunk: bytes, at: float) -> Step:
        """Feed one notification; raises SensorError when the handshake cannot go on."""
        step = Step()
        for frame in self.reassembler.feed(chunk):
            if frame.frame_type == FRAME_COMMAND and self._cipher is None:
                self._on_handshake(frame.payload, step)
            elif frame.frame_type == FRAME_PROTOCOL and self._cipher is not None:
                self._on_packet(self._cipher.decrypt(frame.payload), at, step)
            else:  # e.g. a handshake reply repeated after the session key exists
                self.stats.ignored_frames += 1
        return step

    def _on_handshake(self, payload: bytes, step: Step) -> None:
        if self.phase is Phase.KEY_EXCHANGE and payload[:1] == b"\x01" and len(payload) >= 3:
            self._on_public_key(payload, step)
        elif self.phase is Phase.KEY_INFO and payload[:1] == b"\x02" and len(payload) >= 33:
            self._on_key_info(payload[1:33], step)
        else:  # an undersized or out-of-turn reply: the reference ignores these too
            self.stats.ignored_frames += 1

    def _on_public_key(self, payload: bytes, step: Step) -> None:
        curve = payload[2]
        if 1 <= curve <= 4:  # larger curves (52-64-byte keys); any other value means SECP160r1
            raise SensorError(f"EcoFlow station {self.serial} uses curve type {curve}: unsupported")
        peer = payload[3 : 3 + PUBLIC_KEY_SIZE]
        if len(peer) < PUBLIC_KEY_SIZE:
            self.stats.ignored_frames += 1
            return
        self._temporary = temporary_key(self._key.shared_secret(peer))
        self.phase = Phase.KEY_INFO
        step.writes.append(encode_frame(FRAME_COMMAND, b"\x02"))

    def _on_key_info(self, ciphertext: bytes, step: Step) -> None:
        assert self._temporary is not None  # set with the phase
        plain = self._temporary.decrypt(ciphertext)
        if len(plain) < 18:
            raise SensorError(f"EcoFlow station {self.serial} sent unreadable key info")
        self._cipher = session_key(plain[:16], plain[16:18], self._temporary.iv)
        self.phase = Phase.AUTH_STATUS
        step.writes.append(self._encrypted(Packet(APP, IOT, *AUTH_STATUS)))

    def _on_packet(self, plaintext: bytes, at: float, step: Step) -> None:
        try:
            packet = decode_packet(plaintext, xor=self.model.xor)
        except FrameError:
            self.stats.packet_errors += 1
            return
        command = (packet.cmd_set, packet.cmd_id)
        if packet.src == IOT and command == AUTH_STATUS and self.phase is Phase.AUTH_STATUS:
            self.phase = Phase.AUTH
            step.writes.append(self._encrypted(Packet(APP, IOT, *AUTH, payload=self._auth)))
        elif packet.src == IOT and command == AUTH and self.phase is Phase.AUTH:
            self._on_verdict(packet.payload, step)
        elif self.ready and command != KEEPALIVE:
            reading = self._decoder.decode(packet, at)
            if reading is not None:
                step.events.append(StatusReceived(reading))

    def _on_verdict(self, payload: bytes, step: Step) -> None:
        code = payload[0] if payload else None
        if code != 0:
            raise AuthRefusedError(self.serial, code)
        self.phase = Phase.READY
        step.events.append(Authenticated())

    def _encrypted(self, packet: Packet) -> bytes:
        assert self._cipher is not None  # callers check the phase
        packet = replace(packet, version=self.model.packet_version)
        return encode_frame(FRAME_PROTOCOL, self._cipher.encrypt(encode_packet(packet)))
