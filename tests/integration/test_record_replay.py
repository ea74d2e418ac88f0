"""`aigloo record` and `aigloo replay` against a real Mosquitto: byte-exact round trips, pacing,
subsets, sandbox bases, bad lines and rotation."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigloo_edge.cli import app
from aigloo_edge.errors import ConfigError
from aigloo_edge.payloads import Climate
from aigloo_edge.recording import (
    BadLine,
    BaseMove,
    Recorded,
    ReplayPlan,
    encode_line,
    read_recording,
    read_recordings,
    record,
    recording_files,
    replay_files,
    write_recording,
)
from aigloo_edge.rules.loader import load_rules
from aigloo_edge.rules.replay import replay
from tests.support.broker import RunningBroker

T0 = 1_800_000_000.0
DONE_S = 20.0  # a guard against hanging, never a timing assertion

# (topic under <base>/rt/, payload, qos, retain): every kind of payload and flag the rig sees.
TRAFFIC: list[tuple[str, bytes, int, bool]] = [
    ("battery", json.dumps({"soc_pct": 57, "note": "ünï ✓"}).encode(), 1, True),
    ("log", b"plain text\nwith a second line", 0, False),
    ("blob", bytes(range(255, -1, -1)), 1, False),  # not UTF-8
    ("empty", b"", 1, False),
    ("state", b"", 1, True),  # clears the retained state the recording started with
    ("mode", b"quiet", 0, True),
    ("battery", json.dumps({"soc_pct": 56}).encode(), 1, True),
]


def sandbox_of(broker: RunningBroker) -> str:
    """A base beside the broker's own (`t1234/aigloo` → `t1234/sandbox`): unique per test."""
    return broker.topics.base.rsplit("/", 1)[0] + "/sandbox"


@contextlib.asynccontextmanager
async def recording(
    broker: RunningBroker, path: Path, topic_filter: str, count: int, **options: int
) -> AsyncIterator[asyncio.Task[int]]:
    """`aigloo record` of `topic_filter` until `count` messages; subscribed when the block
    starts. The block awaits the task it is given."""
    ready = asyncio.Event()
    task = asyncio.create_task(
        record(broker.settings("admin"), path, [topic_filter], count=count, ready=ready, **options)
    )
    try:
        await asyncio.wait_for(ready.wait(), DONE_S)
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def messages(path: Path) -> list[Recorded]:
    items = list(read_recording(path))
    assert not [item for item in items if isinstance(item, BadLine)]
    return [item for item in items if isinstance(item, Recorded)]


def wire(message: Recorded, move: BaseMove | None = None) -> tuple[str | None, bytes, int, bool]:
    """What a subscriber can see of a message: topic (moved), payload bytes, QoS, retain."""
    topic = message.topic if move is None else move.topic(message.topic)
    return (topic, message.payload, message.qos, message.retain)


async def retained_under(
    broker: RunningBroker, tmp_path: Path, base: str, count: int
) -> set[tuple[str, bytes]]:
    """The retained messages under `<base>/rt/`, as (topic below the base, payload)."""
    path = tmp_path / f"retained-{base.replace('/', '_')}.jsonl"
    async with recording(broker, path, f"{base}/rt/#", count) as task:
        await asyncio.wait_for(task, DONE_S)
    found = messages(path)
    assert all(m.retain for m in found)
    return {(m.topic.removeprefix(base), m.payload) for m in found}


