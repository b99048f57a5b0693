"""Comparing runs, and the per-run figures the report pages show that no other analysis module computes.

Comparison of runs A, B (, C...): every figure is a ratio A / other with a 95 %
interval and a verdict, chosen by what the data allows:

- raw samples in both runs (`requests`): percentile bootstrap of the ratio of
  means and of percentiles (resampling each run independently), and a
  two-sided Mann-Whitney U test per label (`scipy.stats.mannwhitneyu`). A label
  with more than `cap` samples is bootstrapped on a uniform random subsample of
  `cap`, which can only widen the interval (conservative);
- only summaries (`request_stats`, e.g. a JMeter Summary Report): the ratio of
  means gets a delta-method interval from count, mean and standard deviation,
  and a Welch t-test from the same summaries; percentiles are unavailable;
- counts and throughputs: rates of a Poisson process, the ratio interval
  from the exact conditional binomial (Clopper-Pearson) test on the counts.

A difference is `significant` when its interval excludes 1 (and, for labels
with samples, the Mann-Whitney p-value is below `alpha`); `None` means it
could not be tested. Randomness is seeded, so a report is reproducible.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats as sps

from capacity.analysis.align import CPU_BUSY_SQL, join_parts, users_per_second, wide_bins
from capacity.analysis.stats import PERCENTILES, label_stats
from capacity.analysis.summaries import combine_summaries

ALPHA = 0.05
BOOTSTRAP = 400
CAP_LABEL = 5000
CAP_OVERALL = 10000
SEED = 20190704
# Per-run figures the comparison lines up; `mem_in_use_pct` counts cache as used (what old sar %memused shows).
METRICS = ("users", "count", "transactions_per_hour", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "error_pct",
           "throughput_rps", "cpu_busy_pct", "mem_used_pct", "mem_in_use_pct")
SAMPLER_NUMBER = re.compile(r"^\d+\s+")


# -- one run -------------------------------------------------------------------------------


def run_stats(con: duckdb.DuckDBPyConnection, run: str, method: str = "linear", apdex_t_ms: float | None = None) -> dict[str, Any]:
    """Per-label and overall request statistics of `run`, from samples when it has them, else from the tool's summaries.

    Returns `label_stats`'s shape plus `basis` (`samples`, `summaries` or None
    when the run has no request data). From summaries, label rows are the
    tool's own figures and `overall` is `combine_summaries` (the tool's total
    row's throughput when present).
    """
    has_samples = con.execute("SELECT count(*) FROM requests WHERE run_id = ? AND row_kind = 'sample'", [run]).fetchone()[0]
    if has_samples:
        return {**label_stats(con, run, method, apdex_t_ms), "basis": "samples"}
    summ = con.execute("SELECT * FROM request_stats WHERE run_id = ?", [run]).df()
    if summ.empty:
        return {"run": run, "basis": None, "labels": [], "overall": None, "span_s": None, "percentile_method": method}
    kinds = summ["row_kind"].fillna("sample")
    labels = []
    for _, r in summ[kinds != "total"].iterrows():
        row = {k: _num(r.get(k)) for k in ("count", "errors", "mean_ms", "std_ms", "min_ms", *PERCENTILES, "max_ms", "throughput_rps")}
        row["count"] = int(r["count"])
        row["errors"] = int(r["errors"]) if pd.notna(r.get("errors")) else None
        row["error_pct"] = 100.0 * row["errors"] / row["count"] if row["errors"] is not None and row["count"] else None
        labels.append({"label": r["label"], "kind": r["row_kind"] if pd.notna(r["row_kind"]) else "sample", **row})
    combined = combine_summaries(summ).iloc[0].to_dict()
    overall = {k: _num(combined.get(k)) for k in ("count", "errors", "error_pct", "mean_ms", "std_ms", "min_ms", *PERCENTILES, "max_ms",
                                                   "throughput_rps")}
    overall["count"] = int(combined["count"])
    overall["throughput_basis"] = combined.get("throughput_basis")
    overall["check"] = combined.get("check")
    span = overall["count"] / overall["throughput_rps"] if overall.get("throughput_rps") else None
    return {"run": run, "basis": "summaries", "labels": labels, "overall": overall, "span_s": span, "percentile_method": None,
            "percentiles": combined.get("percentiles")}


def _num(v: Any) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def host_summary(con: duckdb.DuckDBPyConnection, run: str) -> dict[str, Any]:
    """CPU busy % and memory use of `run`'s hosts: mean and max over every reading, with the number of readings.

    `mem_used_pct` is used memory (without cache) over total; `mem_in_use_pct`
    is total minus free over total, cache included, the figure old `sar -r`
    %memused and most screenshots show.
    """
    cpu = con.execute(f"SELECT avg(value), max(value), count(*) FROM ({CPU_BUSY_SQL}) WHERE value IS NOT NULL", {"run": run}).fetchone()
    mem = con.execute(
        "WITH m AS (SELECT host, ts, "
        " max(value) FILTER (WHERE metric = 'mem.used_pct') AS pct, max(value) FILTER (WHERE metric = 'mem.used_bytes') AS used, "
        " max(value) FILTER (WHERE metric = 'mem.free_bytes') AS free, max(value) FILTER (WHERE metric = 'mem.total_bytes') AS total "
        " FROM host_metrics WHERE run_id = ? AND metric IN ('mem.used_pct', 'mem.used_bytes', 'mem.free_bytes', 'mem.total_bytes') "
        " GROUP BY host, ts), "
        "v AS (SELECT coalesce(pct, 100 * used / nullif(total, 0)) AS used_pct, 100 * (total - free) / nullif(total, 0) AS in_use FROM m) "
        "SELECT avg(used_pct), max(used_pct), count(used_pct), avg(in_use), max(in_use), count(in_use) FROM v",
        [run],
    ).fetchone()
    return {
        "cpu_busy_pct": cpu[0], "cpu_busy_max_pct": cpu[1], "cpu_readings": int(cpu[2] or 0),
        "mem_used_pct": mem[0], "mem_used_max_pct": mem[1], "mem_readings": int(mem[2] or 0),
        "mem_in_use_pct": mem[3], "mem_in_use_max_pct": mem[4],
    }


def max_users(con: duckdb.DuckDBPyConnection, run: str, tags: dict[str, str] | None = None) -> tuple[float | None, str | None]:
    """Peak concurrent users of `run` from its load curve, else its `users` tag; with where the figure came from."""
    curve = users_per_second(con, run)
    if not curve.empty and curve.max() > 0:
        return float(curve.max()), "load curve"
    if tags and tags.get("users"):
        try:
            return float(tags["users"]), "run tag `users`"
        except ValueError:
            return None, None
    return None, None


def series(con: duckdb.DuckDBPyConnection, run: str, interval_s: float, offset_s: float = 0.0) -> pd.DataFrame:
    """The run's time series on one epoch-aligned grid of `interval_s` seconds, for charts.

    Columns: users (mean per bin), throughput_rps, error_pct, p50_ms, p95_ms
    (exact per bin, computed by DuckDB), then per host `cpu_busy_pct`,
    `mem_used_pct`, `load_1m`, `net_rx_bytes_per_s`, `net_tx_bytes_per_s` and
    `busy_workers` as `host/column` (server clocks shifted by `offset_s`).
    Network sums the interfaces except `lo` when no `all` aggregate exists.
    """
    width_ms = max(1, int(round(interval_s * 1000)))
    parts: list[pd.Series | pd.DataFrame] = []
    users = users_per_second(con, run)
    if not users.empty:
        bins = pd.to_datetime((users.index.as_unit("ms").asi8 // width_ms) * width_ms, unit="ms", utc=True)
        parts.append(users.groupby(bins).mean().rename("users"))
    req = con.execute(
        f"SELECT (epoch_ms(ts) // {width_ms}) * {width_ms} AS b, count(*) / {interval_s} AS throughput_rps, "
        "100.0 * count(*) FILTER (WHERE NOT success) / count(*) AS error_pct, "
        "quantile_cont(elapsed_ms, 0.5) AS p50_ms, quantile_cont(elapsed_ms, 0.95) AS p95_ms "
        "FROM requests WHERE run_id = ? AND row_kind = 'sample' GROUP BY 1",
        [run],
    ).df()
    if not req.empty:
        parts.append(req.set_index(pd.to_datetime(req.pop("b"), unit="ms", utc=True)))
    shift = int(round(offset_s * 1000))
    host = con.execute(
        f"WITH cpu AS ({CPU_BUSY_SQL}), "
        "mem AS (SELECT host, ts, coalesce(max(value) FILTER (WHERE metric = 'mem.used_pct'), 100 * max(value) FILTER (WHERE metric = 'mem.used_bytes') "
        "  / nullif(max(value) FILTER (WHERE metric = 'mem.total_bytes'), 0)) AS value FROM host_metrics "
        "  WHERE run_id = $run AND metric IN ('mem.used_pct', 'mem.used_bytes', 'mem.total_bytes') GROUP BY 1, 2), "
        "net AS (SELECT host, ts, metric, coalesce(max(value) FILTER (WHERE device = 'all'), "
        "  sum(value) FILTER (WHERE device IS NULL OR device NOT IN ('lo', 'all'))) AS value FROM host_metrics "
        "  WHERE run_id = $run AND metric IN ('net.rx_bytes_per_s', 'net.tx_bytes_per_s') GROUP BY 1, 2, 3), "
        "allm AS ("
        " SELECT host, ts, 'cpu_busy_pct' AS col, value FROM cpu UNION ALL "
        " SELECT host, ts, 'mem_used_pct', value FROM mem UNION ALL "
        " SELECT host, ts, replace(replace(metric, 'net.', 'net_'), '.', '_'), value FROM net UNION ALL "
        " SELECT host, ts, 'load_1m', value FROM host_metrics WHERE run_id = $run AND metric = 'load.1m' UNION ALL "
        " SELECT host, ts, 'busy_workers', busy_workers::DOUBLE FROM web_status WHERE run_id = $run UNION ALL "
        " SELECT host, ts, 'busy_workers', value FROM host_metrics WHERE run_id = $run AND metric = 'web.busy_workers') "
        f"SELECT host || '/' || col AS col, ((epoch_ms(ts) + {shift}) // {width_ms}) * {width_ms} AS b, avg(value) AS v "
        "FROM allm WHERE value IS NOT NULL GROUP BY 1, 2",
        {"run": run},
    ).df()
    if not host.empty:
        parts.append(wide_bins(host))
    return join_parts(parts)


def top_processes(con: duckdb.DuckDBPyConnection, run: str, by: str = "cpu", n: int = 10) -> pd.DataFrame:
    """The `n` commands using most CPU (`by="cpu"`) or memory (`by="mem"`) over `run`'s process samples.

    Processes are grouped by host, user and command (a pool of workers such
    as 8 gunicorn processes counts as one line): per sample the pool's CPU %,
    memory % and RSS are summed, then averaged over the samples the pool
    appears in; `max_*` is the largest per-sample sum.
    """
    order = {"cpu": "mean_cpu_pct", "mem": "mean_rss_bytes"}[by]
    return con.execute(
        "WITH per AS (SELECT host, coalesce(user, '') AS user, coalesce(command, '') AS command, ts, count(*) AS procs, "
        " sum(cpu_pct) AS cpu, sum(mem_pct) AS mem, sum(rss_bytes) AS rss FROM processes WHERE run_id = ? GROUP BY 1, 2, 3, 4) "
        "SELECT host, user, command, max(procs) AS processes, count(*) AS samples, avg(cpu) AS mean_cpu_pct, max(cpu) AS max_cpu_pct, "
        "avg(mem) AS mean_mem_pct, avg(rss) AS mean_rss_bytes, max(rss) AS max_rss_bytes FROM per GROUP BY 1, 2, 3 "
        f"ORDER BY {order} DESC NULLS LAST, command LIMIT {int(n)}",
        [run],
    ).df()


# -- statistics for two samples -------------------------------------------------------------


def _stat(values: np.ndarray, stat: str, axis: int | None = None) -> np.ndarray | float:
    if stat == "mean_ms":
        return values.mean(axis=axis)
    if stat == "max_ms":
        return values.max(axis=axis)
    return np.quantile(values, PERCENTILES[stat], axis=axis)


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, stat: str, n_boot: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """Percentile-bootstrap 95 % interval of stat(a) / stat(b), resampling a and b independently.

    `stat` is `mean_ms` or a percentile key (`p50_ms`, `p95_ms`, ...). NaN
    bounds when either sample has fewer than two values or a zero statistic.
    """
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ra = _stat(a[rng.integers(0, len(a), (n_boot, len(a)))], stat, axis=1)
    rb = _stat(b[rng.integers(0, len(b), (n_boot, len(b)))], stat, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.asarray(ra, float) / np.asarray(rb, float)
    ratios = ratios[np.isfinite(ratios)]
    if len(ratios) < n_boot // 2:
        return math.nan, math.nan
    lo, hi = np.quantile(ratios, [ALPHA / 2, 1 - ALPHA / 2])
    return float(lo), float(hi)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided Mann-Whitney U p-value of two samples (None when either is empty)."""
    if len(a) == 0 or len(b) == 0:
        return None
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def ratio_from_summaries(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int) -> dict[str, Any]:
    """Ratio of two means known only from summaries: delta-method 95 % interval and Welch t-test p-value."""
    if not (mean_b and n_a > 1 and n_b > 1) or any(v is None or not math.isfinite(v) for v in (mean_a, std_a, mean_b, std_b)):
        return {"ratio": mean_a / mean_b if mean_a is not None and mean_b else None, "lo": None, "hi": None, "p_value": None}
    r = mean_a / mean_b
    se = abs(r) * math.sqrt((std_a / mean_a) ** 2 / n_a + (std_b / mean_b) ** 2 / n_b) if mean_a else math.nan
    z = float(sps.norm.ppf(1 - ALPHA / 2))
    p = float(sps.ttest_ind_from_stats(mean_a, std_a, n_a, mean_b, std_b, n_b, equal_var=False).pvalue)
    return {"ratio": r, "lo": r - z * se, "hi": r + z * se, "p_value": p}


