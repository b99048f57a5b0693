"""One scrape in the Prometheus text exposition format (node_exporter `/metrics`, app endpoints) into `host_metrics`.

Every sample is kept: node_exporter gauges with a vocabulary name (`node_load1`
-> `load.1m`, see `prometheus_range.MAPPINGS`) under that name, everything
else (counters, histograms, summaries, untyped) as `prom.<sample name>` with
its labels as JSON. Counters stay cumulative: a single scrape has no rate.

Concerto's `/api/check/prometheus` quirks (FORMATS.md A6.3): its values go
through PHP `number_format`, so 1000 sessions print as `1,234.0`; the commas
are dropped. Its `session_count` is declared a counter but is a gauge of
active sessions, and is stored as `app.session_count` (`health` as
`app.health`), the names the vocabulary reserves for application endpoints.

The host is the `host` option, else node_exporter's `node_uname_info` nodename, else the
file stem. The time is the sample's own timestamp when it has one, else the `ts`
option, else the file's modification time with a `warn`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from capacity.schema import conform, empty
from collectors.base import CollectorError, first_lines, option_time, read_text
from collectors.prometheus_range import vocabulary_name

name = "prometheus_text"

APP_METRICS = {"session_count": "app.session_count", "health": "app.health"}
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({METRIC_NAME})(?:\{{(.*)\}})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
COMMENT = re.compile(rf"^#\s+(HELP|TYPE)\s+({METRIC_NAME})(?:\s+(.*))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "gaugehistogram", "info", "stateset", "unknown"}

Warn = Callable[[str], None] | None


def detect(path: Path) -> bool:
    """The text starts with `# HELP`/`# TYPE` comments and holds `name{labels} value` samples."""
    lines = first_lines(path, 6)
    if not lines or not COMMENT.match(lines[0]):
        return False
    samples = [ln for ln in lines if not ln.startswith("#")]
    return bool(samples) and all(SAMPLE.match(ln) for ln in samples)


def _labels(path: Path, text: str | None, line: int) -> dict[str, str]:
    if not text or not text.strip():
        return {}
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise CollectorError(path, f"bad label set {{{text[:80]}}}: expected name=\"value\" pairs", line=line)
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        pos = m.end()
    return out


def _value(path: Path, text: str, line: int) -> float:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        raise CollectorError(path, f"sample value {text!r} is not a number (Go ParseFloat syntax expected)", line=line) from None


def parse_text(text: str, ts: datetime, host: str, path: Path | str = "<scrape>") -> pa.Table:
    """A text exposition body as a conformed `host_metrics` table; reusable by a live scraper."""
    path = Path(path)
    types: dict[str, str] = {}
    rows: dict[str, list] = {k: [] for k in ("ts", "host", "metric", "device", "value", "labels", "source")}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = COMMENT.match(line)
            if m and m.group(1) == "TYPE":
                kind = (m.group(3) or "").strip()
                if kind not in TYPES:
                    raise CollectorError(path, f"TYPE {kind!r}: expected one of {', '.join(sorted(TYPES))}", line=number)
                types[m.group(2)] = kind
            continue
        m = SAMPLE.match(line)
        if not m:
            raise CollectorError(path, f"expected `name{{labels}} value [timestamp]`, found {line[:80]!r}", line=number)
        sample_name, label_text, value_text, stamp = m.groups()
        labels = _labels(path, label_text, number)
        value = _value(path, value_text, number)
        try:
            when = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else ts
        except (OverflowError, OSError, ValueError):
            raise CollectorError(path, f"sample timestamp {stamp} (ms) is out of range", line=number) from None
        if sample_name in APP_METRICS and not labels:
            metric, scale, device = APP_METRICS[sample_name], 1.0, None
        elif types.get(sample_name) == "gauge":
            metric, scale, device = vocabulary_name(None, sample_name, labels)
        else:
            metric, scale, device = f"prom.{sample_name}", 1.0, None
        rows["ts"].append(when)
        rows["host"].append(host)
        rows["metric"].append(metric)
        rows["device"].append(device)
        rows["value"].append(value * scale)
        rows["labels"].append(json.dumps(labels, sort_keys=True) if labels else None)
        rows["source"].append(name)
    if not rows["ts"]:
        return empty("host_metrics")
    table = pa.table({k: pa.array(v, pa.timestamp("ms", tz="UTC")) if k == "ts" else v for k, v in rows.items()})
    return conform(table, "host_metrics")


def read(path: Path, ts: datetime | float | None = None, host: str | None = None, warn: Warn = None, **_: object) -> dict[str, pa.Table]:
    """Read one saved scrape into `host_metrics`."""
    path = Path(path)
    text = read_text(path, "the Prometheus text format")
    when = option_time(path, ts)
    if when is None:
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if warn:
            warn(f"{path}: no `ts` option; samples without a timestamp take the file's modification time {when.isoformat()}")
    # node_exporter names its machine in node_uname_info; better than a file name.
    uname = re.search(r'^node_uname_info\{[^}]*nodename="([^"]+)"', text, re.M)
    table = parse_text(text, when, host or (uname.group(1) if uname else path.stem), path)
    if table.num_rows == 0:
        raise CollectorError(path, "no samples: expected `name{labels} value` lines")
    return {"host_metrics": table}
