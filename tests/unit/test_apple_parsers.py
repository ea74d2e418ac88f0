"""powermetrics and macmon parsers, on samples that follow the tools' output byte for byte."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aigloo_edge.errors import PayloadError
from aigloo_edge.node.collectors.macmon import LineStream, parse_line
from aigloo_edge.node.collectors.powermetrics import PlistStream, parse_document, thermal_pressure
from aigloo_edge.node.collectors.sample import AppleSample

DATA = Path(__file__).resolve().parents[1] / "data"
M1MAX = (DATA / "powermetrics" / "m1max_cpu_gpu_thermal.plist").read_bytes()
M1MAX_HEAVY = (DATA / "powermetrics" / "m1max_heavy_thermal.plist").read_bytes()
M4_LINES = (DATA / "macmon" / "m4_pipe.jsonl").read_bytes()
M3ULTRA_LINES = (DATA / "macmon" / "m3ultra_pipe.jsonl").read_bytes()

FIRST, SECOND = M1MAX.split(b"\0")
HEADER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
    b'"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
)


def plist(body: str) -> bytes:
    """A powermetrics-shaped document whose top-level dict holds `body`."""
    return HEADER + f'<plist version="1.0">\n<dict>\n{body}\n</dict>\n</plist>\n'.encode()


def feed_all(stream: PlistStream | LineStream, chunks: list[bytes]) -> list[AppleSample]:
    return [sample for chunk in chunks for sample in stream.feed(chunk)]


# --- powermetrics ---------------------------------------------------------------------------


def test_m1max_stream_yields_both_samples_in_watts() -> None:
    """Two NUL-separated documents give two samples: mW become W, GPU busy is 1 - idle_ratio."""
    stream = PlistStream()
    first, second = stream.feed(M1MAX)
    assert first.cpu_w == pytest.approx(4.12738)
    assert first.gpu_w == pytest.approx(29.8065)
    assert first.ane_w == 0.0
    assert first.package_w == pytest.approx(33.9339)
    assert first.gpu_pct == pytest.approx((1 - 0.0238714) * 100)
    assert first.thermal_pressure == "nominal"
    assert second.cpu_w == pytest.approx(3.87721)
    assert second.gpu_w == pytest.approx(31.2079)
    assert second.package_w == pytest.approx(35.0851)
    assert second.gpu_pct == pytest.approx((1 - 0.0154387) * 100)
    assert second.thermal_pressure == "moderate"
    assert stream.rejected == 0


def test_powermetrics_reports_no_temperatures_or_system_power() -> None:
    """Apple-silicon powermetrics has neither: the sample leaves them empty, not zero."""
    sample = parse_document(FIRST)
    assert sample.temperatures_c == {}
    assert sample.system_w is None


def test_heavy_thermal_pressure_sample() -> None:
    """The heavy sample reads as `heavy`, with its throttled rails."""
    (sample,) = PlistStream().feed(M1MAX_HEAVY)
    assert sample.thermal_pressure == "heavy"
    assert sample.cpu_w == pytest.approx(2.21477)
    assert sample.gpu_w == pytest.approx(22.5403)
    assert sample.package_w == pytest.approx(24.7551)
    assert sample.gpu_pct == pytest.approx((1 - 0.0417206) * 100)


def test_a_document_is_emitted_at_its_closing_tag_without_waiting_for_the_nul() -> None:
    """powermetrics writes the NUL before the next sample, so each sample is ready at once."""
    stream = PlistStream()
    assert len(stream.feed(FIRST)) == 1
    assert len(stream.feed(b"\0")) == 0
    assert len(stream.feed(SECOND)) == 1


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(M1MAX)), max_size=12))
def test_documents_split_across_feeds_at_any_byte_still_parse(cuts: list[int]) -> None:
    """Wherever the pipe splits the stream, the same two samples come out, none rejected."""
    bounds = [0, *sorted(cuts), len(M1MAX)]
    stream = PlistStream()
    samples = feed_all(stream, [M1MAX[a:b] for a, b in pairwise(bounds)])
    assert samples == PlistStream().feed(M1MAX)
    assert len(samples) == 2
    assert stream.rejected == 0


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(b"<?xml version='1.0'?><plist><dict><key>gpu</key>", id="truncated"),
        pytest.param(plist("<key>gpu</key><string>busy</string>"), id="wrong-type"),
        pytest.param(b"\xde\xad\xbe\xef not xml at all", id="garbage"),
        pytest.param(plist("<key>elapsed_ns</key><integer>x</integer>"), id="bad-integer"),
    ],
)
def test_one_corrupt_document_between_two_good_ones_is_counted_not_fatal(corrupt: bytes) -> None:
    """The good documents on either side still parse; the bad one is counted with a reason."""
    stream = PlistStream()
    samples = stream.feed(FIRST + b"\0" + corrupt + b"\0" + SECOND)
    assert [s.thermal_pressure for s in samples] == ["nominal", "moderate"]
    assert stream.rejected == 1
    assert stream.last_error


def test_a_document_cut_short_without_a_nul_does_not_swallow_the_next() -> None:
    """A restarted powermetrics begins with `<?xml` and no NUL: that ends the cut document."""
    stream = PlistStream()
    samples = stream.feed(FIRST[: len(FIRST) // 2] + SECOND)
    assert [s.thermal_pressure for s in samples] == ["moderate"]
    assert stream.rejected == 1


def test_leading_nul_and_whitespace_before_a_document_are_skipped() -> None:
    """Some versions emit a NUL or blank lines before the first document too."""
    stream = PlistStream()
    assert len(stream.feed(b"\0\n  \r\n" + FIRST + b"\0\0\n")) == 1
    assert stream.rejected == 0


def test_an_endless_document_is_dropped_at_the_size_limit() -> None:
    """A stream that never closes its document cannot grow the buffer without bound."""
    stream = PlistStream(max_document_bytes=1000)
    assert stream.feed(HEADER + b"<plist><dict>" + b" " * 2000) == []
    assert stream.rejected == 1
    assert stream.feed(FIRST + b"\0")[0].thermal_pressure == "nominal"


def test_energy_fields_give_watts_when_power_fields_are_absent() -> None:
    """mJ over elapsed_ns is W: the form powermetrics prints without the *_power keys."""
    doc = plist(
        "<key>elapsed_ns</key><integer>500000000</integer>\n"
        "<key>processor</key><dict><key>cpu_energy</key><integer>1500</integer>"
        "<key>gpu_energy</key><integer>10000</integer>"
        "<key>ane_energy</key><integer>0</integer>"
        "<key>package_energy</key><integer>11600</integer></dict>"
    )
    sample = parse_document(doc)
    assert (sample.cpu_w, sample.gpu_w, sample.ane_w) == pytest.approx((3.0, 20.0, 0.0))
    assert sample.package_w == pytest.approx(23.2)


def test_gpu_only_sampler_reads_power_from_the_gpu_block() -> None:
    """With only `gpu_power` sampled there is no processor block: gpu.gpu_energy gives watts."""
    doc = plist(
        "<key>elapsed_ns</key><integer>1000000000</integer>\n"
        "<key>gpu</key><dict><key>freq_hz</key><real>1296</real>"
        "<key>idle_ratio</key><real>0.25</real>"
        "<key>gpu_energy</key><integer>18443</integer></dict>"
    )
    sample = parse_document(doc)
    assert sample.gpu_w == pytest.approx(18.443)
    assert sample.gpu_pct == pytest.approx(75.0)
    assert sample.cpu_w is None
    assert sample.thermal_pressure is None


def test_energy_without_elapsed_time_gives_no_watts() -> None:
    """Energy alone cannot be turned into power: the rail stays None rather than guessed."""
    doc = plist("<key>processor</key><dict><key>cpu_energy</key><integer>1500</integer></dict>")
    assert parse_document(doc).cpu_w is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nominal", "nominal"),
        ("Moderate", "moderate"),
        ("Heavy", "heavy"),
        ("Trapping", "trapping"),
        ("Sleeping", "sleeping"),
        ("HEAVY", "heavy"),
        (" Nominal\n", "nominal"),
        ("Light", "unknown"),
        ("Critical", "unknown"),
        ("", "unknown"),
        (None, None),
    ],
)
def test_thermal_pressure_maps_onto_the_contract_values(raw: str | None, expected: str) -> None:
    """macOS level names, any case, map to ours; names macOS does not use become `unknown`."""
    assert thermal_pressure(raw) == expected


def test_thermal_pressure_inside_a_document_is_mapped() -> None:
    """The top-level `thermal_pressure` string drives the sample's field."""
    doc = plist("<key>thermal_pressure</key><string>Trapping</string>")
    assert parse_document(doc).thermal_pressure == "trapping"


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<plist><array></array></plist>", id="root-not-dict"),
        pytest.param(plist("<key>processor</key><string>x</string>"), id="processor-not-dict"),
        pytest.param(plist("<key>thermal_pressure</key><integer>2</integer>"), id="pressure-int"),
        pytest.param(
            plist("<key>processor</key><dict><key>cpu_power</key><true/></dict>"), id="bool"
        ),
        pytest.param(
            plist("<key>processor</key><dict><key>cpu_power</key><real>nan</real></dict>"),
            id="nan",
        ),
        pytest.param(
            plist("<key>processor</key><dict><key>gpu_power</key><real>-5</real></dict>"),
            id="negative",
        ),
        pytest.param(
            plist("<key>gpu</key><dict><key>idle_ratio</key><real>1.5</real></dict>"),
            id="ratio-above-1",
        ),
        pytest.param(plist("<key>timestamp</key><date>yesterday</date>"), id="bad-date"),
    ],
)
def test_malformed_documents_raise_payload_error(doc: bytes) -> None:
    """Wrong structure, types or ranges are one error type with a short reason."""
    with pytest.raises(PayloadError):
        parse_document(doc)


