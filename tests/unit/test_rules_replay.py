"""Readings from payloads, replay of recorded traffic, and the `aigloo rules` commands."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigloo_edge.cli import app
from aigloo_edge.errors import PayloadError
from aigloo_edge.payloads import Battery, Climate, NodeTelemetry, Outputs, Solar
from aigloo_edge.recording import (
    Recorded,
    encode_line,
    read_recording,
    write_recording,
)
from aigloo_edge.rules.arbiter import SafetyLimits
from aigloo_edge.rules.loader import load_rule_files, load_rules
from aigloo_edge.rules.readings import Readings
from aigloo_edge.rules.replay import ReplaySummary, replay
from aigloo_edge.topics import Topics

T0 = 1_800_000_000.0
TOPICS = Topics()
SHIPPED = Path(__file__).resolve().parents[2] / "rules"


def readings_for(tmp_path: Path, signals: str = "") -> Readings:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(signals) or "rules: []\n")
    ruleset = load_rule_files([path])
    return Readings(TOPICS, ruleset.signals, ruleset.custom)


def test_a_battery_payload_becomes_station_signals(tmp_path: Path) -> None:
    """Every field of the battery payload is its signal; the payload's ts comes back too."""
    battery = Battery(
        soc_pct=57, watts_in=120, watts_out=80, outputs=Outputs(ac=True), source="twin", ts=T0
    )
    found, produced = readings_for(tmp_path).extract(TOPICS.battery(), battery.to_json())
    assert dict(found) == {
        "power.battery.soc_pct": 57,
        "power.battery.watts_in": 120,
        "power.battery.watts_out": 80,
        "power.battery.outputs.ac": True,
    }
    assert produced == T0


def test_a_probe_gives_celsius_and_fahrenheit_and_a_stale_probe_gives_none(
    tmp_path: Path,
) -> None:
    """30 °C is 86 °F; a probe flagged stale makes each of its signals a stale reading."""
    readings = readings_for(tmp_path)
    topic = TOPICS.env_climate("internal")
    fresh, _ = readings.extract(topic, Climate(probe="internal", temperature_c=30).to_json())
    assert dict(fresh)["env.internal.temperature_f"] == pytest.approx(86)
    stale, _ = readings.extract(
        topic, Climate(probe="internal", temperature_c=30, stale=True).to_json()
    )
    assert {value for _, value in stale} == {None}
    assert "env.internal.temperature_c" in dict(stale)


def test_a_node_going_offline_makes_its_telemetry_stale(tmp_path: Path) -> None:
    """`offline` is `online = false` and a stale reading for each telemetry signal."""
    readings = readings_for(tmp_path)
    found, _ = readings.extract(TOPICS.node_availability("studio"), b"offline")
    assert dict(found)["nodes.studio.online"] is False
    assert dict(found)["nodes.studio.cpu_pct"] is None
    telemetry = NodeTelemetry(
        node="studio",
        cpu_pct=40,
        memory_used_bytes=1,
        memory_available_bytes=1,
        memory_pct=50,
        temperatures_c={"cpu": 60.0, "gpu": 70.0},
    )
    found, _ = readings.extract(TOPICS.node_telemetry("studio"), telemetry.to_json())
    assert dict(found)["nodes.studio.temperature_c"] == 70.0


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (TOPICS.battery(), b'{"soc_pct": 150, "watts_in": 0, "watts_out": 0, "source": "twin"}'),
        (TOPICS.solar(), b'{"watts": NaN}'),
        (TOPICS.env_climate("internal"), b"[1, 2"),
        (TOPICS.node_availability("studio"), b"maybe"),
        (TOPICS.node_power("studio"), b'{"state": "asleep"}'),
    ],
)
def test_malformed_payloads_raise_and_give_no_reading(
    tmp_path: Path, topic: str, payload: bytes
) -> None:
    """A payload that breaks the contract is a PayloadError (the session reports it)."""
    with pytest.raises(PayloadError):
        readings_for(tmp_path).extract(topic, payload)


def test_a_custom_signal_reads_a_json_path_of_any_topic(tmp_path: Path) -> None:
    """`signals:` maps a topic + JSON path to a typed signal; a wrong type is refused."""
    readings = readings_for(
        tmp_path,
        """
        signals:
          shunt_w: {topic: victron/shunt, path: dc.power, unit: W}
        rules: []
        """,
    )
    found, _ = readings.extract("victron/shunt", b'{"dc": {"power": 41.5}}')
    assert found == [("shunt_w", 41.5)]
    with pytest.raises(PayloadError, match=r"shunt_w: expected a number"):
        readings.extract("victron/shunt", b'{"dc": {"power": "41"}}')
    with pytest.raises(PayloadError, match=r"no 'dc\.power'"):
        readings.extract("victron/shunt", b'{"power": 41}')