def rate_ratio(count_a: int, time_a: float, count_b: int, time_b: float) -> dict[str, Any]:
    """Ratio of two Poisson rates (count / time) with the exact conditional 95 % interval and p-value."""
    if not (time_a and time_b) or count_a + count_b == 0:
        return {"ratio": None, "lo": None, "hi": None, "p_value": None}
    scale = time_b / time_a
    test = sps.binomtest(int(count_a), int(count_a + count_b), time_a / (time_a + time_b))
    ci = test.proportion_ci(confidence_level=1 - ALPHA, method="exact")
    def to_ratio(p: float) -> float:
        return p / (1 - p) * scale if p < 1 else math.inf

    ratio = count_a / count_b * scale if count_b else math.inf
    return {"ratio": ratio, "lo": to_ratio(ci.low), "hi": to_ratio(ci.high), "p_value": float(test.pvalue)}


# -- comparison of runs ---------------------------------------------------------------------


def _duration_s(tags: dict[str, str], st: dict[str, Any]) -> tuple[float | None, str]:
    """The run's duration: its `duration_s` tag (what the tester set), else the data's span."""
    if tags.get("duration_s"):
        with contextlib.suppress(ValueError):  # a tag that is not a number: fall back to the data
            return float(tags["duration_s"]), "run tag `duration_s`"
    if st.get("span_s"):
        return float(st["span_s"]), "first sample to last" if st["basis"] == "samples" else "count / the tool's throughput"
    return None, "unknown"


