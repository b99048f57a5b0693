"""Locust `--json` / `--json-file` output into `request_stats` and `load`.

A list of per-endpoint entries (FORMATS.md L5.3): `name, method, start_time,
last_request_timestamp, num_requests, num_failures, total_response_time,
min/max_response_time, total_content_length, response_times` (a bucketed
histogram: bucket -> count) `, num_reqs_per_sec, num_fail_per_sec` (epoch second
-> count). There is no aggregate entry: the `Aggregated` row is built by merging
the histograms, as Locust's master does.

Rows: one whole-run `request_stats` row per endpoint plus the `Aggregated`
total, percentiles from the histogram with Locust's own rule (walk buckets from
the largest down until `num_requests - processed <= int(num_requests * p)`),
so `percentile_method` is `locust-bucketed`; one windowed row per endpoint and
second (count, errors, throughput); and one `load` row per second (rps and
errors/s summed over endpoints; Locust does not record users here).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from collectors.base import CollectorError, head_text, read_text, rows_table

name = "locust_json"

PERCENTILES = {"p50_ms": 0.5, "p66_ms": 0.66, "p75_ms": 0.75, "p80_ms": 0.8, "p90_ms": 0.9, "p95_ms": 0.95, "p98_ms": 0.98, "p99_ms": 0.99, "p999_ms": 0.999}
REQUIRED = ("name", "method", "start_time", "last_request_timestamp", "num_requests", "num_failures", "total_response_time",
            "max_response_time", "min_response_time", "total_content_length", "response_times", "num_reqs_per_sec", "num_fail_per_sec")
METADATA = {b"percentile_method": b"locust-bucketed"}


def detect(path: Path) -> bool:
    """A JSON list whose first entry has Locust's `num_reqs_per_sec` and `response_times` keys."""
    head = head_text(path, 4096).lstrip()
    return head.startswith("[") and '"num_reqs_per_sec"' in head and '"response_times"' in head and '"total_response_time"' in head


def percentile(histogram: dict[float, int], count: int, p: float) -> float | None:
    """Locust's `calculate_response_time_percentile` over a bucketed histogram."""
    if count <= 0:
        return None
    wanted = int(count * p)
    processed = 0
    for bucket in sorted(histogram, reverse=True):
        processed += histogram[bucket]
        if count - processed <= wanted:
            return float(bucket)
    return 0.0


def _entries(path: Path) -> list[dict]:
    text = read_text(path, "Locust --json output")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CollectorError(path, f"invalid JSON ({exc.msg}): expected Locust --json output", line=exc.lineno) from exc
    if not isinstance(data, list):
        raise CollectorError(path, "expected a JSON list of per-endpoint entries")
    for i, entry in enumerate(data):
        missing = [k for k in REQUIRED if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise CollectorError(path, f"entry {i}: missing key(s) {', '.join(missing)}")
    return data


def _histogram(path: Path, entry: dict) -> Counter:
    try:
        return Counter({float(k): int(v) for k, v in entry["response_times"].items()})
    except (AttributeError, TypeError, ValueError) as exc:
        raise CollectorError(path, f"entry {entry['name']!r}: response_times must map numbers to counts") from exc


def _summary(label: str, kind: str, count: int, failures: int, total_ms: float, vmin: float | None, vmax: float | None,
             content: int, start: float, last: float, histogram: Counter) -> dict[str, object]:
    row: dict[str, object] = {
        "label": label, "row_kind": kind, "count": count, "errors": failures,
        "mean_ms": total_ms / count if count else None, "min_ms": vmin, "max_ms": vmax,
        "avg_bytes": content / count if count else None,
        "throughput_rps": count / (last - start) if last > start else None,
        "percentile_method": "locust-bucketed",
    }
    row.update({key: percentile(histogram, count, p) for key, p in PERCENTILES.items()})
    return row


def read(path: Path, warn: Callable[[str], None] | None = None, **_: object) -> dict[str, pa.Table]:
    """Read Locust JSON stats into whole-run and per-second `request_stats`, and per-second `load`."""
    path = Path(path)
    try:
        return _read(path)
    except (TypeError, ValueError, AttributeError, pa.ArrowException) as exc:
        # Keys are checked up front; a value of the wrong type (`"NaN"`, `"1,5"`, a list) shows up here.
        raise CollectorError(path, f"a value is not the number Locust writes there ({exc}): expected Locust --json output") from exc


def _read(path: Path) -> dict[str, pa.Table]:
    entries = _entries(path)
    stats: list[dict[str, object]] = []
    per_second: Counter = Counter()
    fails_per_second: Counter = Counter()
    merged: Counter = Counter()
    total = {"count": 0, "failures": 0, "ms": 0.0, "content": 0}
    mins, maxs, starts, lasts = [], [], [], []
    for entry in entries:
        label = f"{entry['method']} {entry['name']}" if entry["method"] else str(entry["name"])
        histogram = _histogram(path, entry)
        count, failures = int(entry["num_requests"]), int(entry["num_failures"])
        vmin = entry["min_response_time"] if count else None
        stats.append(_summary(label, "sample", count, failures, float(entry["total_response_time"]), vmin, entry["max_response_time"] if count else None,
                              int(entry["total_content_length"]), float(entry["start_time"]), float(entry["last_request_timestamp"] or 0), histogram))
        reqs = {int(k): int(v) for k, v in entry["num_reqs_per_sec"].items()}
        fails = {int(k): int(v) for k, v in entry["num_fail_per_sec"].items()}
        for second in sorted(set(reqs) | set(fails)):
            stats.append({"label": label, "row_kind": "sample", "window_start": second * 1000, "window_end": (second + 1) * 1000,
                          "count": reqs.get(second, 0), "errors": fails.get(second, 0), "throughput_rps": float(reqs.get(second, 0))})
        per_second.update(reqs)
        fails_per_second.update(fails)
        merged.update(histogram)
        total["count"] += count
        total["failures"] += failures
        total["ms"] += float(entry["total_response_time"])
        total["content"] += int(entry["total_content_length"])
        if count:
            mins.append(entry["min_response_time"])
            maxs.append(entry["max_response_time"])
            starts.append(float(entry["start_time"]))
            lasts.append(float(entry["last_request_timestamp"]))
    if entries:
        stats.append(_summary("Aggregated", "total", total["count"], total["failures"], total["ms"], min(mins, default=None), max(maxs, default=None),
                              total["content"], min(starts, default=0.0), max(lasts, default=0.0), merged))
    seconds = sorted(set(per_second) | set(fails_per_second))
    load = [{"ts": (s + 1) * 1000, "rps": float(per_second.get(s, 0)), "errors_per_s": float(fails_per_second.get(s, 0))} for s in seconds]
    out = rows_table(stats, "request_stats", name)
    return {"request_stats": out.replace_schema_metadata(METADATA), "load": rows_table(load, "load", name)}