@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_never_break_the_stream(data: bytes) -> None:
    """Whatever arrives, feed never raises, and the next good document after a NUL parses."""
    stream = PlistStream()
    samples = stream.feed(data) + stream.feed(b"\0" + FIRST)
    assert samples[-1] == parse_document(FIRST)


# --- macmon ---------------------------------------------------------------------------------


def test_m4_pipe_lines_parse_to_watts_percent_and_celsius() -> None:
    """macmon's watts pass through; gpu_usage's ratio becomes %; temp averages become °C."""
    stream = LineStream()
    samples = stream.feed(M4_LINES)
    assert len(samples) == 4
    assert stream.rejected == 0
    first = samples[0]
    assert first.cpu_w == 1.8423000574111938
    assert first.gpu_w == 11.961700439453125
    assert first.ane_w == 0.0
    assert first.package_w == 13.804000854492188
    assert first.system_w == 19.8700008392334
    assert first.gpu_pct == pytest.approx(94.12000179290771)
    assert first.temperatures_c == {"cpu": 61.27000045776367, "gpu": 66.83999633789062}
    assert first.thermal_pressure is None
    assert samples[2].ane_w == 0.7717999815940857


def test_later_macmon_fields_are_ignored() -> None:
    """Per-core usages, fans and cpu_usage_pct (newer macmon) do not disturb the parse."""
    first = parse_line(M3ULTRA_LINES.splitlines()[0])
    assert first.gpu_w == 87.31620025634766
    assert first.package_w == 94.20030212402344
    assert first.system_w == 142.60000610351562
    assert first.gpu_pct == pytest.approx(97.3800003528595)
    assert first.temperatures_c == {"cpu": 57.83000183105469, "gpu": 64.20999908447266}