def _figures(con: duckdb.DuckDBPyConnection, run: str, tags: dict[str, str], method: str) -> dict[str, Any]:
    st = run_stats(con, run, method)
    hosts = host_summary(con, run)
    users, users_basis = max_users(con, run, tags)
    duration, duration_basis = _duration_s(tags, st)
    o = st["overall"] or {}
    values = {k: o.get(k) for k in ("count", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "error_pct", "throughput_rps")}
    values["transactions_per_hour"] = 3600.0 * o["count"] / duration if o.get("count") and duration else None
    values["users"] = users
    values.update({k: hosts[k] for k in ("cpu_busy_pct", "mem_used_pct", "mem_in_use_pct")})
    return {"stats": st, "hosts": hosts, "values": values, "duration_s": duration, "duration_basis": duration_basis,
            "users_basis": users_basis, "throughput_time_s": (o["count"] / o["throughput_rps"]) if o.get("throughput_rps") else None}


def _samples(con: duckdb.DuckDBPyConnection, run: str, cap_label: int, cap_overall: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Elapsed times per label (and overall) of `run`'s samples, uniformly subsampled to the caps."""
    counts = con.execute("SELECT label, count(*) AS n FROM requests WHERE run_id = ? AND row_kind = 'sample' GROUP BY 1", [run]).df()
    if counts.empty:
        return {}, np.array([])
    total = float(counts["n"].sum())
    counts["f"] = np.minimum(1.0, cap_label / counts["n"])
    con.register("_fractions", counts)
    try:
        con.execute(f"SELECT setseed({(SEED % 1000) / 1000})")
        df = con.execute(
            "SELECT r.label, r.elapsed_ms FROM requests r JOIN _fractions f USING (label) "
            "WHERE r.run_id = ? AND r.row_kind = 'sample' AND (f.f >= 1 OR random() < f.f)",
            [run],
        ).df()
    finally:
        con.unregister("_fractions")
    f_all = min(1.0, cap_overall / total)
    overall = con.execute(
        "SELECT elapsed_ms FROM requests WHERE run_id = ? AND row_kind = 'sample' AND (? >= 1 OR random() < ?)", [run, f_all, f_all]
    ).fetchnumpy()["elapsed_ms"]
    return {label: g["elapsed_ms"].to_numpy(float) for label, g in df.groupby("label")}, np.asarray(overall, float)


def match_labels(a: list[str], b: list[str]) -> list[tuple[str | None, str | None, str]]:
    """Pairs of labels of two runs: exact names first; otherwise names without JMeter's sampler number matched in order of appearance."""
    exact = [x for x in a if x in set(b)]
    if exact:
        return [(x, x if x in set(b) else None, "same name") for x in a] + [(None, y, "only in one run") for y in b if y not in set(a)]

    def keyed(labels: list[str]) -> list[tuple[str, int, str]]:
        seen: dict[str, int] = {}
        out = []
        for lab in sorted(labels, key=lambda s: (int(m.group(0)) if (m := re.match(r"^\d+", s)) else 0, labels.index(s))):
            base = SAMPLER_NUMBER.sub("", lab)
            seen[base] = seen.get(base, 0) + 1
            out.append((base, seen[base], lab))
        return out

    kb = {(base, k): lab for base, k, lab in keyed(b)}
    pairs, used = [], set()
    for base, k, lab in keyed(a):
        other = kb.get((base, k))
        if other is None:
            # JMeter's tables truncate long labels at different lengths: accept a prefix of the same occurrence
            other = next((v for (bb, kk), v in kb.items() if kk == k and v not in used and min(len(bb), len(base)) >= 20
                          and (bb.startswith(base) or base.startswith(bb))), None)
        if other is not None:
            used.add(other)
        pairs.append((lab, other, "name without sampler number, in order" if other else "only in one run"))
    pairs += [(None, lab, "only in one run") for lab in b if lab not in used]
    return pairs


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) and math.isfinite(a) and math.isfinite(b) else None


