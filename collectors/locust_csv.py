"""Locust `--csv` statistics files of every era into `request_stats` and `load`.

Files and headers (FORMATS.md L5.1, `locust/stats.py`):

- `*_stats.csv`: `Type,Name,Request Count,...` (>= 1.0; 1.0-1.1 add `99.999%`) or
  `Type,Name,# requests,...` (0.14, with a `99.999` header lacking `%`);
- `*_requests.csv` + `*_distribution.csv` (<= 0.13): `Method,Name,# requests,...`
  and `Name,# requests,50%,...`; a requests file takes the percentiles of its
  sibling distribution file, so ingest the requests file (a distribution file
  read alone gives counts and percentiles only, and ingesting both counts twice);
- `*_stats_history.csv`: `Timestamp,User Count,Type,Name,...` (>= 1.0) or
  `Type,Name,Timestamp,# requests,...` (0.14), appended every second.

The aggregate row (`Aggregated`, `Total` up to 0.12, Type empty or `None`) has
row_kind `total`. Labels are `<Type> <Name>` (`GET /login`), since Locust keys
its stats on both. `N/A` percentiles are null. Percentiles are Locust's
bucketed ones (about 2 significant digits): `percentile_method` says so and so
does the Arrow schema metadata. Columns 99.99%, 99.999% and 100% have no
canonical column (the exact max is kept in max_ms).

History rows become `load` (the Aggregated rows: User Count, Requests/s,
Failures/s) and windowed `request_stats` between consecutive rows of a label:
count, errors and mean come from differences of the cumulative totals, so they
are exact for the window. The percentiles of a history row cover Locust's
"current" ~10 s sliding window (`locust-bucketed-current`), except the
Aggregated row of a file written without `--csv-full-history`, where they are
cumulative since start (`locust-bucketed-cumulative`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from capacity.schema import conform
from collectors.base import CollectorError, first_lines, read_csv_text, rows_table

name = "locust_csv"

PERCENTILE_METHOD = "locust-bucketed"
METADATA = {b"percentile_method": PERCENTILE_METHOD.encode()}
TOTAL_NAMES = ("Aggregated", "Total", "None Aggregated", "None Total")  # distribution files prefix the Type
HEADS = {
    "stats": ("Type,Name,Request Count,Failure Count", "Type,Name,# requests,# failures"),
    "requests": ("Method,Name,# requests,# failures",),
    "distribution": ("Name,# requests,50%",),
    "history": ("Timestamp,User Count,Type,Name,", "Type,Name,Timestamp,# requests,"),
}
ALIASES = {
    "Type": "method", "Method": "method", "Name": "name", "Timestamp": "ts", "User Count": "users",
    "Request Count": "count", "# requests": "count", "Total Request Count": "count",
    "Failure Count": "errors", "# failures": "errors", "Total Failure Count": "errors",
    "Median Response Time": "median", "Median response time": "median", "Total Median Response Time": "median",
    "Average Response Time": "mean_ms", "Average response time": "mean_ms", "Total Average Response Time": "mean_ms",
    "Min Response Time": "min_ms", "Min response time": "min_ms", "Total Min Response Time": "min_ms",
    "Max Response Time": "max_ms", "Max response time": "max_ms", "Total Max Response Time": "max_ms",
    "Average Content Size": "avg_bytes", "Total Average Content Size": "avg_bytes",
    "Requests/s": "rps", "Failures/s": "fps", "Requests Failed/s": "fps",
    "50%": "p50_ms", "66%": "p66_ms", "75%": "p75_ms", "80%": "p80_ms", "90%": "p90_ms",
    "95%": "p95_ms", "98%": "p98_ms", "99%": "p99_ms", "99.9%": "p999_ms",
}
FLOATS = ("median", "mean_ms", "min_ms", "max_ms", "avg_bytes", "rps", "fps") + tuple(v for v in ALIASES.values() if v.startswith("p"))


def _kind(path: Path) -> str | None:
    lines = first_lines(path, 1)
    if not lines:
        return None
    header = lines[0].replace('"', "")
    for kind, heads in HEADS.items():
        if any(header.startswith(h) for h in heads):
            return kind
    return None


def detect(path: Path) -> bool:
    """A Locust stats, stats_history, requests or distribution CSV (by its header)."""
    return _kind(path) is not None


def _read_csv(path: Path) -> dict[str, pa.Array]:
    """Columns under their canonical alias, numbers as float64 with `N/A` as null."""
    # No column is forced to text: numbers are inferred, a column pyarrow cannot decode comes back as binary.
    table = read_csv_text(path, (), "Locust CSV")
    # pyarrow infers `binary` for a column that is not valid UTF-8 (a Latin-1 label).
    for field in table.schema:
        if pa.types.is_binary(field.type):
            raise CollectorError(path, f"column {field.name!r} is not UTF-8 text: expected a Locust CSV (UTF-8)")
    cols: dict[str, pa.Array] = {}
    for column in table.column_names:
        key = ALIASES.get(column.strip())
        if key is None or key in cols:
            continue
        # An all-empty column (Type on a history without full history) is inferred as null.
        arr = pc.fill_null(pc.cast(table[column].combine_chunks(), pa.string()), "")
        if key in FLOATS or key in ("count", "errors", "ts", "users"):
            text = pc.utf8_trim_whitespace(arr)
            missing = pc.or_(pc.equal(text, "N/A"), pc.equal(text, ""))
            text = pc.if_else(missing, pa.scalar(None, pa.string()), text)
            try:
                arr = pc.cast(text, pa.float64())
            except pa.ArrowInvalid as exc:
                raise CollectorError(path, f"column {column!r} holds a value that is not a number or N/A: {exc}") from exc
        cols[key] = arr
    if "name" not in cols:
        raise CollectorError(path, "no `Name` column: expected a Locust CSV", line=1)
    return cols


def _labels(cols: dict[str, pa.Array]) -> tuple[pa.Array, pa.Array]:
    """Labels `<Type> <Name>` (the bare name for aggregates) and row kinds."""
    names = cols["name"]
    method = cols.get("method")
    is_total = pc.is_in(names, pa.array(TOTAL_NAMES))
    if method is not None:
        method = pc.utf8_trim_whitespace(method)
        has_method = pc.and_(pc.not_equal(method, ""), pc.not_equal(method, "None"))
        joined = pc.binary_join_element_wise(method, names, " ")
        labels = pc.if_else(pc.and_(has_method, pc.invert(is_total)), joined, names)
    else:
        labels = pc.if_else(is_total, pc.replace_substring_regex(names, "^None ", ""), names)
    return labels, pc.if_else(is_total, "total", "sample")


def _with_metadata(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **METADATA})


def _stats(path: Path, cols: dict[str, pa.Array], warn: Callable[[str], None] | None) -> pa.Table:
    labels, kinds = _labels(cols)
    n = len(labels)
    out: dict[str, pa.Array] = {"label": labels, "row_kind": kinds}
    for key in ("count", "errors"):
        if key in cols:
            try:
                out[key] = pc.cast(pc.fill_null(cols[key], 0.0), pa.int64())
            except pa.ArrowInvalid as exc:  # a fraction or a count beyond int64
                raise CollectorError(path, f"{key} column: expected a whole number of requests: {exc}") from exc
    for key in ("mean_ms", "min_ms", "max_ms", "avg_bytes") + tuple(k for k in cols if k.startswith("p") and k.endswith("_ms")):
        if key in cols:
            out[key] = cols[key]
    if "p50_ms" not in out and "median" in cols:
        out["p50_ms"] = cols["median"]
    if "rps" in cols:
        out["throughput_rps"] = cols["rps"]
    if path.name.endswith("_requests.csv"):
        _merge_distribution(path, out, warn)
    out["percentile_method"] = pa.array([PERCENTILE_METHOD] * n, pa.string())
    out["source"] = pa.array([name] * n, pa.string())
    if "count" not in out:
        raise CollectorError(path, "no request count column (`Request Count` or `# requests`)", line=1)
    return _with_metadata(conform(pa.table(out), "request_stats"))


def _merge_distribution(path: Path, out: dict[str, pa.Array], warn: Callable[[str], None] | None) -> None:
    sibling = path.with_name(path.name[: -len("_requests.csv")] + "_distribution.csv")
    if not sibling.exists():
        return
    dist = _read_csv(sibling)
    # Distribution rows are keyed `<Method> <Name>` in one field; aggregates by name.
    keys = [k.removeprefix("None ") for k in pc.utf8_trim_whitespace(dist["name"]).to_pylist()]
    index = {k: i for i, k in enumerate(keys)}
    rows = [index.get(label) for label in out["label"].to_pylist()]
    if warn and any(r is None for r in rows):
        warn(f"{sibling}: some labels of {path.name} have no percentiles")
    for key in (k for k in dist if k.startswith("p") and k.endswith("_ms")):
        values = dist[key].to_pylist()
        out[key] = pa.array([values[r] if r is not None else None for r in rows], pa.float64())


def _history(path: Path, cols: dict[str, pa.Array]) -> dict[str, pa.Table]:
    if "ts" not in cols or "count" not in cols:
        raise CollectorError(path, "history file without `Timestamp` or request count column", line=1)
    labels, kinds = _labels(cols)
    rows = pa.table({"label": labels, "row_kind": kinds, **{k: v for k, v in cols.items() if k not in ("name", "method")}}).to_pylist()
    full_history = any(r["row_kind"] != "total" for r in rows)
    stamps = sorted({r["ts"] for r in rows if r["ts"] is not None})
    previous_stamp = {b: a for a, b in zip(stamps[:-1], stamps[1:], strict=True)}
    last: dict[str, tuple[float, float, float]] = {}
    stats, load = [], []
    for lineno, r in enumerate(rows, start=2):
        if r["ts"] is None or r["count"] is None:
            raise CollectorError(path, "history row without Timestamp or request count", line=lineno)
        ts = int(r["ts"]) * 1000
        count, errors, mean = r["count"], r.get("errors") or 0.0, r.get("mean_ms") or 0.0
        if r["row_kind"] == "total":
            load.append({"ts": ts, "active_users": r.get("users"), "rps": r.get("rps"), "errors_per_s": r.get("fps")})
        base = last.get(r["label"])
        start = previous_stamp.get(r["ts"], r["ts"] - 1) if base is None else base[3]
        base_count, base_errors, base_sum = base[:3] if base else (0.0, 0.0, 0.0)
        delta = count - base_count
        cumulative = r["row_kind"] == "total" and not full_history
        row = {
            "label": r["label"], "row_kind": r["row_kind"], "window_start": int(start) * 1000, "window_end": ts,
            "count": int(delta), "errors": int(errors - base_errors),
            "mean_ms": (count * mean - base_sum) / delta if delta > 0 else None,
            "throughput_rps": delta / (r["ts"] - start) if r["ts"] > start else None,
            "percentile_method": f"{PERCENTILE_METHOD}-{'cumulative' if cumulative else 'current'}",
        }
        row.update({k: r[k] for k in r if k.startswith("p") and k.endswith("_ms")})
        stats.append(row)
        last[r["label"]] = (count, errors, count * mean, r["ts"])
    return {"request_stats": _with_metadata(rows_table(stats, "request_stats", name)), "load": rows_table(load, "load", name)}


def read(path: Path, warn: Callable[[str], None] | None = None, **_: object) -> dict[str, pa.Table]:
    """Read one Locust CSV (stats, history, requests or distribution) into canonical tables."""
    path = Path(path)
    kind = _kind(path)
    if kind is None:
        raise CollectorError(path, "not a Locust stats CSV: expected a header starting `Type,Name,Request Count`, `Timestamp,User Count`, "
                             "`Method,Name,# requests`, `Name,# requests` or `Type,Name,# requests`", line=1)
    cols = _read_csv(path)
    if kind == "history":
        return _history(path, cols)
    return {"request_stats": _stats(path, cols, warn)}
