"""Statistics of runs that hold only the load tools' own summaries (`request_stats`).

Locust's stats CSV, JMeter's Summary and Aggregate reports and Tsung's interval
dumps give counts, means and sometimes percentiles per label or per window.
`combine_summaries` merges such rows: counts add, means and variances pool by
count, and percentiles are reported as unavailable because they cannot be
recovered from summaries.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from capacity.analysis.stats import PERCENTILES, STAT_KEYS


def combine_summaries(stats: pd.DataFrame, group_by: str | None = None) -> pd.DataFrame:
    """Combine `request_stats` rows (one label or window each) into totals.

    Counts and errors add; the mean is count-weighted; the standard deviation
    pools within- and between-row variance (exact for population deviations);
    min and max are extremes. Percentiles cannot be combined from summaries and
    are returned as missing, with `percentiles` = "unavailable (combined from
    summaries)". Throughput: a `total` row written by the tool is authoritative
    when present; otherwise it is `count / span` when the windows are known,
    and otherwise `count / max(count_i / throughput_i)`, an upper bound since
    the run lasted at least as long as its longest label
    (`throughput_basis` says which). Rows of kind `total` are never summed with
    the others, but a disagreement between them is reported in `check`.
    """
    if stats.empty:
        return pd.DataFrame()
    groups = [((), stats)] if group_by is None else list(stats.groupby(group_by, sort=True))
    out = []
    for key, g in groups:
        kind = g["row_kind"] if "row_kind" in g else pd.Series([None] * len(g), index=g.index)
        totals = g[kind.fillna("") == "total"]
        parts = g[kind.fillna("") != "total"]
        row = _combine(parts)
        if group_by is not None:
            row[group_by] = key[0] if isinstance(key, tuple) else key
        row["check"] = _check(row, totals)
        if len(totals) == 1 and pd.notna(totals["throughput_rps"].iloc[0]):
            row["throughput_rps"] = float(totals["throughput_rps"].iloc[0])
            row["throughput_basis"] = "tool total row"
        out.append(row)
    return pd.DataFrame(out)


def _combine(g: pd.DataFrame) -> dict[str, Any]:
    n = g["count"].astype(float)
    total = float(n.sum())
    errors = g["errors"].fillna(0).astype(float).sum() if "errors" in g else math.nan
    mean = float((n * g["mean_ms"]).sum() / total) if total else math.nan
    std = math.nan
    if "std_ms" in g and g["std_ms"].notna().all() and total:
        std = float(np.sqrt((n * (g["std_ms"] ** 2 + (g["mean_ms"] - mean) ** 2)).sum() / total))
    row: dict[str, Any] = {
        "count": int(total),
        "errors": int(errors) if not math.isnan(errors) else None,
        "error_pct": 100.0 * errors / total if total and not math.isnan(errors) else None,
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(g["min_ms"].min()) if "min_ms" in g else math.nan,
        "max_ms": float(g["max_ms"].max()) if "max_ms" in g else math.nan,
        **{p: None for p in PERCENTILES},
        "percentiles": "unavailable (combined from summaries)",
    }
    row["throughput_rps"], row["throughput_basis"] = _throughput(g, total)
    return row


def _throughput(g: pd.DataFrame, total: float) -> tuple[float | None, str]:
    if {"window_start", "window_end"} <= set(g) and g["window_start"].notna().all() and g["window_end"].notna().all():
        span = (pd.to_datetime(g["window_end"]).max() - pd.to_datetime(g["window_start"]).min()).total_seconds()
        if span > 0:
            return total / span, "count over the windows' span"
    if "throughput_rps" in g:
        ok = g[(g["throughput_rps"] > 0) & g["count"].gt(0)]
        if not ok.empty:
            longest = float((ok["count"] / ok["throughput_rps"]).max())
            return total / longest, "upper bound: count over the longest label's span"
    return None, "unavailable"


def _check(row: dict[str, Any], totals: pd.DataFrame) -> str | None:
    """Compare the combination with the tool's own total row, if any."""
    if len(totals) != 1:
        return None
    t = totals.iloc[0]
    problems = []
    if int(t["count"]) != row["count"]:
        problems.append(f"count {row['count']} vs tool total {int(t['count'])}")
    if pd.notna(t.get("mean_ms")) and abs(float(t["mean_ms"]) - row["mean_ms"]) > max(1.0, 1e-3 * row["mean_ms"]):
        problems.append(f"mean {row['mean_ms']:.1f} ms vs tool total {float(t['mean_ms']):.1f} ms")
    return "; ".join(problems) if problems else "agrees with the tool's total row"


def summary_stats(con: duckdb.DuckDBPyConnection, run: str) -> dict[str, Any]:
    """Per-label and overall statistics of a run that has only the tools' summaries (`request_stats`).

    Whole-run rows (no window) are the tool's own figures and are reported as
    they are, percentiles included, named by the tool's `percentile_method`
    (e.g. `locust-bucketed`); several whole-run rows of one label (several
    generators or files) and windowed rows (Tsung intervals, Locust history) are
    combined with `combine_summaries`, which marks percentiles unavailable.
    `overall` is the tool's single total row when it wrote one, else the
    combination of every label. Same keys as `label_stats`, plus `basis`.
    """
    frame = con.execute("SELECT * FROM request_stats WHERE run_id = ?", [run]).df()
    result: dict[str, Any] = {"run": run, "basis": "summaries", "percentile_method": None, "span_s": None, "labels": [], "overall": None}
    if frame.empty:
        return result
    frame["row_kind"] = frame["row_kind"].fillna("sample")
    whole = frame[frame["window_start"].isna()]
    rows = whole if not whole.empty else frame
    methods = sorted({m for m in rows["percentile_method"].dropna()})
    parts = rows[rows["row_kind"] != "total"]
    labels = []
    for (label, kind), group in parts.groupby(["label", "row_kind"], sort=True):
        entry = _tool_row(group.iloc[0]) if len(group) == 1 else _combined_row(group)
        labels.append({"label": label, "kind": kind, **entry})
    totals = rows[rows["row_kind"] == "total"]
    if len(totals) == 1:
        overall = _tool_row(totals.iloc[0])
    else:
        samples = parts[parts["row_kind"] == "sample"]
        overall = _combined_row(samples) if not samples.empty else None
    result.update(labels=labels, overall=overall,
                  percentile_method=", ".join(methods) if methods and all(e.get("p50_ms") is not None for e in labels) else "unavailable")
    if overall and overall.get("throughput_rps"):
        result["span_s"] = overall["count"] / overall["throughput_rps"]
    return result


def _clean(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _tool_row(row: pd.Series) -> dict[str, Any]:
    out = {key: _clean(row.get(key)) for key in STAT_KEYS if key != "error_pct"}
    out["count"] = int(row["count"])
    out["errors"] = int(row["errors"]) if _clean(row.get("errors")) is not None else None
    out["error_pct"] = 100.0 * out["errors"] / out["count"] if out["errors"] is not None and out["count"] else None
    return {key: out.get(key) for key in STAT_KEYS}


def _combined_row(group: pd.DataFrame) -> dict[str, Any]:
    combined = combine_summaries(group).iloc[0].to_dict()
    return {key: _clean(combined.get(key)) for key in STAT_KEYS}