def _verdict(lo: float | None, hi: float | None, p: float | None) -> bool | None:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None if p is None else p < ALPHA
    outside = lo > 1 or hi < 1
    return outside and (p is None or p < ALPHA)


def _compare_metric(metric: str, fa: dict[str, Any], fb: dict[str, Any], sa: np.ndarray | None, sb: np.ndarray | None) -> dict[str, Any]:
    va, vb = fa["values"].get(metric), fb["values"].get(metric)
    out: dict[str, Any] = {"ratio": _ratio(va, vb), "ratio_lo": None, "ratio_hi": None, "p_value": None, "test": None}
    oa, ob = fa["stats"]["overall"] or {}, fb["stats"]["overall"] or {}
    if metric in ("mean_ms", "p50_ms", "p95_ms", "p99_ms") and sa is not None and sb is not None and len(sa) > 1 and len(sb) > 1:
        out["ratio_lo"], out["ratio_hi"] = bootstrap_ratio(sa, sb, metric)
        out["p_value"], out["test"] = mann_whitney(sa, sb), "bootstrap interval; Mann-Whitney U"
    elif metric == "mean_ms" and fa["stats"]["basis"] and fb["stats"]["basis"] and oa.get("std_ms") is not None and ob.get("std_ms") is not None:
        r = ratio_from_summaries(oa["mean_ms"], oa["std_ms"], oa["count"], ob["mean_ms"], ob["std_ms"], ob["count"])
        out.update(ratio_lo=r["lo"], ratio_hi=r["hi"], p_value=r["p_value"], test="delta method from summaries; Welch t-test")
    elif metric in ("count", "transactions_per_hour") and oa.get("count") is not None and ob.get("count") is not None:
        ta, tb = (fa["duration_s"], fb["duration_s"]) if metric == "transactions_per_hour" else (1.0, 1.0)
        r = rate_ratio(oa["count"], ta or 0, ob["count"], tb or 0)
        out.update(ratio_lo=r["lo"], ratio_hi=r["hi"], p_value=r["p_value"], test="exact Poisson rate ratio")
    elif metric == "throughput_rps" and fa["throughput_time_s"] and fb["throughput_time_s"]:
        r = rate_ratio(oa["count"], fa["throughput_time_s"], ob["count"], fb["throughput_time_s"])
        out.update(ratio_lo=r["lo"], ratio_hi=r["hi"], p_value=r["p_value"], test="exact Poisson rate ratio")
    out["significant"] = _verdict(out["ratio_lo"], out["ratio_hi"], out["p_value"]) if out["test"] else None
    return out