def test_text_and_bytes_lines_parse_the_same() -> None:
    """The reader may hand over bytes or decoded text."""
    line = M4_LINES.splitlines()[1]
    assert parse_line(line) == parse_line(line.decode())


def test_missing_keys_leave_fields_empty() -> None:
    """A line with none of our keys is a valid, empty sample."""
    assert parse_line('{"timestamp": "2026-03-14T09:41:07.512873+00:00"}') == AppleSample()


def test_zero_placeholders_mean_not_reported() -> None:
    """macmon writes 0 for a sensor or PSTR it could not read: no 0 °C or 0 W reading."""
    line = json.dumps(
        {"sys_power": 0.0, "cpu_power": 0.0, "temp": {"cpu_temp_avg": 0.0, "gpu_temp_avg": 41.5}}
    )
    sample = parse_line(line)
    assert sample.system_w is None
    assert sample.cpu_w == 0.0
    assert sample.temperatures_c == {"gpu": 41.5}


def test_macmon_0_8_scaled_ratio_stands_in_for_gpu_usage() -> None:
    """0.8 renamed gpu_usage's ratio to gpu_scaled_ratio; either gives the GPU busy %."""
    assert parse_line('{"gpu_freq_mhz": 461, "gpu_scaled_ratio": 0.25}').gpu_pct == 25.0


def test_null_values_read_as_absent() -> None:
    """serde_json writes a NaN f32 as null: treated like a missing reading."""
    assert parse_line('{"gpu_power": null, "gpu_usage": [338, null]}') == AppleSample()


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'{"cpu_power": 1.5', id="truncated"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'{"cpu_power": "1.5"}', id="string-number"),
        pytest.param(b'{"gpu_power": true}', id="bool"),
        pytest.param(b'{"ane_power": NaN}', id="nan"),
        pytest.param(b'{"sys_power": -3}', id="negative"),
        pytest.param(b'{"all_power": 1e999}', id="infinite"),
        pytest.param(b'{"cpu_power": ' + b"9" * 400 + b"}", id="huge-int"),
        pytest.param(b'{"gpu_usage": 0.5}', id="usage-not-list"),
        pytest.param(b'{"gpu_usage": [1578]}', id="usage-short"),
        pytest.param(b'{"gpu_usage": [1578, "0.5"]}', id="usage-string"),
        pytest.param(b'{"gpu_usage": [1578, 1.5]}', id="usage-above-1"),
        pytest.param(b'{"temp": [40, 50]}', id="temp-not-object"),
        pytest.param(b'{"temp": {"cpu_temp_avg": "hot"}}', id="temp-string"),
    ],
)
def test_bad_macmon_lines_raise_payload_error(line: bytes) -> None:
    """Invalid JSON, wrong shapes and wrong types are one error type with a reason."""
    with pytest.raises(PayloadError):
        parse_line(line)


def test_line_stream_buffers_partial_lines_and_counts_bad_ones() -> None:
    """A line split across reads parses once complete; a bad line between good ones is counted."""
    good = M4_LINES.splitlines()
    stream = LineStream()
    data = good[0] + b"\n{broken\n\n" + good[1] + b"\n"
    samples = feed_all(stream, [data[:100], data[100:250], data[250:]])
    assert len(samples) == 2
    assert stream.rejected == 1
    assert stream.last_error


def test_line_stream_drops_an_endless_line_at_the_size_limit() -> None:
    """A line that never ends cannot grow the buffer without bound."""
    stream = LineStream(max_line_bytes=100)
    assert stream.feed(b"x" * 200) == []
    assert stream.rejected == 1
