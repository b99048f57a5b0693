"""Saved Prometheus HTTP API responses (query_range matrix, instant vector) into `host_metrics`.

Reads the raw API body (`{"status":"success","data":{"resultType":"matrix",...}}`)
or the bare result list that prometheus-api-client's `custom_query_range`
returns. `series_to_table` does the mapping so a live poller can reuse it.

The query is not in the file. What a series measures comes from, in order:
its `__name__` label (kept by plain selectors), the `query` option
(`rate(node_cpu_seconds_total[15s])`), or the file name written after it
(`prom_range_rate_node_cpu_seconds_total_15s_step1.json`). Common
node_exporter series map onto the vocabulary (`MAPPINGS`); any other series is
kept as `prom.<name>`. Every row keeps the series labels as JSON in `labels`.
`rate(node_cpu_seconds_total)` is a fraction of a second per second per CPU:
it becomes `cpu.<mode>_pct` per CPU, plus device `all` (the mean over CPUs)
and `cpu.busy_pct` (share of non-idle, non-iowait time) for both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform, empty
from collectors.base import CollectorError, head_text

name = "prometheus_range"

RATE_FUNCS = {"rate", "irate"}
# (function or None, metric name) -> (vocabulary metric, scale, label giving the device).
# `{mode}` in a metric name is filled from the series' `mode` label.
MAPPINGS: dict[tuple[str | None, str], tuple[str, float, str | None]] = {
    ("rate", "node_cpu_seconds_total"): ("cpu.{mode}_pct", 100.0, "cpu"),
    (None, "node_load1"): ("load.1m", 1.0, None),
    (None, "node_load5"): ("load.5m", 1.0, None),
    (None, "node_load15"): ("load.15m", 1.0, None),
    (None, "node_memory_MemAvailable_bytes"): ("mem.available_bytes", 1.0, None),
    (None, "node_memory_MemTotal_bytes"): ("mem.total_bytes", 1.0, None),
    (None, "node_memory_MemFree_bytes"): ("mem.free_bytes", 1.0, None),
    (None, "node_memory_Cached_bytes"): ("mem.cached_bytes", 1.0, None),
    (None, "node_memory_Buffers_bytes"): ("mem.buffers_bytes", 1.0, None),
    (None, "node_memory_SwapTotal_bytes"): ("swap.total_bytes", 1.0, None),
    (None, "node_memory_SwapFree_bytes"): ("swap.free_bytes", 1.0, None),
    (None, "node_procs_running"): ("tasks.running", 1.0, None),
    (None, "node_procs_blocked"): ("load.blocked", 1.0, None),
    ("rate", "node_network_receive_bytes_total"): ("net.rx_bytes_per_s", 1.0, "device"),
    ("rate", "node_network_transmit_bytes_total"): ("net.tx_bytes_per_s", 1.0, "device"),
    ("rate", "node_network_receive_packets_total"): ("net.rx_packets_per_s", 1.0, "device"),
    ("rate", "node_network_transmit_packets_total"): ("net.tx_packets_per_s", 1.0, "device"),
    ("rate", "node_network_receive_errs_total"): ("net.rx_errors_per_s", 1.0, "device"),
    ("rate", "node_network_transmit_errs_total"): ("net.tx_errors_per_s", 1.0, "device"),
    ("rate", "node_network_receive_drop_total"): ("net.rx_drops_per_s", 1.0, "device"),
    ("rate", "node_network_transmit_drop_total"): ("net.tx_drops_per_s", 1.0, "device"),
    ("rate", "node_disk_read_bytes_total"): ("disk.read_bytes_per_s", 1.0, "device"),
    ("rate", "node_disk_written_bytes_total"): ("disk.write_bytes_per_s", 1.0, "device"),
    ("rate", "node_disk_io_time_seconds_total"): ("disk.util_pct", 100.0, "device"),
    ("rate", "node_context_switches_total"): ("proc.cswch_per_s", 1.0, None),
    ("rate", "node_forks_total"): ("proc.created_per_s", 1.0, None),
    ("rate", "node_vmstat_pgfault"): ("paging.faults_per_s", 1.0, None),
    ("rate", "node_vmstat_pgmajfault"): ("paging.major_faults_per_s", 1.0, None),
    ("rate", "node_vmstat_pswpin"): ("swap.in_pages_per_s", 1.0, None),
    ("rate", "node_vmstat_pswpout"): ("swap.out_pages_per_s", 1.0, None),
}
CPU_MODES = {"user", "nice", "system", "iowait", "irq", "softirq", "steal", "idle", "guest"}
QUERY = re.compile(r"^\s*(?:(\w+)\s*\(\s*)?([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*(?:\[[^\]]+\])?\s*\)?\s*$")
ENVELOPE = re.compile(r'^\s*\{\s*"status"\s*:\s*"(?:success|error)"')
RESULT_TYPE = re.compile(r'"(?:resultType"\s*:\s*"(?:matrix|vector|scalar)"|errorType"\s*:)')
BARE_LIST = re.compile(r'^\s*\[\s*\{\s*"metric"\s*:\s*\{')

Warn = Callable[[str], None] | None


def parse_query(query: str) -> tuple[str | None, str]:
    """(outer function or None, metric name) of a simple PromQL query; (None, sanitised text) otherwise."""
    m = QUERY.match(query)
    if m:
        func = m.group(1)
        return (("rate" if func in RATE_FUNCS else func) if func else None), m.group(2)
    return None, re.sub(r"[^a-zA-Z0-9_:]+", "_", query).strip("_")


def query_from_filename(stem: str) -> tuple[str | None, str]:
    """(function, metric name) encoded in a saved file name such as `prom_range_rate_node_cpu_seconds_total_15s_step1`."""
    base = re.sub(r"^prom(?:etheus)?_(?:range|instant|query)_", "", stem)
    base = re.sub(r"_step\d+(?:\.\d+)?[smh]?$", "", base)
    func = None
    m = re.match(r"^(rate|irate|increase|deriv|delta)_(.+)$", base)
    if m:
        func, base = ("rate" if m.group(1) in RATE_FUNCS else m.group(1)), m.group(2)
        base = re.sub(r"_\d+[smhdwy]$", "", base)
    return func, base


def vocabulary_name(func: str | None, metric_name: str, labels: dict[str, str]) -> tuple[str, float, str | None]:
    """(host_metrics metric, scale, device) for one series; unmapped series become `prom.<name>`."""
    mapped = MAPPINGS.get((func, metric_name))
    if mapped:
        metric, scale, device_label = mapped
        if "{mode}" in metric:
            mode = labels.get("mode", "")
            if mode not in CPU_MODES:
                return f"prom.{func}_{metric_name}" if func else f"prom.{metric_name}", 1.0, labels.get(device_label or "")
            metric = metric.format(mode=mode)
        return metric, scale, labels.get(device_label) if device_label else None
    prefix = f"{func}_" if func else ""
    return f"prom.{prefix}{metric_name}", 1.0, None


def _host(labels: dict[str, str], host: str | None, fallback: str) -> str:
    if host:
        return host
    instance = labels.get("instance")
    if instance:
        return re.sub(r":\d+$", "", instance)
    return fallback


def _points(path: Path | str, series: dict, index: int) -> tuple[np.ndarray, pa.Array]:
    pairs = series.get("values")
    if pairs is None and "value" in series:
        pairs = [series["value"]]
    if not isinstance(pairs, list) or any(not isinstance(p, list) or len(p) != 2 for p in pairs):
        raise CollectorError(path, f"result[{index}]: expected `values` as [[<unix ts>, \"<value>\"], ...]")
    try:
        seconds = np.asarray([p[0] for p in pairs], dtype=np.float64)
        if len(seconds) and not (np.isfinite(seconds).all() and np.abs(seconds).max() < 1e12):
            raise ValueError("timestamp out of range")
        ts = np.rint(seconds * 1000).astype("int64")
        values = pc.cast(pa.array([str(p[1]) for p in pairs], pa.string()), pa.float64())
    except (ValueError, TypeError, pa.ArrowInvalid) as exc:
        raise CollectorError(path, f"result[{index}]: bad sample: {exc}") from None
    return ts, values


def series_to_table(result: list[dict], query: str | None = None, host: str | None = None,
                    fallback_name: tuple[str | None, str] | None = None, source: str = name,
                    path: Path | str = "<prometheus>") -> pa.Table:
    """Prometheus `data.result` (matrix or vector) as a conformed `host_metrics` table.

    `query` (or `fallback_name`, a (function, metric) pair) names series
    without `__name__`, as functions such as `rate()` drop it.
    """
    from_query = parse_query(query) if query else fallback_name
    parts: list[pa.Table] = []
    for index, series in enumerate(result):
        if not isinstance(series, dict) or not isinstance(series.get("metric"), dict):
            raise CollectorError(path, f"result[{index}]: expected an object with `metric` labels")
        labels = {str(k): str(v) for k, v in series["metric"].items()}
        if "__name__" in labels:
            func, metric_name = None, labels.pop("__name__")
            if from_query and from_query[1] == metric_name:
                func = from_query[0]
        elif from_query:
            func, metric_name = from_query
        else:
            func, metric_name = None, "value"
        metric, scale, device = vocabulary_name(func, metric_name, labels)
        ts, values = _points(path, series, index)
        n = len(ts)
        if not n:
            continue
        parts.append(pa.table({
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "host": pa.array([_host(labels, host, Path(str(path)).stem)] * n, pa.string()),
            "metric": pa.array([metric] * n, pa.string()),
            "device": pa.array([device] * n, pa.string()),
            "value": pc.multiply(values, scale) if scale != 1.0 else values,
            "labels": pa.array([json.dumps(labels, sort_keys=True)] * n, pa.string()),
            "source": pa.array([source] * n, pa.string()),
        }))
    if not parts:
        return empty("host_metrics")
    table = pa.concat_tables(parts)
    table = _cpu_aggregates(table)
    return conform(table, "host_metrics")


def _cpu_aggregates(table: pa.Table) -> pa.Table:
    """Add device `all` (mean over CPUs) for cpu.*_pct, and `cpu.busy_pct` per device."""
    is_cpu = pc.and_(pc.starts_with(table["metric"], "cpu."), pc.is_valid(table["device"]))
    cpu = table.filter(is_cpu)
    if cpu.num_rows == 0:
        return table
    mean = cpu.group_by(["ts", "host", "metric"]).aggregate([("value", "mean")]).rename_columns(["ts", "host", "metric", "value"])
    n = mean.num_rows
    all_rows = pa.table({
        "ts": mean["ts"], "host": mean["host"], "metric": mean["metric"],
        "device": pa.array(["all"] * n, pa.string()), "value": mean["value"],
        "labels": pa.array([json.dumps({"aggregate": "mean over cpus"})] * n, pa.string()),
        "source": pa.array([table["source"][0].as_py()] * n, pa.string()),
    })
    combined = pa.concat_tables([table, all_rows])
    cpu_all = combined.filter(pc.and_(pc.starts_with(combined["metric"], "cpu."), pc.is_valid(combined["device"])))
    # Normalised by the sum of all modes: at a window's edge rate() extrapolation makes
    # the modes add up to less than 100 %, which `100 - idle` would read as load.
    flag = pc.is_in(cpu_all["metric"], pa.array(["cpu.idle_pct", "cpu.iowait_pct"]))
    cpu_all = cpu_all.append_column("waiting", pc.if_else(flag, cpu_all["value"], 0.0))
    sums = cpu_all.group_by(["ts", "host", "device"]).aggregate([("value", "sum"), ("waiting", "sum"), ("waiting", "count")])
    sums = sums.filter(pc.greater(sums["value_sum"], 0))
    m = sums.num_rows
    if m == 0:
        return combined
    share = pc.divide(pc.subtract(sums["value_sum"], sums["waiting_sum"]), sums["value_sum"])
    busy = pa.table({
        "ts": sums["ts"], "host": sums["host"], "metric": pa.array(["cpu.busy_pct"] * m, pa.string()),
        "device": sums["device"], "value": pc.multiply(share, 100.0),
        "labels": pa.array([json.dumps({"derived": "100 * (all modes - idle - iowait) / all modes"})] * m, pa.string()),
        "source": pa.array([table["source"][0].as_py()] * m, pa.string()),
    })
    return pa.concat_tables([combined, busy])


def detect(path: Path) -> bool:
    """A Prometheus API JSON envelope (a result or an error), or prometheus-api-client's bare result list."""
    text = head_text(path, 4096)
    return bool(text) and ((ENVELOPE.match(text) is not None and RESULT_TYPE.search(text) is not None) or BARE_LIST.match(text) is not None)


