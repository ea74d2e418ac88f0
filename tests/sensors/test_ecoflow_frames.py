"""EcoFlow BLE framing: the CRCs, outer `5A 5A` frames and inner `AA` packets reproduce the
public project's byte vectors (tests/data/ecoflow/vectors.json names each source), round-trip,
and reassemble from notifications cut anywhere while garbage, bad CRCs and oversize chunks are
dropped and counted."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigloo_edge.sensors.ecoflow.crc import crc8, crc16
from aigloo_edge.sensors.ecoflow.frames import (
    FRAME_COMMAND,
    FRAME_PROTOCOL,
    MAX_BUFFER,
    MAX_FRAME,
    Frame,
    FrameError,
    Packet,
    Reassembler,
    decode_frame,
    decode_packet,
    encode_frame,
    encode_packet,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "ecoflow" / "vectors.json").read_text()
)
ECDH = VECTORS["ecdh"]
CAPTURED = VECTORS["delta2_max_packets"]["packets"]
DERIVED = VECTORS["derived"]


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(reassembler: Reassembler, pieces: list[bytes]) -> list[Frame]:
    return [frame for piece in pieces for frame in reassembler.feed(piece)]


frames_strategy = st.lists(
    st.builds(
        Frame,
        st.sampled_from([FRAME_COMMAND, FRAME_PROTOCOL]),
        st.binary(min_size=0, max_size=300),
    ),
    min_size=1,
    max_size=5,
)


def test_crc_check_values_match_the_catalogue() -> None:
    """CRC-16/ARC and CRC-8 (poly 0x07) give their catalogue check values for "123456789"."""
    vector = VECTORS["crc"]
    data = vector["input_ascii"].encode()
    assert crc16(data) == int(vector["crc16_arc"], 16)
    assert crc8(data) == int(vector["crc8"], 16)


@pytest.mark.parametrize("captured", CAPTURED, ids=lambda c: f"{c['src']}-{c['cmd_set']}")
def test_captured_packets_pass_both_crcs_and_reencode_byte_for_byte(
    captured: dict[str, Any],
) -> None:
    """Each captured DELTA 2 Max packet decodes (CRC-8 header, CRC-16 body) and re-encodes
    to the same bytes, keeping the device's seq, product and unknown bytes."""
    raw = bytes.fromhex(captured["hex"])
    packet = decode_packet(raw)
    assert (packet.src, packet.cmd_set, packet.cmd_id) == (
        captured["src"],
        captured["cmd_set"],
        captured["cmd_id"],
    )
    assert len(raw) == 18 + len(packet.payload)
    assert encode_packet(packet) == raw


def test_public_key_request_frame_matches_the_reference() -> None:
    """The key-exchange frame (`01 00` + public key of scalar 130) is the reference's bytes."""
    payload = b"\x01\x00" + bytes.fromhex(ECDH["public_keys"]["130"])
    assert encode_frame(FRAME_COMMAND, payload).hex() == ECDH["public_request"]
    assert decode_frame(bytes.fromhex(ECDH["public_request"])) == Frame(FRAME_COMMAND, payload)


def test_key_info_request_and_reply_frames_decode() -> None:
    """The key-info request is `5a5a000103000286c2`; the reference reply parses as type 0."""
    assert encode_frame(FRAME_COMMAND, b"\x02").hex() == DERIVED["key_info_request"]
    reply = decode_frame(bytes.fromhex(ECDH["key_info_reply"]))
    assert reply.frame_type == FRAME_COMMAND
    assert reply.payload[0] == 0x02
    assert len(reply.payload) == 33


@pytest.mark.parametrize(
    ("name", "packet"),
    [
        ("auth_status", Packet(0x21, 0x35, 0x35, 0x89)),
        ("auth", Packet(0x21, 0x35, 0x35, 0x86, VECTORS["auth"]["payload"].encode())),
        ("ac_on_dst05", Packet(0x21, 0x05, 0x20, 0x42, b"\x01" + b"\xff" * 6)),
        ("ac_off_dst05", Packet(0x21, 0x05, 0x20, 0x42, b"\x00" + b"\xff" * 6)),
        ("dc_on", Packet(0x21, 0x05, 0x20, 0x51, b"\x01")),
        ("dc_off", Packet(0x21, 0x05, 0x20, 0x51, b"\x00")),
    ],
)
def test_client_packets_match_the_documented_bytes(name: str, packet: Packet) -> None:
    """Our V2 auth and command packets are the bytes the protocol notes derive."""
    assert encode_packet(packet).hex() == DERIVED[name]


def test_corrupt_packets_are_rejected_with_the_failing_check() -> None:
    """A flipped header bit fails the CRC-8, a flipped payload bit the CRC-16."""
    raw = bytearray(bytes.fromhex(CAPTURED[3]["hex"]))
    header = bytearray(raw)
    header[2] ^= 0x01
    with pytest.raises(FrameError, match="CRC-8"):
        decode_packet(bytes(header))
    body = bytearray(raw)
    body[20] ^= 0x01
    with pytest.raises(FrameError, match="CRC-16"):
        decode_packet(bytes(body))


packets_strategy = st.builds(
    Packet,
    src=st.integers(0, 255),
    dst=st.integers(0, 255),
    cmd_set=st.integers(0, 255),
    cmd_id=st.integers(0, 255),
    payload=st.binary(max_size=200),
    version=st.sampled_from([2, 3]),
    seq=st.binary(min_size=4, max_size=4),
    product=st.integers(0, 255),
    reserved=st.binary(min_size=2, max_size=2),
)


@given(packet=packets_strategy, xor=st.booleans())
def test_packets_round_trip(packet: Packet, xor: bool) -> None:
    """Any packet (V2 or V3, XORed or not) decodes back to itself."""
    assert decode_packet(encode_packet(packet, xor=xor), xor=xor) == packet


