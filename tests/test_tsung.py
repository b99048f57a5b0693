"""Tsung collectors: tsung.log (text and JSON backends) and the protocol dump, checked against the raw files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from collectors import registry, tsung_dump, tsung_json, tsung_log
from collectors.base import CollectorError

DATA = Path(__file__).parent
LOG = DATA / "data/tsung_log/duplicate-match-key-late-404-osmon.log"
ERR_LOG = DATA / "data/tsung_log/error-timeout-500-503-short-last-dump.log"
JSON = DATA / "data/tsung_json/json-backend-empty-opening-block-http-prefix.log"
DUMP = DATA / "data/tsung_dump/variable-decimals-match-column-404-503.dump"
ERR_DUMP = DATA / "data/tsung_dump/error-no-http-status-404-500-503.dump"


def _raw_dump(path: Path) -> dict[str, np.ndarray]:
    """Parse the dump independently of the collector: plain text splitting."""
    lines = path.read_text().splitlines()[1:]
    fields = [line.split(";") for line in lines]
    return {
        "date": np.array([f[0] for f in fields]),
        "status": np.array([f[6] for f in fields]),
        "duration": np.array([float(f[8]) for f in fields]),
        "match": np.array([f[10] for f in fields]),
        "error": np.array([f[11] for f in fields]),
    }


def _whole_run(table, label):
    rows = table.filter(pc.and_(pc.equal(table["label"], label), pc.is_null(table["window_start"]))).to_pylist()
    assert len(rows) == 1
    return rows[0]


def test_registry_picks_each_tsung_format() -> None:
    assert registry.detect(LOG) is tsung_log
    assert registry.detect(JSON) is tsung_json
    assert registry.detect(DUMP) is tsung_dump


def test_whole_run_request_stats_match_the_dump_and_tsungs_own_totals() -> None:
    stats = tsung_log.read(LOG)["request_stats"]
    row = _whole_run(stats, "request")
    raw = _raw_dump(DUMP)
    # Tsung's own run total: last countfb + last count, last meanfb (last block has count 0).
    assert row["count"] == 4896 == len(raw["duration"])
    assert row["mean_ms"] == pytest.approx(29.575797794117648, abs=1e-9)
    assert row["mean_ms"] == pytest.approx(raw["duration"].mean(), abs=1e-6)
    assert row["std_ms"] == pytest.approx(raw["duration"].std(), abs=1e-6)  # Tsung's stddev is the population one
    assert (row["min_ms"], row["max_ms"]) == (raw["duration"].min(), raw["duration"].max()) == (0.079, 341.154)
    assert row["row_kind"] == "total"
    # 404 x 492 and 503 x 5 are the run's failures (no error_* counters in this run).
    assert row["errors"] == 497 == int(np.sum(raw["status"].astype(int) >= 400))


def test_interval_rows_keep_interval_values_and_drop_since_start_extremes() -> None:
    stats = tsung_log.read(LOG)["request_stats"]
    first = stats.filter(pc.equal(stats["label"], "tr_login")).to_pylist()[0]
    # `stats: tr_login 4 1032.59575 739.790149595267 2136.062 180.414 0 0` in the dump at 1795304338
    assert first["window_end"].timestamp() == 1795304338
    assert first["window_start"].timestamp() == 1795304328
    assert (first["count"], first["mean_ms"], first["std_ms"]) == (4, 1032.59575, 739.790149595267)
    assert first["min_ms"] is None and first["max_ms"] is None
    assert first["row_kind"] == "transaction"
    assert first["throughput_rps"] == pytest.approx(0.4)


def test_last_short_interval_matches_the_dump_exactly() -> None:
    # The final 1-second window (1795304438, 1795304439] holds requests ending after the previous flush.
    stats = tsung_log.read(LOG)["request_stats"]
    rows = stats.filter(pc.equal(stats["label"], "request")).to_pylist()
    tenth = rows[10]
    raw = _raw_dump(DUMP)
    ends = raw["date"].astype(float)
    durations = raw["duration"][(ends > tenth["window_start"].timestamp()) & (ends <= tenth["window_end"].timestamp())]
    assert tenth["count"] == len(durations) == 125
    assert tenth["mean_ms"] == pytest.approx(durations.mean(), abs=1e-9)
    assert tenth["std_ms"] == pytest.approx(durations.std(), abs=1e-9)


def test_load_and_host_metrics() -> None:
    tables = tsung_log.read(LOG)
    load = tables["load"].to_pylist()
    assert len(load) == 12
    # block 2: `users 27 28`, `users_count 24 34`, `connected 17 27`, `request 141 ...`, 404 x 7 over 10 s
    second = load[1]
    assert (second["active_users"], second["connected"]) == (27, 27)
    assert second["arrivals_per_s"] == pytest.approx(2.4)
    assert second["rps"] == pytest.approx(14.1)
    assert second["errors_per_s"] == pytest.approx(0.7)
    hosts = tables["host_metrics"]
    cpu = hosts.filter(pc.equal(hosts["metric"], "cpu.busy_pct")).to_pylist()
    assert cpu[0]["host"] == "vm" and cpu[0]["device"] == "all"
    assert cpu[0]["value"] == pytest.approx(9.836592679340235)
    mem = hosts.filter(pc.equal(hosts["metric"], "mem.free_bytes")).to_pylist()
    assert mem[0]["value"] == pytest.approx(23623.8359375 * 1024 * 1024)
    assert set(pc.unique(hosts["metric"]).to_pylist()) == {"cpu.busy_pct", "mem.free_bytes", "load.1m"}


def test_error_counters_count_as_errors() -> None:
    tables = tsung_log.read(ERR_LOG)
    last = [r for r in tables["request_stats"].to_pylist() if r["label"] == "request" and r["window_end"] is not None][-1]
    # last block: error_timeout 19, 503 2, 500 13, 404 12
    assert last["errors"] == 19 + 2 + 13 + 12
    # The run stopped 6 s after a dump: the first window still spans the usual 10 s.
    load = tables["load"].to_pylist()
    assert load[0]["arrivals_per_s"] == pytest.approx(29 / 10)


def test_json_backend_matches_its_own_numbers() -> None:
    tables = tsung_json.read(JSON)
    stats = tables["request_stats"]
    row = _whole_run(stats, "request")
    # second block: request value 86 mean 58.179942 global_mean 43.21204347826086 global_count 92
    assert row["count"] == 92 + 86
    assert row["mean_ms"] == pytest.approx((92 * 43.21204347826086 + 86 * 58.17994186046512) / 178, rel=1e-9)
    windows = stats.filter(pc.equal(stats["label"], "request")).to_pylist()
    assert windows[0]["window_start"].timestamp() == 1795309875  # the empty opening block
    assert windows[1]["errors"] == 23 + 2 + 15 + 15  # error_timeout + http_503 + http_500 + http_404
    assert tables["load"].num_rows == 2


def test_dump_rows_against_raw_text() -> None:
    table = tsung_dump.read(DUMP)["requests"]
    raw = _raw_dump(DUMP)
    assert table.num_rows == len(raw["date"])
    first = table.slice(0, 1).to_pylist()[0]
    # `1795304329.648933;...;get;127.0.0.1;/;200;8380;2.717;tr_home;;;` ends at .648933, started 2.717 ms earlier
    assert first["ts"].timestamp() * 1000 == pytest.approx(1795304329646, abs=0.5)
    assert (first["label"], first["status"], first["bytes"], first["elapsed_ms"], first["thread"]) == ("GET /", "200", 8380, 2.717, "1")
    assert first["var_transaction"] == "tr_home"
    # `match` is not an error: 66 matched rows all succeeded with 200.
    matched = table.filter(pc.equal(table["var_match"], "match"))
    assert matched.num_rows == int(np.sum(raw["match"] == "match")) == 66
    assert pc.all(matched["success"]).as_py()
    assert pc.sum(pc.invert(table["success"])).as_py() == int(np.sum(raw["status"].astype(int) >= 400))
    # Two decimals only (`1795304346.26175`) still lands on the right millisecond.
    short = [i for i, d in enumerate(raw["date"]) if len(d.split(".")[1]) < 6][0]
    expected = int(raw["date"][short].split(".")[0]) * 1000 + int((raw["date"][short].split(".")[1] + "000000")[:6]) / 1000 - raw["duration"][short]
    assert table["ts"][short].as_py().timestamp() * 1000 == pytest.approx(np.floor(expected), abs=0.5)


def test_dump_error_rows() -> None:
    table = tsung_dump.read(ERR_DUMP)["requests"]
    errors = table.filter(pc.equal(table["status"], "error_no_http_status"))
    assert errors.num_rows > 0
    assert set(errors["error"].to_pylist()) == {"error_no_http_status"}
    assert not pc.any(errors["success"]).as_py()
    codes = table.filter(pc.is_in(table["status"], pa.array(["404", "500", "503"])))
    assert codes.num_rows > 0 and not pc.any(codes["success"]).as_py()


def test_truncated_files() -> None:
    notices: list[str] = []
    tables = tsung_log.read(DATA / "data/tsung_log/bad/truncated-mid-line-no-endmonitor.log", warn=notices.append)
    assert tables["load"].num_rows == 2
    assert any("truncated last line" in n for n in notices) and any("EndMonitor" in n for n in notices)
    notices.clear()
    dump = tsung_dump.read(DATA / "data/tsung_dump/bad/truncated-last-line.dump", warn=notices.append)["requests"]
    assert dump.num_rows > 0 and any("truncated" in n for n in notices)
    notices.clear()
    tsung_json.read(DATA / "data/tsung_json/bad/interrupted-run-unclosed.log", warn=notices.append)
    assert any("not closed" in n for n in notices)


@pytest.mark.parametrize(
    ("module", "path", "line"),
    [
        (tsung_log, "tsung_log/bad/non-numeric-value.log", 5),
        (tsung_dump, "tsung_dump/bad/missing-fields.dump", None),
    ],
)
def test_bad_input_names_the_line(module, path, line) -> None:
    with pytest.raises(CollectorError) as info:
        module.read(DATA / "data" / path)
    assert info.value.path.endswith(Path(path).name)
    if line is not None:
        assert info.value.line == line


def test_wrong_format_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    for module in (tsung_log, tsung_json, tsung_dump):
        assert not module.detect(other)
        with pytest.raises(CollectorError):
            module.read(other)