def compare_runs(con: duckdb.DuckDBPyConnection, runs: list[str], tags: dict[str, dict[str, str]] | None = None,
                 method: str = "linear") -> dict[str, Any]:
    """Side-by-side figures of `runs` with ratios of the first run to each other run (the `capacity compare --json` document).

    `overall` has one entry per metric of `METRICS`: `values` (one per run),
    `ratio`/`ratio_lo`/`ratio_hi`/`significant` for the first run over the
    second, and `ratios` for the first over every other run. `labels` lines up
    the labels of the first two runs (see `match_labels`) with count, mean,
    p95 and error % side by side, the mean ratio's interval and the
    Mann-Whitney p-value where both runs have samples.
    """
    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    tags = tags or {}
    figs = [_figures(con, r, tags.get(r, {}), method) for r in runs]
    samples = [(_samples(con, r, CAP_LABEL, CAP_OVERALL) if f["stats"]["basis"] == "samples" else ({}, None)) for r, f in zip(runs, figs, strict=True)]
    overall = []
    for metric in METRICS:
        values = [f["values"].get(metric) for f in figs]
        ratios = []
        for i in range(1, len(runs)):
            c = _compare_metric(metric, figs[0], figs[i], samples[0][1], samples[i][1])
            ratios.append({"run": runs[i], **c})
        first = ratios[0]
        overall.append({"metric": metric, "values": values, "ratio": first["ratio"], "ratio_lo": first["ratio_lo"], "ratio_hi": first["ratio_hi"],
                        "significant": first["significant"], "p_value": first["p_value"], "test": first["test"], "ratios": ratios})
    labels = _label_rows(figs[0], figs[1], samples[0][0], samples[1][0])
    return {
        "runs": [{"run": r, "basis": f["stats"]["basis"], "duration_s": f["duration_s"], "duration_basis": f["duration_basis"],
                  "users_basis": f["users_basis"], "cpu_readings": f["hosts"]["cpu_readings"], "mem_readings": f["hosts"]["mem_readings"],
                  "percentiles": "exact from samples" if f["stats"]["basis"] == "samples" else "unavailable (summaries only)"}
                 for r, f in zip(runs, figs, strict=True)],
        "alpha": ALPHA,
        "overall": overall,
        "labels": labels,
    }