async def test_record_then_replay_into_a_sandbox_is_byte_exact(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """Record varied traffic (UTF-8 JSON, text, binary, empty, a retained clear, QoS 0 and 1),
    replay it under another base and record that: same topics (moved), payload bytes, QoS,
    retain flags and order; and the sandbox ends with the same retained state as the original."""
    base, sandbox = broker.topics.base, sandbox_of(broker)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    count = 1 + len(TRAFFIC)  # the retained state already there, then the live traffic
    async with broker.session("admin", component="publisher") as publisher:
        await publisher.publish(f"{base}/rt/state", b"before the recording", retain=True)
        async with recording(broker, first, f"{base}/rt/#", count) as recorder:
            for topic, payload, qos, retain in TRAFFIC:
                await publisher.publish(f"{base}/rt/{topic}", payload, qos=qos, retain=retain)
            assert await asyncio.wait_for(recorder, DONE_S) == count

    move = BaseMove(base, sandbox)
    async with recording(broker, second, f"{sandbox}/rt/#", count) as recorder:
        report = await replay_files(
            broker.settings("admin"), [first], ReplayPlan(speed=None, move=move)
        )
        assert await asyncio.wait_for(recorder, DONE_S) == count

    original, replayed = messages(first), messages(second)
    assert [wire(m, move) for m in original] == [wire(m) for m in replayed]
    assert [wire(m)[1:] for m in original[1:]] == [(p, q, r) for _, p, q, r in TRAFFIC]
    assert original[0].retain  # the state found on subscribing is marked retained
    assert '"payload_b64"' in first.read_text()
    assert (report.published, report.skipped) == (count, 0)
    expected = {("/rt/battery", TRAFFIC[-1][1]), ("/rt/mode", b"quiet")}
    assert await retained_under(broker, tmp_path, base, 2) == expected
    assert await retained_under(broker, tmp_path, sandbox, 2) == expected


async def record_paced(broker: RunningBroker, path: Path, gaps: list[float]) -> None:
    """Publish one message, then one after each gap, and record them."""
    base = broker.topics.base
    async with (
        broker.session("admin", component="publisher") as publisher,
        recording(broker, path, f"{base}/paced/#", len(gaps) + 1) as recorder,
    ):
        for index, gap in enumerate([0.0, *gaps]):
            await asyncio.sleep(gap)
            await publisher.publish(f"{base}/paced/{index}", str(index))
        await asyncio.wait_for(recorder, DONE_S)


async def replay_and_record(
    broker: RunningBroker, source: Path, subtree: str, plan: ReplayPlan, count: int
) -> list[Recorded]:
    """Replay `source` into the sandbox base while recording `<sandbox>/<subtree>/#` there."""
    sandbox = sandbox_of(broker)
    plan = replace(plan, move=BaseMove(broker.topics.base, sandbox))
    target = source.with_name(f"replayed-{source.name}")
    async with recording(broker, target, f"{sandbox}/{subtree}/#", count) as recorder:
        await asyncio.wait_for(replay_files(broker.settings("admin"), [source], plan), DONE_S)
        await asyncio.wait_for(recorder, DONE_S)
    return messages(target)


def gaps_of(recorded: list[Recorded]) -> list[float]:
    return [b.t - a.t for a, b in itertools.pairwise(recorded)]


async def test_speed_four_replays_each_gap_in_about_a_quarter(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """--speed 4: same order, and the replayed gaps are about a quarter of the recorded ones
    (measured from both recordings' timestamps, with a wide tolerance)."""
    original_path = tmp_path / "paced.jsonl"
    await record_paced(broker, original_path, [0.4, 1.2, 0.8])
    original = messages(original_path)
    replayed = await replay_and_record(broker, original_path, "paced", ReplayPlan(speed=4), 4)
    assert [m.payload for m in replayed] == [b"0", b"1", b"2", b"3"]
    recorded_gaps, replayed_gaps = gaps_of(original), gaps_of(replayed)
    ratio = sum(replayed_gaps) / sum(recorded_gaps)
    assert 0.2 < ratio < 0.45, (recorded_gaps, replayed_gaps)
    for recorded_gap, replayed_gap in zip(recorded_gaps, replayed_gaps, strict=True):
        assert replayed_gap > 0.7 * recorded_gap / 4  # never early
    assert replayed_gaps.index(max(replayed_gaps)) == recorded_gaps.index(max(recorded_gaps))


async def test_fast_replays_an_hour_without_waiting(broker: RunningBroker, tmp_path: Path) -> None:
    """--fast: messages recorded an hour apart go out back to back, in order."""
    base = broker.topics.base
    path = tmp_path / "hour.jsonl"
    write_recording(
        path, [Recorded(T0 + 1800 * i, f"{base}/hour/{i}", str(i).encode()) for i in range(3)]
    )
    replayed = await replay_and_record(broker, path, "hour", ReplayPlan(speed=None), 3)
    assert [m.payload for m in replayed] == [b"0", b"1", b"2"]
    assert sum(gaps_of(replayed)) < 3600 / 1000


async def test_topic_filters_bad_lines_and_foreign_topics_are_skipped_and_counted(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """--topic replays a subset (MQTT wildcards); a bad line is skipped with its line number; a
    topic outside the recorded base is not moved into the sandbox; the report counts each."""
    base, sandbox = broker.topics.base, sandbox_of(broker)
    lines = [
        encode_line(Recorded(T0, f"{base}/power/battery", b"57", retain=True)),
        encode_line(Recorded(T0 + 1, f"{base}/env/internal/climate", b"{}")),
        "{not json",
        encode_line(Recorded(T0 + 2, f"{base}/fans/profile", b"max", retain=True)),
        encode_line(Recorded(T0 + 3, "homeassistant/device/aigloo_mini/config", b"{}")),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    plan = ReplayPlan(
        speed=None,
        topic_filters=(f"{base}/power/#", f"{base}/fans/+", "homeassistant/#"),
        move=BaseMove(base, sandbox),
    )
    async with recording(broker, tmp_path / "out.jsonl", f"{sandbox}/+/+", 2) as recorder:
        report = await replay_files(broker.settings("admin"), [path], plan)
        await asyncio.wait_for(recorder, DONE_S)
    replayed = messages(tmp_path / "out.jsonl")
    assert [(m.topic, m.payload) for m in replayed] == [
        (f"{sandbox}/power/battery", b"57"),
        (f"{sandbox}/fans/profile", b"max"),
    ]
    assert (report.published, report.filtered, report.outside_base) == (2, 1, 1)
    assert report.bad_lines == [
        f"{path}:3: not JSON: Expecting property name enclosed in double quotes"
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
async def test_a_recording_that_cannot_be_written_stops_with_an_error(
    broker: RunningBroker,
) -> None:
    """A failed write (here: a full disk) ends the recording with an error naming the file,
    instead of dropping lines while it seems to run."""
    full = Path("/dev/full")
    async with (
        broker.session("admin", component="publisher") as publisher,
        recording(broker, full, f"{broker.topics.base}/disk/#", 5) as recorder,
    ):
        await publisher.publish(f"{broker.topics.base}/disk/1", b"lost")
        with pytest.raises(ConfigError, match="/dev/full: cannot write: No space left"):
            await asyncio.wait_for(recorder, DONE_S)


HOT_RULES = """
defaults:
  fans.profile: normal
rules:
  - id: hot
    when: env.internal.temperature_c > 30
    set: {fans.profile: max}
"""


async def test_live_recording_rotates_keeps_k_files_and_the_rules_replay_reads_them(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`record --max-mb 0.001 --keep 2` of live readings: FILE.2 FILE.1 FILE, each of whole
    lines under 1000 bytes, oldest first in time order; the rules engine replays them in that
    order and fires on the last (hot) readings."""
    path = tmp_path / "probe.jsonl"
    probe = broker.topics.env_climate("internal")
    temperatures = [25.0] * 24 + [35.0] * 6
    async with (
        broker.session("sensors") as sensors,
        recording(broker, path, probe, len(temperatures), max_bytes=1000, keep=2) as recorder,
    ):
        for celsius in temperatures:
            await sensors.publish(probe, Climate(probe="internal", temperature_c=celsius))
        await asyncio.wait_for(recorder, DONE_S)
    files = recording_files(path)
    assert files == [path.with_name("probe.jsonl.2"), path.with_name("probe.jsonl.1"), path]
    kept: list[Recorded] = []
    for file in files:
        assert file.stat().st_size <= 1000
        kept += messages(file)
    assert [m.t for m in kept] == sorted(m.t for m in kept)
    assert len(kept) < len(temperatures)  # the oldest file was deleted
    last_celsius = [Climate.from_json(m.payload).temperature_c for m in kept[-6:]]
    assert last_celsius == [35.0] * 6
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "thermal.yaml").write_text(textwrap.dedent(HOT_RULES))
    steps = replay(load_rules(rules), read_recordings(files), topics=broker.topics)
    assert [e.rule for s in steps for e in s.decisions.events if e.kind == "fired"] == ["hot"]


# --- the commands themselves (sync tests: typer runs its own event loop) --------------------

runner = CliRunner()


def config_file(broker: RunningBroker, tmp_path: Path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            node: mini
            role: mini
            broker:
              host: 127.0.0.1
              port: {broker.ports["mqtt"]}
              credentials_file: {broker.directory / "credentials.yaml"}
              base_topic: {broker.topics.base}
            """
        )
    )
    return path


def test_the_replay_command_restores_retained_state_in_a_sandbox_and_summarises(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`aigloo replay FILE.1 FILE --fast --base SANDBOX`: both files in order, the bad line named
    by file and line number, a summary (published, skipped, duration), and the sandbox holds
    the recorded retained state (the later value wins)."""
    base, sandbox = broker.topics.base, sandbox_of(broker)
    older, newer = tmp_path / "rig.jsonl.1", tmp_path / "rig.jsonl"
    write_recording(older, [Recorded(T0, f"{base}/rt/mode", b"quiet", retain=True)])
    newer.write_text(
        "garbage\n" + encode_line(Recorded(T0 + 5, f"{base}/rt/mode", b"max", retain=True)) + "\n"
    )
    argv = ["replay", str(older), str(newer), "--fast", "--base", sandbox]
    result = runner.invoke(app, [*argv, "--config", str(config_file(broker, tmp_path))])
    assert result.exit_code == 0, result.output
    assert f"{newer}:1: not JSON" in result.stderr
    assert "published 2 messages in" in result.stderr
    assert "(recorded over 5.0 s); skipped 1: 1 bad lines" in result.stderr
    retained = asyncio.run(retained_under(broker, tmp_path, sandbox, 1))
    assert retained == {("/rt/mode", b"max")}


def test_the_replay_command_names_a_missing_file_before_connecting(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """A recording that does not exist is an error naming it; nothing is published."""
    missing = tmp_path / "nope.jsonl"
    argv = ["replay", str(missing), "--config", str(config_file(broker, tmp_path))]
    result = runner.invoke(app, argv)
    assert result.exit_code != 0
    assert f"no such recording: {missing}" in str(result.exception)


def test_the_record_command_rotates_with_max_mb_and_keep(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`aigloo record FILE --max-mb 0.001 --keep 1 --count N`: FILE and FILE.1 only, whole lines
    of at most 1000 bytes, the newest message last."""
    path = tmp_path / "cli.jsonl"
    base, count = broker.topics.base, 30
    asyncio.run(publish(broker, f"{base}/cli", [0], retain=True))  # recorded on subscribing
    argv = ["record", str(path), "--topic", f"{base}/cli/#", "--count", str(count)]
    argv += ["--max-mb", "0.001", "--keep", "1", "--config", str(config_file(broker, tmp_path))]
    results = []
    command = threading.Thread(target=lambda: results.append(runner.invoke(app, argv)))
    command.start()
    try:
        wait_for_first_line(path)  # the recorder is subscribed: the rest will reach it
        asyncio.run(publish(broker, f"{base}/cli", range(1, count)))
    finally:
        command.join(DONE_S)
    (result,) = results
    assert result.exit_code == 0, result.output
    assert f"{count} messages recorded in {path}" in result.stderr
    assert recording_files(path) == [path.with_name("cli.jsonl.1"), path]
    assert all(file.stat().st_size <= 1000 for file in recording_files(path))
    assert messages(path)[-1].payload == padded(count - 1)


def wait_for_first_line(path: Path) -> None:
    deadline = time.monotonic() + DONE_S
    while not (path.exists() and path.stat().st_size > 0):
        assert time.monotonic() < deadline, f"nothing recorded in {path}"
        time.sleep(0.02)


async def publish(
    broker: RunningBroker, prefix: str, indexes: Iterable[int], *, retain: bool = False
) -> None:
    async with broker.session("admin", component="publisher") as publisher:
        for index in indexes:
            await publisher.publish(f"{prefix}/{index}", padded(index), retain=retain)


def padded(index: int) -> bytes:
    return f"{index:040d}".encode()