def read(path: Path, query: str | None = None, host: str | None = None, warn: Warn = None, **_: object) -> dict[str, pa.Table]:
    """Read a saved query_range (or instant query) response into `host_metrics`."""
    path = Path(path)
    try:
        body = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise CollectorError(path, f"invalid JSON ({exc.msg}): expected a Prometheus API response", line=exc.lineno) from None
    except UnicodeDecodeError:
        raise CollectorError(path, "not UTF-8 JSON: expected a Prometheus API response") from None
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc.strerror}") from None
    if isinstance(body, dict):
        if body.get("status") != "success":
            raise CollectorError(path, f"the saved response is an error: {body.get('errorType')}: {body.get('error')}")
        data = body.get("data")
        if not isinstance(data, dict) or "result" not in data:
            raise CollectorError(path, "expected `data.result` in the API response")
        kind, result = data.get("resultType"), data["result"]
        if body.get("warnings") and warn:
            warn(f"{path}: Prometheus warned: {'; '.join(map(str, body['warnings']))}")
        if kind == "scalar":
            result = [{"metric": {}, "value": result}]
        elif kind not in ("matrix", "vector"):
            raise CollectorError(path, f"resultType {kind!r}: expected matrix, vector or scalar")
    elif isinstance(body, list):
        result = body
    else:
        raise CollectorError(path, "expected a JSON object (API response) or a list of series")
    if not isinstance(result, list):
        raise CollectorError(path, "`result` is not a list of series")
    fallback = query_from_filename(path.stem)
    table = series_to_table(result, query=query, host=host, fallback_name=fallback, path=path)
    if table.num_rows == 0 and warn:
        warn(f"{path}: the result holds no samples")
    return {"host_metrics": table}
