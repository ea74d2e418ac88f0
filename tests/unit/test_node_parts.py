"""Node agent parts without a broker: deadbands, composition, sources, jobs, power drivers."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from aigloo_edge.config import Deadbands, PowerConfig
from aigloo_edge.node.collectors.powermetrics import PlistStream
from aigloo_edge.node.collectors.psutil_source import PsutilSource
from aigloo_edge.node.collectors.sample import AppleSample
from aigloo_edge.node.collectors.streaming import StreamingSource
from aigloo_edge.node.jobs import DrainingError, JobTracker
from aigloo_edge.node.power import CommandDriver, DryRunDriver, PowerError, make_driver
from aigloo_edge.node.telemetry import compose, merge_samples, moved_fields
from aigloo_edge.payloads import NodeBattery, NodeTelemetry

DATA = Path(__file__).resolve().parents[1] / "data"
BASE = {"cpu_pct": 10.0, "memory_used_bytes": 1, "memory_available_bytes": 1, "memory_pct": 50.0}


def telemetry(**fields: object) -> NodeTelemetry:
    return NodeTelemetry.model_validate({"node": "studio", **BASE, **fields}, strict=False)


@pytest.mark.parametrize(
    ("change", "moved"),
    [
        ({"cpu_pct": 29.9}, []),
        ({"cpu_pct": 30.0}, ["cpu_pct"]),
        ({"memory_pct": 55.0}, ["memory_pct"]),
        ({"temperatures_c": {"cpu": 42.0}}, []),
        ({"temperatures_c": {"cpu": 42.5}}, ["temperatures_c"]),
        ({"thermal_pressure": "heavy"}, ["thermal_pressure"]),
        ({"infer_queue": 1}, ["infer_queue"]),
        ({"battery": NodeBattery(soc_pct=80, plugged=False)}, ["battery"]),
    ],
)
def test_moved_fields_follow_the_deadbands(change: dict[str, object], moved: list[str]) -> None:
    """A reading counts as moved once it changes by its deadband or appears/disappears."""
    old = telemetry(temperatures_c={"cpu": 40.5}, infer_queue=0)
    new = telemetry(**{"temperatures_c": {"cpu": 40.5}, "infer_queue": 0, **change})
    assert moved_fields(old, new, Deadbands()) == moved


def test_battery_unplugged_counts_as_moved_even_without_soc_change() -> None:
    old = telemetry(battery=NodeBattery(soc_pct=80, plugged=True))
    new = telemetry(battery=NodeBattery(soc_pct=80, plugged=False))
    assert moved_fields(old, new, Deadbands()) == ["battery"]
    assert moved_fields(old, old, Deadbands()) == []


def test_compose_puts_apple_power_and_temperatures_into_telemetry() -> None:
    apple = AppleSample(
        cpu_w=12.5,
        gpu_w=40.0,
        gpu_pct=88.0,
        thermal_pressure="moderate",
        temperatures_c={"gpu": 61.0},
    )
    result = compose("studio", {**BASE, "temperatures_c": {"nvme": 35.0}}, apple)
    assert result.power is not None
    assert (result.power.cpu_w, result.power.gpu_w, result.power.ane_w) == (12.5, 40.0, None)
    assert result.temperatures_c == {"nvme": 35.0, "gpu": 61.0}
    assert (result.gpu_pct, result.thermal_pressure) == (88.0, "moderate")


def test_merge_prefers_the_first_source_and_pools_temperatures() -> None:
    powermetrics = AppleSample(cpu_w=10.0, thermal_pressure="nominal")
    macmon = AppleSample(cpu_w=9.0, system_w=60.0, temperatures_c={"cpu": 50.0})
    merged = merge_samples([powermetrics, None, macmon])
    assert merged == AppleSample(
        cpu_w=10.0, system_w=60.0, thermal_pressure="nominal", temperatures_c={"cpu": 50.0}
    )
    assert merge_samples([None, None]) is None


def test_psutil_source_reads_this_machine() -> None:
    """Real psutil readings on this machine validate as telemetry; a missing mount is skipped."""
    source = PsutilSource(["/", "/no/such/mount"])
    result = compose("studio", source.sample(), None)
    assert [d.mount for d in result.disks] == ["/"]
    assert len(result.cpu_per_core_pct) >= 1
    assert result.net_rx_bps is not None


async def test_streaming_source_keeps_the_latest_sample_from_a_real_process() -> None:
    """A source process's stdout is parsed as it streams (here `cat` of a recorded sample)."""
    sample = DATA / "powermetrics" / "m1max_cpu_gpu_thermal.plist"
    source = StreamingSource(
        "powermetrics", ["cat", str(sample)], PlistStream().feed, platforms=(sys.platform,)
    )
    await source.run()
    assert source.latest is not None
    assert source.latest.thermal_pressure == "moderate"


async def test_absent_source_is_one_log_line_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    source = StreamingSource(
        "macmon", ["macmon-not-installed", "pipe"], PlistStream().feed, platforms=(sys.platform,)
    )
    await source.run()
    assert source.latest is None
    assert [r.getMessage() for r in caplog.records] == [
        "telemetry source macmon skipped: macmon-not-installed not found"
    ]


async def test_jobs_drain_waits_for_running_jobs_and_refuses_new_ones() -> None:
    jobs = JobTracker()
    with jobs.job("a"):
        drain = asyncio.create_task(jobs.drain(timeout=5))
        await asyncio.sleep(0.05)
        assert not drain.done()
        with pytest.raises(DrainingError), jobs.job("b"):
            pass
    assert await drain is True
    jobs.resume()
    with jobs.job("c"):
        assert jobs.running == 1


async def test_jobs_drain_gives_up_after_the_timeout() -> None:
    jobs = JobTracker()
    with jobs.job("stuck"):
        assert await jobs.drain(timeout=0.05) is False


def test_tokens_per_second_counts_what_was_generated_since_the_last_sample() -> None:
    """The telemetry's rate: tokens since the previous call over the time elapsed; 0 idle."""
    now = [100.0]
    jobs = JobTracker(clock=lambda: now[0])
    for _ in range(30):
        jobs.generated()
    now[0] += 2.0
    assert jobs.tokens_per_s() == 15.0
    now[0] += 5.0
    assert jobs.tokens_per_s() == 0.0


async def test_command_driver_failure_is_a_power_error() -> None:
    with pytest.raises(PowerError, match="exited 3: nope"):
        await CommandDriver(["sh", "-c", "echo nope >&2; exit 3"]).sleep()
    with pytest.raises(PowerError, match="cannot run"):
        await CommandDriver(["/no/such/binary"]).sleep()


def test_drivers_by_name() -> None:
    assert make_driver(PowerConfig(driver="macos")) == CommandDriver(["pmset", "sleepnow"], "macos")
    assert make_driver(PowerConfig(driver="linux")) == CommandDriver(
        ["systemctl", "suspend"], "linux"
    )
    assert isinstance(make_driver(PowerConfig()), DryRunDriver)
