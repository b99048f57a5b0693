"""Exact request statistics, computed by DuckDB over the stored Parquet.

Percentiles are exact (from every sample, no sketches, never an average of
percentiles; see `exact_sql` for how). The default method is linear
interpolation between closest ranks (numpy's default, DuckDB's
`quantile_cont`); `nearest` gives the nearest-rank value (DuckDB's
`quantile_disc`). The method is named in every output.

Runs holding only the tools' summaries are the business of `summaries`.
pandas is imported only by the functions returning frames, so `capacity stats`
starts quickly.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from capacity.analysis.exact_sql import PERCENTILES, histogram_sql, merged_sql, stats_sql

if TYPE_CHECKING:
    import pandas as pd

AGG_KEYS = ("count", "errors", "error_pct", "mean_ms", "std_ms", "min_ms", *PERCENTILES, "max_ms")
STAT_KEYS = (*AGG_KEYS, "throughput_rps")
# How far from the run's first and last timestamps the first and last sample start are looked for
# before falling back to a full scan (`run_span_s`).
SPAN_EDGE_S = 300


def run_span_s(con: duckdb.DuckDBPyConnection, run: str) -> float | None:
    """Seconds from the first sample's start to the last sample's end (JMeter's throughput span).

    The first and last timestamps of the run come from the Parquet statistics; only the row
    groups near both ends are then read, and a full scan is the fallback when no sample lies
    within `SPAN_EDGE_S` seconds of either end.
    """
    where = "run_id = ? AND row_kind = 'sample'"
    first, last, longest = con.execute("SELECT min(ts), max(ts), max(elapsed_ms) FROM requests WHERE run_id = ?", [run]).fetchone()
    if first is None:
        return None
    edge = timedelta(seconds=SPAN_EDGE_S)
    start = con.execute(f"SELECT min(ts) FROM requests WHERE {where} AND ts <= ?", [run, first + edge]).fetchone()[0]
    last_start = con.execute(f"SELECT max(ts) FROM requests WHERE {where} AND ts >= ?", [run, last - edge]).fetchone()[0]
    # No sample near an end, or response times unknown (NaN: an access log without %D): read everything.
    if start is None or last_start is None or longest is None or not math.isfinite(longest):
        row = con.execute(f"SELECT (max(epoch_ms(ts) + elapsed_ms) - min(epoch_ms(ts))) / 1000.0 FROM requests WHERE {where}", [run]).fetchone()
        return row[0] if row and row[0] else None
    # The sample ending last started at most `longest` before the last start.
    end = con.execute(f"SELECT max(epoch_ms(ts) + elapsed_ms) FROM requests WHERE {where} AND ts >= ?",
                      [run, last_start - timedelta(milliseconds=float(longest))]).fetchone()[0]
    span = (end - start.timestamp() * 1000.0) / 1000.0 if end is not None else None
    return span or None


def label_stats(con: duckdb.DuckDBPyConnection, run: str, method: str = "linear", apdex_t_ms: float | None = None) -> dict[str, Any]:
    """Per-label and overall statistics of one run's `requests`.

    `con` is a connection from `Store.connect`. Labels are reported per row kind
    (`sample` or `transaction`); sub-results are left out so nothing is counted
    twice, and `overall` covers `sample` rows only. Throughput divides by the
    run's span (`run_span_s`), the same span for every label. With `apdex_t_ms`
    every entry also carries `apdex` (T given, F = 4T). One pass over the samples
    builds the per-label histogram (`exact_sql`); the overall line comes from it.
    """
    span = run_span_s(con, run)
    keys = [*AGG_KEYS, *(["apdex"] if apdex_t_ms else [])]
    table = f"_hist_{uuid.uuid4().hex}"
    source = "(SELECT * FROM requests WHERE run_id = $run AND row_kind IN ('sample', 'transaction'))"
    con.execute(f"CREATE TEMP TABLE {table} AS {histogram_sql(['label', 'row_kind AS kind'], source)}", {"run": run})
    try:
        rows = con.execute(f"{stats_sql(table, ['label', 'kind'], method, apdex_t_ms)} ORDER BY label, kind").fetchall()
        overall_row = con.execute(stats_sql(merged_sql(table, [], "kind = 'sample'"), [], method, apdex_t_ms)).fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    labels = [_with_throughput(dict(zip(["label", "kind", *keys], r, strict=True)), span) for r in rows]
    overall = _with_throughput(dict(zip(keys, overall_row, strict=True)), span) if overall_row and overall_row[0] else None
    result: dict[str, Any] = {"run": run, "percentile_method": method, "span_s": span, "labels": labels, "overall": overall}
    if apdex_t_ms:
        result["apdex_t_ms"] = apdex_t_ms
    return result


def _with_throughput(stats: dict[str, Any], span: float | None) -> dict[str, Any]:
    stats["count"] = int(stats["count"])
    stats["errors"] = int(stats["errors"])
    stats["throughput_rps"] = stats["count"] / span if span else None
    return stats


def window_stats(
    con: duckdb.DuckDBPyConnection,
    run: str,
    window_s: float = 10.0,
    method: str = "linear",
    by_label: bool = False,
    apdex_t_ms: float | None = None,
) -> pd.DataFrame:
    """Statistics per time window of `window_s` seconds (by sample start), exact in every window.

    Percentiles are computed from the samples of each window, never averaged
    across windows. Windows are aligned on the epoch (so two runs' windows
    line up); `throughput_rps` is the window's count divided by `window_s`.
    """
    import pandas as pd

    if window_s <= 0:
        raise ValueError("window_s must be positive")
    width_ms = int(round(window_s * 1000))
    keys = ["window_ms", "label"] if by_label else ["window_ms"]
    source = "(SELECT * FROM requests WHERE run_id = $run AND row_kind = 'sample')"
    histogram = histogram_sql([f"(epoch_ms(ts) // {width_ms}) * {width_ms} AS window_ms", *keys[1:]], source)
    df = con.execute(f"{stats_sql(f'({histogram})', keys, method, apdex_t_ms)} ORDER BY {', '.join(keys)}", {"run": run}).df()
    df.insert(0, "window_start", pd.to_datetime(df.pop("window_ms").astype("int64"), unit="ms", utc=True))
    for key in ("count", "errors"):
        df[key] = df[key].astype("int64")
    df["window_end"] = df["window_start"] + pd.Timedelta(milliseconds=width_ms)
    df["throughput_rps"] = df["count"] / window_s
    df["percentile_method"] = method
    return df
