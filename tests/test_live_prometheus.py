"""`capacity collect prometheus` against a real Prometheus scraping a real node_exporter; chunking, time parsing, faults."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from capacity.live import StopFlag, StoreSink
from capacity.live.prometheus import chunk_span, chunks, collect_range, connect, parse_duration, parse_time
from capacity.store import Store
from tests.live_servers import ScriptedHTTP, prometheus_server  # noqa: F401 - fixture
from tests.servers import free_port, node_exporter  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent


def _meminfo_total() -> int:
    line = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal:"))
    return int(line.split()[1]) * 1024


def _capacity(*args: str, timeout: float = 40) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capacity", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_collect_prometheus_from_a_real_server(prometheus_server, tmp_path):  # noqa: F811 - fixture
    prom = prometheus_server
    prom.wait_for_samples(12)
    end = math.floor(time.time()) - 1
    start = end - 8
    store_dir, log = tmp_path / "store", tmp_path / "polls.jsonl"
    done = _capacity("collect", "prometheus", prom.url, "--query", "rate(node_cpu_seconds_total[3s])", "--query", "node_memory_MemTotal_bytes",
                     "--query", "node_load1", "--start", str(start), "--end", str(end), "--step", "1s", "--max-points", "4",
                     "--run", "prom", "--store", str(store_dir), "--log", str(log))
    assert done.returncode == 0, done.stderr
    assert "0 gap(s)" in done.stdout
    # 8 s at 1 s with at most 4 points a request: 3 s chunks, 3 requests per query.
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["ok"] * 9
    hm = Store.open(store_dir).table("host_metrics", ["prom"])

    def rows(metric: str, device: str | None = None) -> list[dict]:
        found = hm.filter(pc.equal(hm["metric"], metric)).to_pylist()
        return sorted((r for r in found if device is None or r["device"] == device), key=lambda r: r["ts"])

    # Every grid point once: no chunk edge twice, none missing.
    mem = rows("mem.total_bytes")
    assert [int(r["ts"].timestamp()) for r in mem] == list(range(start, end + 1))
    assert {r["value"] for r in mem} == {float(_meminfo_total())}
    assert {r["host"] for r in mem} == {"127.0.0.1"}
    assert json.loads(mem[0]["labels"])["job"] == "node"
    # node_load1 equals what the API itself answers for the same range.
    raw = prom.api("/api/v1/query_range", query="node_load1", start=start, end=end, step=1)["data"]["result"][0]["values"]
    assert [(int(r["ts"].timestamp()), r["value"]) for r in rows("load.1m")] == [(int(t), float(v)) for t, v in raw]
    # rate(node_cpu_seconds_total) becomes cpu.<mode>_pct per CPU, plus the mean over CPUs and busy.
    cpus = sum(1 for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("cpu") and ln[3:4].isdigit())
    devices = {r["device"] for r in rows("cpu.user_pct")}
    assert devices == {str(i) for i in range(cpus)} | {"all"}
    busy = rows("cpu.busy_pct", "all")
    assert len(busy) == end - start + 1 and all(0 <= r["value"] <= 100 for r in busy)
    assert set(pc.unique(hm["source"]).to_pylist()) == {"prometheus_range_live"}
    files = Store.open(store_dir).catalog()["runs"]["prom"]["files"]
    assert all(f["path"] == prom.url and f["gaps"] == [] for f in files)


def test_prometheus_garbage_slow_and_errors_become_gaps(tmp_path):
    good = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "node_load1", "instance": "web1:9100"}, "values": [[1795300000, "0.5"], [1795300001, "0.75"]]}]}}).encode()
    script_by_start = {
        "1795300000": [(503, b"overloaded", 0.0), (200, b"<html>proxy error</html>", 0.0), (200, good, 0.0)],
        "1795300001": [(200, good, 1.0)] * 3,  # always slower than the timeout
    }
    served: dict[str, int] = {}

    def script(_index: int, path: str):
        start = path.split("start=")[1].split("&")[0]
        n = served.get(start, 0)
        served[start] = n + 1
        return script_by_start[start][min(n, 2)]

    store = Store.open(tmp_path / "store", create=True)
    with ScriptedHTTP(script) as server:
        sink = StoreSink(store, "p", collector="prometheus_range_live", location=server.url, host=None)
        begin = datetime.fromtimestamp(1795300000, UTC)
        summary = collect_range(connect(server.url, timeout=0.3), server.url, ["node_load1"], begin, begin + timedelta(seconds=2), 1.0,
                                sink, stop=StopFlag(), max_points=2, retries=2, retry_wait=0.01)
    assert summary.failed_polls == 2 + 3
    table = store.table("host_metrics", ["p"])
    assert table["value"].to_pylist() == [0.5, 0.75]
    assert set(table["metric"].to_pylist()) == {"load.1m"} and set(table["host"].to_pylist()) == {"web1"}
    gaps = [g for f in store.catalog()["runs"]["p"]["files"] for g in f["gaps"]]
    assert len(gaps) == 1
    assert gaps[0]["query"] == "node_load1" and gaps[0]["failed_polls"] == 3
    assert gaps[0]["start"].startswith(datetime.fromtimestamp(1795300001, UTC).isoformat()[:19])
    assert "Timeout" in gaps[0]["error"] or "timed out" in gaps[0]["error"]


def test_unreachable_prometheus_exits_3_with_gaps_recorded(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    done = _capacity("collect", "prometheus", url, "--query", "up", "--start", "-1m", "--end", "now", "--step", "15s",
                     "--retries", "1", "--run", "down", "--store", str(tmp_path / "store"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "every request failed" in done.stderr
    files = Store.open(tmp_path / "store").catalog()["runs"]["down"]["files"]
    assert [g["failed_polls"] for f in files for g in f["gaps"]] == [2]


def test_bad_times_are_usage_errors(tmp_path):
    done = _capacity("collect", "prometheus", "http://127.0.0.1:1", "--query", "up", "--start", "yesterday", "--run", "x",
                     "--store", str(tmp_path / "s"))
    assert done.returncode == 2 and "is not a time" in done.stderr


def test_time_and_duration_parsing():
    now = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    assert parse_time("now", now) == now
    assert parse_time("-15m", now) == now - timedelta(minutes=15)
    assert parse_time("now-1h30m", now) == now - timedelta(hours=1, minutes=30)
    assert parse_time("1795303943", now) == datetime.fromtimestamp(1795303943, UTC)
    assert parse_time("1795303943.5", now).microsecond == 500000
    assert parse_time("2026-11-21T23:25:00Z", now) == datetime(2026, 11, 21, 23, 25, tzinfo=UTC)
    assert parse_time("2026-11-22T00:25:00+01:00", now) == datetime(2026, 11, 21, 23, 25, tzinfo=UTC)
    with pytest.raises(ValueError, match="zone offset"):
        parse_time("2026-11-21T23:25:00", now)
    assert [parse_duration(t) for t in ("1s", "15s", "1m30s", "500ms", "0.5", "2h")] == [1, 15, 90, 0.5, 0.5, 7200]
    for bad in ("", "abc", "1x", "-5s", "0s", "5s3"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_chunks_respect_the_point_limit_and_stay_on_the_step_grid():
    start = datetime.fromtimestamp(1795300000.7, UTC)
    end = datetime.fromtimestamp(1795300000 + 100_000, UTC)
    spans = list(chunks(start, end, 15.0, 11_000))
    assert spans[0][0].timestamp() == 1795300000  # whole seconds: what the client sends
    for lo, hi in spans:
        assert (hi - lo).total_seconds() / 15 + 1 <= 11_000
        assert ((lo - spans[0][0]).total_seconds() / 15).is_integer()
    assert spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert chunk_span(0.5, 11_000) == 5499  # 10998 steps of 0.5 s: the largest even count under the limit
    assert chunk_span(1.0, 4) == 3