def test_xor_scrambles_the_payload_on_the_wire() -> None:
    """With XOR the payload bytes on the wire differ, and decoding without XOR does not undo it."""
    packet = Packet(0x02, 0x21, 0x20, 0x02, b"\x10\x20\x30", seq=b"\x5a\x00\x00\x00")
    wire = encode_packet(packet, xor=True)
    assert wire[16:19] == bytes([0x10 ^ 0x5A, 0x20 ^ 0x5A, 0x30 ^ 0x5A])
    assert decode_packet(wire).payload != packet.payload


@given(frames=frames_strategy, cuts=st.lists(st.integers(0, 2000), max_size=40))
def test_reassembly_across_arbitrary_chunk_boundaries(frames: list[Frame], cuts: list[int]) -> None:
    """Frames cut at any points come out whole, in order, with nothing counted as bad."""
    stream = b"".join(encode_frame(f.frame_type, f.payload) for f in frames)
    reassembler = Reassembler()
    assert feed_all(reassembler, chunks(stream, cuts)) == frames
    assert reassembler.stats.crc_errors == 0
    assert reassembler.stats.discarded_bytes == 0


@given(
    frames=frames_strategy,
    noise=st.lists(st.binary(max_size=40), min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 3000), max_size=40),
)
def test_garbage_between_frames_is_discarded_without_losing_frames(
    frames: list[Frame], noise: list[bytes], cuts: list[int]
) -> None:
    """Random bytes before and between frames never crash and never cost a valid frame
    (noise is `5A`-free so it cannot pose as a frame that swallows the next one)."""
    clean = [n.replace(b"\x5a", b"\x00") for n in noise]
    stream = b"".join(
        clean[i % len(clean)] + encode_frame(f.frame_type, f.payload) for i, f in enumerate(frames)
    )
    reassembler = Reassembler()
    assert feed_all(reassembler, chunks(stream, cuts)) == frames


@given(data=st.lists(st.binary(max_size=64), max_size=30))
def test_arbitrary_bytes_never_crash_the_reassembler(data: list[bytes]) -> None:
    """Whatever arrives, feeding it only ever returns frames that passed their CRC."""
    reassembler = Reassembler()
    for frame in feed_all(reassembler, data):
        assert decode_frame(encode_frame(frame.frame_type, frame.payload)) == frame


def test_crc_failures_are_counted_and_dropped() -> None:
    """A frame with a bad CRC is dropped and counted; the good frames around it come through."""
    good = encode_frame(FRAME_PROTOCOL, b"status-1")
    bad = bytearray(encode_frame(FRAME_PROTOCOL, b"status-2"))
    bad[-1] ^= 0xFF
    after = encode_frame(FRAME_PROTOCOL, b"status-3")
    reassembler = Reassembler()
    frames = feed_all(reassembler, chunks(good + bytes(bad) + after, [5, 17, 23, 31]))
    assert [f.payload for f in frames] == [b"status-1", b"status-3"]
    assert reassembler.stats.crc_errors == 1
    assert reassembler.stats.frames == 2


def test_a_false_prefix_waits_for_its_tail_then_gives_way_to_a_real_frame() -> None:
    """`5A 5A` claiming a long frame holds the stream only until a complete, CRC-valid frame
    is seen after it; that frame is then delivered."""
    false_start = b"\x5a\x5a\x10\x01\xff\x01"  # claims a 511-byte frame
    real = encode_frame(FRAME_PROTOCOL, b"heartbeat")
    reassembler = Reassembler()
    assert reassembler.feed(false_start) == []
    assert reassembler.feed(real) == [Frame(FRAME_PROTOCOL, b"heartbeat")]


def test_a_5a5a_inside_a_frame_does_not_cut_it() -> None:
    """A payload that contains `5A 5A` (ciphertext can) arrives whole even when cut there."""
    payload = b"abc\x5a\x5a\x10\x01\x08\x00defgh"
    frame = encode_frame(FRAME_PROTOCOL, payload)
    cut = frame.index(b"\x5a\x5a", 2)
    reassembler = Reassembler()
    assert feed_all(reassembler, [frame[: cut + 3], frame[cut + 3 :]]) == [
        Frame(FRAME_PROTOCOL, payload)
    ]


def test_oversize_input_is_dropped_and_counted() -> None:
    """A chunk larger than the buffer bound is dropped whole and counted; the next frame still
    comes through."""
    reassembler = Reassembler()
    assert reassembler.feed(encode_frame(FRAME_PROTOCOL, bytes(MAX_BUFFER))) == []
    assert reassembler.stats.oversize_drops == 1
    frame = encode_frame(FRAME_PROTOCOL, b"after")
    assert reassembler.feed(frame) == [Frame(FRAME_PROTOCOL, b"after")]


@given(data=st.lists(st.binary(max_size=MAX_BUFFER), max_size=12))
def test_the_buffer_stays_under_one_frame(data: list[bytes]) -> None:
    """Whatever is fed, at most one incomplete frame's worth of bytes is held afterwards."""
    reassembler = Reassembler()
    for chunk in data:
        reassembler.feed(b"\x5a\x5a\x10\x01\xf0\x07" + chunk)  # a 2 030-byte frame claim
        assert reassembler.buffered < MAX_FRAME


def test_lengths_past_the_frame_bound_are_skipped_at_once() -> None:
    """A length field over the frame bound is treated as garbage, not waited for."""
    reassembler = Reassembler()
    frame = encode_frame(FRAME_COMMAND, b"\x02")
    assert reassembler.feed(b"\x5a\x5a\x00\x01\xff\xff" + frame) == [Frame(FRAME_COMMAND, b"\x02")]
    assert reassembler.stats.discarded_bytes == 6