def _label_rows(fa: dict[str, Any], fb: dict[str, Any], sa: dict[str, np.ndarray], sb: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    la = {x["label"]: x for x in fa["stats"]["labels"] if x.get("kind", "sample") == "sample"}
    lb = {x["label"]: x for x in fb["stats"]["labels"] if x.get("kind", "sample") == "sample"}
    rows = []
    for a, b, how in match_labels(list(la), list(lb)):
        xa, xb = la.get(a, {}), lb.get(b, {})
        row: dict[str, Any] = {"label": a if a is not None else b, "labels": [a, b], "matched_by": how}
        for k in ("count", "mean_ms", "p95_ms", "max_ms", "error_pct", "throughput_rps"):
            row[k] = [xa.get(k), xb.get(k)]
        row["mean_ratio"] = _ratio(xa.get("mean_ms"), xb.get("mean_ms"))
        row["mean_ratio_lo"] = row["mean_ratio_hi"] = row["p_value"] = row["test"] = None
        if a in sa and b in sb:
            row["mean_ratio_lo"], row["mean_ratio_hi"] = bootstrap_ratio(sa[a], sb[b], "mean_ms")
            row["p_value"], row["test"] = mann_whitney(sa[a], sb[b]), "bootstrap interval; Mann-Whitney U"
        elif a is not None and b is not None and xa.get("std_ms") is not None and xb.get("std_ms") is not None:
            r = ratio_from_summaries(xa["mean_ms"], xa["std_ms"], xa["count"], xb["mean_ms"], xb["std_ms"], xb["count"])
            row.update(mean_ratio_lo=r["lo"], mean_ratio_hi=r["hi"], p_value=r["p_value"], test="delta method from summaries; Welch t-test")
        row["significant"] = _verdict(row["mean_ratio_lo"], row["mean_ratio_hi"], row["p_value"]) if row["test"] else None
        rows.append(row)
    return rows


# -- other tables of one run ----------------------------------------------------------------


def run_hardware(con: duckdb.DuckDBPyConnection, run: str, hosts: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """CPU count and memory bytes of the measured server: the catalog's hosts first, then `cpu.count` / `mem.total_bytes` readings."""
    cores = next((h["cpu_count"] for h in hosts if h.get("cpu_count")), None)
    mem = next((h["memory_bytes"] for h in hosts if h.get("memory_bytes")), None)
    if cores is None or mem is None:
        found = dict(con.execute("SELECT metric, max(value) FROM host_metrics WHERE run_id = ? AND metric IN ('cpu.count', 'mem.total_bytes') "
                                 "GROUP BY metric", [run]).fetchall())
        cores = cores or found.get("cpu.count")
        mem = mem or found.get("mem.total_bytes")
    return (float(cores) if cores else None), (float(mem) if mem else None)


def web_traffic_summary(con: duckdb.DuckDBPyConnection, run: str, n: int = 10) -> dict[str, pd.DataFrame]:
    """AWStats figures of `run`: traffic per day (`DAY`), the hour-of-day profile (`TIME`, summed over periods) and the `n` most requested pages (`SIDER`)."""
    days = con.execute(
        "SELECT key AS day, sum(pages) AS pages, sum(hits) AS hits, sum(bandwidth_bytes) AS bandwidth_bytes, sum(visits) AS visits "
        "FROM web_traffic WHERE run_id = ? AND section = 'DAY' GROUP BY key ORDER BY key",
        [run],
    ).df()
    hours = con.execute(
        "SELECT key AS hour, sum(pages) AS pages, sum(hits) AS hits, sum(bandwidth_bytes) AS bandwidth_bytes FROM web_traffic "
        "WHERE run_id = ? AND section = 'TIME' GROUP BY key ORDER BY try_cast(key AS INTEGER), key",
        [run],
    ).df()
    pages = con.execute(
        "SELECT key AS url, sum(pages) AS pages, sum(bandwidth_bytes) AS bandwidth_bytes, sum(entries) AS entries, sum(exits) AS exits "
        f"FROM web_traffic WHERE run_id = ? AND section = 'SIDER' GROUP BY key ORDER BY pages DESC NULLS LAST, key LIMIT {int(n)}",
        [run],
    ).df()
    return {"days": days, "hours": hours, "pages": pages}


def limits_hit(con: duckdb.DuckDBPyConnection, run: str) -> pd.DataFrame:
    """Resource limits of `run` that refused allocations (failcnt > 0), with their largest reading, worst first."""
    return con.execute(
        "SELECT host, container, resource, max(held) AS held, max(maxheld) AS maxheld, max(barrier) AS barrier, max(\"limit\") AS \"limit\", "
        "max(failcnt) AS failcnt, count(*) AS readings, any_value(unit) AS unit FROM limits WHERE run_id = ? AND failcnt > 0 "
        "GROUP BY 1, 2, 3 ORDER BY failcnt DESC",
        [run],
    ).df()
