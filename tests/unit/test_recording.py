"""The recording format (old lines still read), the replay pacing and the base-topic move."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigloo_edge.errors import TopicError
from aigloo_edge.recording import (
    BadLine,
    BaseMove,
    Pacer,
    Recorded,
    ReplayReport,
    encode_line,
    read_recording,
    read_recordings,
    summary_lines,
    write_recording,
)

T0 = 1_800_000_000.0


def test_a_line_from_before_qos_was_recorded_still_reads(tmp_path: Path) -> None:
    """An old line (no `qos`, no `retain`) reads as QoS 1, not retained, no expiry."""
    path = tmp_path / "old.jsonl"
    path.write_text('{"t": 1764350000.25, "topic": "aigloo/power/solar", "payload": "{}"}\n')
    (message,) = read_recording(path)
    assert message == Recorded(1764350000.25, "aigloo/power/solar", b"{}", retain=False, qos=1)
    assert isinstance(message, Recorded)
    assert message.expiry_s is None


@pytest.mark.parametrize(
    "message",
    [
        Recorded(T0, "aigloo/a", b'{"soc_pct": 57, "note": "\xc3\xbc \xe2\x9c\x93"}', retain=True),
        Recorded(T0, "aigloo/b", bytes(range(256)), qos=0),
        Recorded(T0, "aigloo/c", b"", retain=True),
        Recorded(T0, "aigloo/d", "two\nlines \u2028 and a separator".encode(), qos=2),
        Recorded(T0, "aigloo/e", b"online", retain=True, expiry_s=90.0),
    ],
    ids=["utf8-json", "binary", "empty-clear", "newlines", "expiry"],
)
def test_every_message_round_trips_through_one_line(tmp_path: Path, message: Recorded) -> None:
    """Payload bytes (UTF-8 or not, empty, with newlines), QoS, retain and expiry survive a
    line, and a line is always exactly one line."""
    text = encode_line(message)
    assert "\n" not in text
    path = tmp_path / "r.jsonl"
    write_recording(path, [message])
    assert list(read_recording(path)) == [message]
    assert ("payload_b64" in text) == (message.topic == "aigloo/b")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"t": 1, "topic": "a", "payload": "x", "qos": 3}', "'qos' must be 0, 1 or 2, not 3"),
        ('{"t": 1, "topic": "a", "payload": "x", "qos": true}', "'qos' must be 0, 1 or 2"),
        ('{"t": 1, "topic": "a", "payload": "x", "expiry_s": -1}', "'expiry_s' must be"),
        ('{"t": 1, "topic": "a", "payload_b64": "***"}', "payload_b64 is not base64"),
        ('{"t": "1", "topic": "a", "payload": "x"}', "needs a number 't'"),
    ],
)
def test_a_bad_field_makes_a_bad_line_with_file_and_number(
    tmp_path: Path, line: str, reason: str
) -> None:
    """Each malformed line is a BadLine naming its file and line; the good lines around it read."""
    path = tmp_path / "r.jsonl"
    good = encode_line(Recorded(T0, "aigloo/ok", b"1"))
    path.write_text(f"{good}\n{line}\n{good}\n")
    first, bad, last = read_recording(path)
    assert isinstance(first, Recorded)
    assert isinstance(last, Recorded)
    assert isinstance(bad, BadLine)
    assert bad.describe().startswith(f"{path}:2: {reason}")


def test_several_files_read_as_one_and_bad_lines_name_their_file(tmp_path: Path) -> None:
    """read_recordings chains files in the order given; a bad line's number is within its file."""
    older, newer = tmp_path / "r.jsonl.1", tmp_path / "r.jsonl"
    write_recording(older, [Recorded(T0, "aigloo/a", b"1")])
    newer.write_text("not json\n" + encode_line(Recorded(T0 + 1, "aigloo/b", b"2")) + "\n")
    items = list(read_recordings([older, newer]))
    assert [getattr(i, "topic", None) for i in items] == ["aigloo/a", None, "aigloo/b"]
    assert isinstance(items[1], BadLine)
    assert items[1].describe() == f"{newer}:1: not JSON: Expecting value"


class FakeTime:
    """A clock that only the pacer's sleeps (and simulated publishing) move."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


async def paced(speed: float | None, recorded: list[float], publish_s: float = 0.0) -> FakeTime:
    fake = FakeTime()
    pacer = Pacer(speed, clock=fake.clock, sleep=fake.sleep)
    for t in recorded:
        await pacer.wait_until(t)
        fake.now += publish_s
    return fake


async def test_speed_four_waits_a_quarter_of_each_recorded_gap() -> None:
    """--speed 4: gaps of 4 s, 8 s and 2 s become waits of 1 s, 2 s and 0.5 s."""
    fake = await paced(4, [T0, T0 + 4, T0 + 12, T0 + 14])
    assert fake.sleeps == pytest.approx([1.0, 2.0, 0.5])


async def test_pacing_does_not_drift_with_publishing_time() -> None:
    """Time spent publishing comes off the next wait: message n goes out at its offset / speed."""
    fake = await paced(1, [T0, T0 + 1, T0 + 2, T0 + 3], publish_s=0.25)
    assert fake.sleeps == pytest.approx([0.75, 0.75, 0.75])
    assert fake.now == pytest.approx(100.0 + 3 + 0.25)


async def test_fast_never_waits_and_time_going_backwards_never_waits() -> None:
    """--fast (speed None) never sleeps, even over an hour's gap; a message recorded before the
    previous one goes out at once."""
    assert (await paced(None, [T0, T0 + 3600, T0 + 7200])).sleeps == []
    assert (await paced(1, [T0 + 10, T0, T0 + 1])).sleeps == []


def test_pacer_refuses_a_speed_that_is_not_positive() -> None:
    """Speed 0 would never publish; a negative one makes no sense."""
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_a_base_move_maps_topics_under_the_recorded_base_only() -> None:
    """`aigloo/x/y` → `sandbox/aigloo/x/y`; `aigloo2/x` and `homeassistant/…` are outside."""
    move = BaseMove("aigloo", "sandbox/aigloo")
    assert move.topic("aigloo/power/battery") == "sandbox/aigloo/power/battery"
    assert move.topic("aigloo") == "sandbox/aigloo"
    assert move.topic("aigloo2/power/battery") is None
    assert move.topic("homeassistant/device/aigloo_studio/config") is None


@pytest.mark.parametrize(("old", "new"), [("aigloo", "sand/#"), ("", "sandbox"), ("a//b", "x")])
def test_a_base_move_refuses_a_topic_that_is_no_base(old: str, new: str) -> None:
    """Wildcards and empty levels are no base topic: a TopicError before anything is sent."""
    with pytest.raises(TopicError):
        BaseMove(old, new)


def test_the_summary_says_published_skipped_why_and_how_long() -> None:
    """One line with counts, reasons and durations; a warning when files were out of order."""
    report = ReplayReport(filtered=2, outside_base=1, bad_lines=["r:3: not JSON"])
    for t in (T0 + 10, T0 + 30, T0):
        report.count_published(t)
    report.wall_s = 7.5
    first, warning = summary_lines(report)
    assert first == (
        "published 3 messages in 7.5 s (recorded over 30.0 s); skipped 4: "
        "1 bad lines, 2 not matching --topic, 1 outside the recorded base"
    )
    assert "oldest first" in warning