def day(temperatures: list[tuple[float, float]]) -> list[Recorded]:
    topic = TOPICS.env_climate("internal")
    messages: list[Recorded] = []
    for at, fahrenheit in temperatures:
        celsius = (fahrenheit - 32) * 5 / 9
        payload = Climate(probe="internal", temperature_c=celsius, ts=T0 + at).to_json()
        messages.append(Recorded(T0 + at, topic, payload, retain=True))
    return messages


def test_replay_decides_at_recorded_times_and_between_messages() -> None:
    """fans-max-when-hot (for: 10s) fires 10 s after the first hot reading, not at the next one."""
    ruleset = load_rules(SHIPPED)
    recording = day([(0, 80), (60, 95), (600, 95), (700, 84)])
    summary = ReplaySummary()
    steps = list(replay(ruleset, recording, limits=SafetyLimits(), summary=summary))
    fired = [(s.t - T0, e.rule) for s in steps for e in s.decisions.events if e.kind == "fired"]
    # No battery reading at all: after the 30 s start-up grace the fail-safe keeps wakes off.
    assert fired == [(30, "studio-not-woken-on-low-battery"), (70, "fans-max-when-hot")]
    released = [
        (s.t - T0, e.rule) for s in steps for e in s.decisions.events if e.kind == "released"
    ]
    assert released == [(700, "fans-max-when-hot")]
    assert summary.messages == 4
    assert summary.fired["fans-max-when-hot"] == 1
    assert summary.commands["fans.profile"] == 3  # normal, max, normal


def test_replay_reports_bad_lines_and_payloads_and_goes_on(tmp_path: Path) -> None:
    """A line that is not JSON and a bad payload are reported; the rest of the day runs."""
    path = tmp_path / "day.jsonl"
    write_recording(path, day([(0, 95)]))
    with path.open("a") as out:
        out.write("not json\n")
        out.write(f'{{"t": {T0 + 5}, "topic": "{TOPICS.solar()}", "payload": "{{}}"}}\n')
    write_recording(tmp_path / "more.jsonl", day([(30, 95)]))
    with path.open("a") as out:
        out.write((tmp_path / "more.jsonl").read_text())
    summary = ReplaySummary()
    steps = list(replay(load_rules(SHIPPED), read_recording(path), summary=summary))
    assert summary.rejected[0] == f"{path}:2: not JSON: Expecting value"
    assert summary.rejected[1].startswith(f"{TOPICS.solar()}: watts: Field required")
    assert any(e.kind == "fired" for s in steps for e in s.decisions.events)


runner = CliRunner()


def test_rules_check_summarises_the_shipped_rules() -> None:
    """`aigloo rules check rules` lists each rule by priority and says ok."""
    result = runner.invoke(app, ["rules", "check", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "fans-max-when-hot" in result.stdout
    assert result.stdout.strip().endswith("ok: 10 rules in 3 files")


def test_rules_check_fails_with_every_problem(tmp_path: Path) -> None:
    """A broken file: exit 1 and file:line:column for the mistake."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fans.yaml").write_text(
        "rules:\n  - id: hot\n    when: env.intrenal.temperature_f > 90\n"
        "    set: {fans.profile: max}\n"
    )
    result = runner.invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}/fans.yaml:3:11: unknown signal 'env.intrenal.temperature_f'" in result.output


def test_rules_replay_prints_each_decision_and_a_summary(tmp_path: Path) -> None:
    """`aigloo rules replay FILE --rules DIR`: one line per decision with its time."""
    path = tmp_path / "day.jsonl"
    write_recording(path, day([(0, 80), (60, 95), (80, 95)]))
    solar = Recorded(T0 + 81, TOPICS.solar(), Solar(watts=10).to_json())
    with path.open("a") as out:
        out.write(encode_line(solar) + "\n")
    result = runner.invoke(app, ["rules", "replay", str(path), "--rules", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "fired      fans-max-when-hot" in result.stdout
    assert "+  70s  fired      fans-max-when-hot" in result.stdout
    assert "replayed 4 messages over 81s" in result.output
