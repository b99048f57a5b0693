"""prometheus_range (saved API JSON) and prometheus_text (exposition format), plus a live node_exporter scrape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pytest

from capacity.schema import is_known_metric
from collectors import prometheus_range, prometheus_text
from collectors.base import CollectorError
from tests.servers import node_exporter  # noqa: F401 - pytest fixture

RANGE = Path(__file__).resolve().parent / "data" / "prometheus_range"
TEXT = Path(__file__).resolve().parent / "data" / "prometheus_text"


def sample(folder: Path, name: str) -> Path:
    path = folder / name
    assert path.is_file(), f"missing sample {path}"
    return path


def series(path: Path) -> list[dict]:
    return json.loads(path.read_text())["data"]["result"]


def pick(table, metric: str, device: str | None = None):
    cond = pc.equal(table["metric"], metric)
    if device is not None:
        cond = pc.and_(cond, pc.equal(table["device"], device))
    return table.filter(cond)


def test_node_load1_values_and_timestamps():
    path = sample(RANGE, "prom_range_node_load1_step1.json")
    (raw,) = series(path)
    table = prometheus_range.read(path)["host_metrics"]
    assert table.num_rows == len(raw["values"])
    assert set(table["metric"].to_pylist()) == {"load.1m"}
    assert table["ts"][0].as_py() == datetime.fromtimestamp(raw["values"][0][0], UTC)
    assert table["value"].to_pylist() == [float(v) for _, v in raw["values"]]
    assert set(table["host"].to_pylist()) == {"127.0.0.1"}  # instance label without the port
    assert json.loads(table["labels"][0].as_py()) == {"instance": "127.0.0.1:19100", "job": "node"}


def test_mem_available_bytes():
    path = sample(RANGE, "prom_range_node_memory_MemAvailable_bytes_step1.json")
    (raw,) = series(path)
    table = prometheus_range.read(path)["host_metrics"]
    assert set(table["metric"].to_pylist()) == {"mem.available_bytes"}
    assert table["value"][10].as_py() == float(raw["values"][10][1])


def test_rate_cpu_by_mode_per_cpu_and_all():
    path = sample(RANGE, "prom_range_rate_node_cpu_seconds_total_15s_step1.json")
    raw = series(path)
    table = prometheus_range.read(path)["host_metrics"]
    assert all(is_known_metric(m) for m in set(table["metric"].to_pylist()))
    user0 = next(s for s in raw if s["metric"]["cpu"] == "0" and s["metric"]["mode"] == "user")
    user1 = next(s for s in raw if s["metric"]["cpu"] == "1" and s["metric"]["mode"] == "user")
    ts0, v0 = user0["values"][50]
    got = pick(table, "cpu.user_pct", "0")
    at = got.filter(pc.equal(got["ts"], got["ts"][50]))
    assert at["ts"][0].as_py() == datetime.fromtimestamp(ts0, UTC)
    assert at["value"][0].as_py() == pytest.approx(float(v0) * 100)
    v1 = dict((t, float(v)) for t, v in user1["values"])[ts0]
    all_rows = pick(table, "cpu.user_pct", "all")
    mean = all_rows.filter(pc.equal(all_rows["ts"], at["ts"][0]))["value"][0].as_py()
    assert mean == pytest.approx((float(v0) + v1) / 2 * 100)
    busy = pick(table, "cpu.busy_pct", "all")
    assert busy.num_rows == len(user0["values"])
    assert 0 <= pc.min(busy["value"]).as_py() and pc.max(busy["value"]).as_py() <= 100.0 + 1e-9
    # modes of one CPU at one time: busy = non-idle, non-iowait share
    modes = {s["metric"]["mode"]: float(dict((t, v) for t, v in s["values"])[ts0]) for s in raw if s["metric"]["cpu"] == "0"}
    expected = 100 * (sum(modes.values()) - modes["idle"] - modes["iowait"]) / sum(modes.values())
    busy0 = pick(table, "cpu.busy_pct", "0")
    assert busy0.filter(pc.equal(busy0["ts"], at["ts"][0]))["value"][0].as_py() == pytest.approx(expected)


def test_rate_network_per_device():
    path = sample(RANGE, "prom_range_rate_node_network_receive_bytes_total_15s_step1.json")
    raw = series(path)
    table = prometheus_range.read(path)["host_metrics"]
    assert set(table["metric"].to_pylist()) == {"net.rx_bytes_per_s"}
    assert sorted(set(table["device"].to_pylist())) == sorted(s["metric"]["device"] for s in raw) == ["eth0", "ifb0", "ifb1"]
    eth0 = next(s for s in raw if s["metric"]["device"] == "eth0")
    assert pick(table, "net.rx_bytes_per_s", "eth0")["value"].to_pylist() == [float(v) for _, v in eth0["values"]]


def test_instant_vector_unmapped_series():
    table = prometheus_range.read(sample(RANGE, "prom_instant_up.json"))["host_metrics"]
    assert table["metric"].to_pylist() == ["prom.up", "prom.up"]
    assert [json.loads(v)["job"] for v in table["labels"].to_pylist()] == ["prometheus", "node"]
    assert table["ts"][0].as_py() == datetime.fromtimestamp(1795303545, UTC)


def test_query_option_overrides_file_name(tmp_path):
    body = sample(RANGE, "prom_range_rate_node_network_receive_bytes_total_15s_step1.json").read_text()
    path = tmp_path / "saved.json"
    path.write_text(body)
    unnamed = prometheus_range.read(path)["host_metrics"]
    assert set(unnamed["metric"].to_pylist()) == {"prom.saved"}
    named = prometheus_range.read(path, query="rate(node_network_receive_bytes_total[15s])", host="vm")["host_metrics"]
    assert set(named["metric"].to_pylist()) == {"net.rx_bytes_per_s"}
    assert set(named["host"].to_pylist()) == {"vm"}
    other = prometheus_range.read(path, query='sum by (device) (irate(foo_total[1m]))')["host_metrics"]
    assert all(m.startswith("prom.") for m in set(other["metric"].to_pylist()))


def test_series_to_table_from_api_client_list(tmp_path):
    result = series(sample(RANGE, "prom_range_node_load1_step1.json"))
    table = prometheus_range.series_to_table(result, host="db1")
    assert set(table["host"].to_pylist()) == {"db1"} and set(table["metric"].to_pylist()) == {"load.1m"}
    # prometheus-api-client's custom_query_range returns the bare list
    path = tmp_path / "client.json"
    path.write_text(json.dumps(result))
    assert prometheus_range.detect(path)
    assert prometheus_range.read(path)["host_metrics"].num_rows == table.num_rows


def test_special_values_and_fractional_timestamps(tmp_path):
    path = tmp_path / "prom_range_node_load5.json"
    path.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "node_load5"}, "values": [[1795303943.5, "NaN"], [1795303944.5, "+Inf"], [1795303945.5, "1.5"]]}]}}))
    table = prometheus_range.read(path)["host_metrics"]
    assert table["ts"][0].as_py() == datetime(2026, 11, 21, 23, 32, 23, 500000, tzinfo=UTC)
    values = table["value"].to_pylist()
    assert values[0] != values[0] and values[1] == float("inf") and values[2] == 1.5


def test_range_bad_files():
    with pytest.raises(CollectorError, match="11,000 points"):
        prometheus_range.read(sample(RANGE, "bad/error-response-11000-points.json"))
    with pytest.raises(CollectorError, match="invalid JSON"):
        prometheus_range.read(sample(RANGE, "bad/truncated-mid-values.json"))
    assert not prometheus_range.detect(sample(TEXT, "node_exporter-1.5.0-metrics.txt"))


# --- text exposition --------------------------------------------------------------------------


def test_node_exporter_text_gauges_mapped_counters_kept():
    path = sample(TEXT, "node_exporter-1.5.0-metrics.txt")
    text = path.read_text()
    table = prometheus_text.read(path, ts=1795303540)["host_metrics"]
    samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert table.num_rows == len(samples)
    raw_load = next(ln for ln in samples if ln.startswith("node_load1 ")).split()[1]
    assert pick(table, "load.1m")["value"].to_pylist() == [float(raw_load)]
    assert pick(table, "mem.available_bytes").num_rows == 1
    idle0 = next(ln for ln in samples if ln.startswith('node_cpu_seconds_total{cpu="0",mode="idle"}')).split()[1]
    cpu = pick(table, "prom.node_cpu_seconds_total")
    idle = [r for r in cpu.to_pylist() if json.loads(r["labels"]) == {"cpu": "0", "mode": "idle"}]
    assert idle[0]["value"] == float(idle0)
    assert set(table["host"].to_pylist()) == {"vm"}  # node_uname_info nodename
    assert set(table["ts"].to_pylist()) == {datetime.fromtimestamp(1795303540, UTC)}
    assert pick(table, "prom.go_gc_duration_seconds").num_rows == 5  # summary quantiles


def test_concerto_thousands_separator_and_app_gauges(tmp_path):
    path = tmp_path / "concerto_check.txt"
    path.write_text("# HELP session_count Estimated session count\n# TYPE session_count counter\nsession_count 1,234.0\n"
                    "# HELP health Health check\n# TYPE health counter\nhealth 1.0\n")
    assert prometheus_text.detect(path)
    warnings: list[str] = []
    table = prometheus_text.read(path, host="concerto", warn=warnings.append)["host_metrics"]
    assert {r["metric"]: r["value"] for r in table.to_pylist()} == {"app.session_count": 1234.0, "app.health": 1.0}
    assert any("modification time" in w for w in warnings)


def test_text_sample_timestamp_and_escapes(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text('# TYPE http_requests_total counter\nhttp_requests_total{method="post",path="/a \\"b\\""} 1027 1795303540123\n')
    row = prometheus_text.read(path, ts=0)["host_metrics"].to_pylist()[0]
    assert row["ts"] == datetime(2026, 11, 21, 23, 25, 40, 123000, tzinfo=UTC)
    assert json.loads(row["labels"]) == {"method": "post", "path": '/a "b"'}


def test_text_bad_input(tmp_path):
    with pytest.raises(CollectorError) as info:
        prometheus_text.read(sample(TEXT, "bad/value-not-a-number.txt"), ts=0)
    assert info.value.line == 13
    html = tmp_path / "page.html"
    html.write_text("<html><body>not metrics</body></html>\n")
    assert not prometheus_text.detect(html)
    with pytest.raises(CollectorError):
        prometheus_text.read(html, ts=0)


def test_live_node_exporter_scrape(node_exporter, tmp_path):  # noqa: F811 - fixture
    path = tmp_path / "metrics.txt"
    path.write_text(node_exporter.scrape())
    assert prometheus_text.detect(path)
    table = prometheus_text.read(path, ts=datetime.now(UTC))["host_metrics"]
    assert pick(table, "load.1m").num_rows == 1
    total = pick(table, "mem.total_bytes")["value"][0].as_py()
    available = pick(table, "mem.available_bytes")["value"][0].as_py()
    assert 0 < available <= total
    with open("/proc/meminfo") as fh:
        meminfo = dict(line.split(":", 1) for line in fh)
    assert total == int(meminfo["MemTotal"].split()[0]) * 1024
    assert pick(table, "prom.node_cpu_seconds_total").num_rows >= 8
