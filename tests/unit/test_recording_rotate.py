"""Size-based rotation of recordings (`aigloo record --max-mb --keep`) and reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from aigloo_edge.payloads import Climate
from aigloo_edge.recording import (
    BadLine,
    Recorded,
    RotatingWriter,
    encode_line,
    read_recording,
    read_recordings,
    recording_files,
    write_recording,
)
from aigloo_edge.recording.rotate import numbered, rotate
from aigloo_edge.rules.loader import load_rules
from aigloo_edge.rules.replay import replay
from aigloo_edge.topics import Topics

T0 = 1_800_000_000.0
TOPICS = Topics()
SHIPPED = Path(__file__).resolve().parents[2] / "rules"


def lines(count: int, width: int = 60) -> list[str]:
    """`count` distinct recording lines of about `width` bytes, in time order."""
    return [
        encode_line(Recorded(T0 + i, f"aigloo/test/{i}", b"x" * (width - 50))) for i in range(count)
    ]


def write_all(path: Path, texts: list[str], *, max_bytes: int, keep: int) -> RotatingWriter:
    with RotatingWriter(path, max_bytes=max_bytes, keep=keep) as out:
        for text in texts:
            out.write_line(text)
    return out


def test_rotation_makes_numbered_files_newest_first_and_never_splits_a_line(
    tmp_path: Path,
) -> None:
    """Past max_bytes FILE becomes FILE.1 (and FILE.1 FILE.2 …); every file holds whole lines,
    none passes the limit, and oldest-first they hold every line in order."""
    path = tmp_path / "rig.jsonl"
    texts = lines(40)
    out = write_all(path, texts, max_bytes=500, keep=100)
    files = recording_files(path)
    assert out.rotations == len(files) - 1 >= 3
    assert files[-1] == path
    assert files[:-1] == [numbered(path, n) for n in range(len(files) - 1, 0, -1)]
    read_back: list[str] = []
    for file in files:
        data = file.read_bytes()
        assert len(data) <= 500
        assert data.endswith(b"\n")
        read_back += data.decode().splitlines()
    assert read_back == texts


def test_keep_deletes_the_oldest_rotated_files(tmp_path: Path) -> None:
    """With --keep 2 only FILE.1 and FILE.2 remain beside FILE; what is left is the newest lines,
    still in order."""
    path = tmp_path / "rig.jsonl"
    texts = lines(40)
    write_all(path, texts, max_bytes=500, keep=2)
    files = recording_files(path)
    assert files == [numbered(path, 2), numbered(path, 1), path]
    kept = [text for file in files for text in file.read_text().splitlines()]
    assert kept == texts[-len(kept) :]


def test_keep_zero_keeps_only_the_current_file(tmp_path: Path) -> None:
    """--keep 0: rotating starts FILE afresh and no numbered file is left."""
    path = tmp_path / "rig.jsonl"
    write_all(path, lines(40), max_bytes=500, keep=0)
    assert recording_files(path) == [path]
    assert path.stat().st_size <= 500


def test_a_line_longer_than_the_limit_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """A line is never split: one bigger than max_bytes is written whole, alone in its file."""
    path = tmp_path / "rig.jsonl"
    big = encode_line(Recorded(T0, "aigloo/big", b"y" * 2000))
    small = lines(3)
    write_all(path, [small[0], big, small[1]], max_bytes=500, keep=5)
    contents = [file.read_text().splitlines() for file in recording_files(path)]
    assert contents == [[small[0]], [big], [small[1]]]


def test_appending_counts_what_the_file_already_holds(tmp_path: Path) -> None:
    """A recorder restarted on an existing FILE rotates when FILE (old lines included) is full."""
    path = tmp_path / "rig.jsonl"
    texts = lines(12)
    write_all(path, texts[:6], max_bytes=500, keep=5)
    before = recording_files(path)
    write_all(path, texts[6:], max_bytes=500, keep=5)
    after = recording_files(path)
    assert len(after) > len(before)
    assert [t for f in after for t in f.read_text().splitlines()] == texts


def test_a_torn_last_line_is_ended_before_appending(tmp_path: Path) -> None:
    """A recorder killed mid-line leaves a partial line: the next line still starts its own
    line, so only the torn one is bad."""
    path = tmp_path / "rig.jsonl"
    first, second = lines(2)
    path.write_text(first[:20])
    write_all(path, [second], max_bytes=10_000, keep=1)
    torn, whole = read_recording(path)
    assert isinstance(torn, BadLine)
    assert isinstance(whole, Recorded)
    assert encode_line(whole) == second


def test_rotate_shifts_existing_files_and_drops_what_falls_off(tmp_path: Path) -> None:
    """FILE.1 → FILE.2, FILE → FILE.1; with keep=2 the old FILE.2 (and any higher one from an
    earlier, larger --keep) is deleted."""
    path = tmp_path / "rig.jsonl"
    for name, text in [("rig.jsonl", "0"), ("rig.jsonl.1", "1"), ("rig.jsonl.2", "2")]:
        (tmp_path / name).write_text(text)
    (tmp_path / "rig.jsonl.7").write_text("7")
    (tmp_path / "rig.jsonl.bak").write_text("not ours")
    rotate(path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "rig.jsonl.1",
        "rig.jsonl.2",
        "rig.jsonl.bak",
    ]
    assert (tmp_path / "rig.jsonl.1").read_text() == "0"
    assert (tmp_path / "rig.jsonl.2").read_text() == "1"


def test_recording_files_orders_by_number_not_by_name(tmp_path: Path) -> None:
    """FILE.10 is older than FILE.9 (a name sort would put it first); FILE itself comes last."""
    path = tmp_path / "rig.jsonl"
    for n in (1, 2, 9, 10):
        numbered(path, n).write_text("")
    path.write_text("")
    assert [p.name for p in recording_files(path)] == [
        "rig.jsonl.10",
        "rig.jsonl.9",
        "rig.jsonl.2",
        "rig.jsonl.1",
        "rig.jsonl",
    ]


@pytest.mark.parametrize(("max_bytes", "keep"), [(0, 1), (-5, 1), (100, -1)])
def test_a_writer_refuses_a_nonsensical_limit(tmp_path: Path, max_bytes: int, keep: int) -> None:
    """max_bytes must be positive and keep 0 or more."""
    with pytest.raises(ValueError, match="must be"):
        RotatingWriter(tmp_path / "r.jsonl", max_bytes=max_bytes, keep=keep)


def hot_day() -> list[Recorded]:
    """A probe reading every 5 s: cool, then hot long enough for fans-max-when-hot to fire."""
    topic = TOPICS.env_climate("internal")
    temperatures_f = [80] * 10 + [95] * 10
    return [
        Recorded(
            T0 + 5 * i,
            topic,
            Climate(probe="internal", temperature_c=(f - 32) * 5 / 9, ts=T0 + 5 * i).to_json(),
            retain=True,
        )
        for i, f in enumerate(temperatures_f)
    ]


def fired(recording: Iterable[Recorded | BadLine]) -> list[tuple[float, str | None]]:
    steps = replay(load_rules(SHIPPED), recording, topics=TOPICS)
    return [(s.t, e.rule) for s in steps for e in s.decisions.events if e.kind == "fired"]


def test_rules_replay_of_rotated_files_oldest_first_matches_one_file(tmp_path: Path) -> None:
    """The rules engine replaying FILE.K … FILE.1 FILE decides exactly as on one unrotated
    recording of the same traffic."""
    messages = hot_day()
    whole = tmp_path / "whole.jsonl"
    write_recording(whole, messages)
    rotated = tmp_path / "rotated.jsonl"
    write_all(rotated, [encode_line(m) for m in messages], max_bytes=800, keep=100)
    files = recording_files(rotated)
    assert len(files) >= 3
    assert list(read_recordings(files)) == list(read_recording(whole))
    decided = fired(read_recordings(files))
    assert decided == fired(read_recording(whole))
    assert "fans-max-when-hot" in [rule for _, rule in decided]


def test_every_line_of_a_rotated_set_is_json(tmp_path: Path) -> None:
    """Rotation by bytes, with multi-byte UTF-8 payloads, still never cuts a line."""
    path = tmp_path / "rig.jsonl"
    texts = [
        encode_line(Recorded(T0 + i, "aigloo/t", ("°C ✓ ünï " * 7).encode())) for i in range(30)
    ]
    write_all(path, texts, max_bytes=300, keep=100)
    for file in recording_files(path):
        for text in file.read_text(encoding="utf-8").splitlines():
            json.loads(text)
