"""Load levels of a step-load or ramp test, and the step table the models fit.

A step is a segment of constant concurrent users. The users-per-second curve
comes from the `load` table or from `requests.active_users` summed over
generators (`align.users_per_second`). Several runs at fixed user counts
(tag `users`) give the same table, one step per run.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from capacity.analysis.align import CPU_BUSY_SQL, run_offset, second_sql, steady_window, users_per_second

STEP_COLUMNS = (
    "run", "step", "kind", "users", "start", "end", "duration_s", "requests", "throughput_rps", "errors", "error_pct",
    "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "cpu_pct", "mem_used_bytes", "load_1m",
    "busy_workers", "max_workers",
)
# Server-side columns averaged per step: metric name -> step column.
# Exact percentiles of each method (see `exact_sql` for the definitions).
QUANTILE_FUNCTIONS = {"linear": "quantile_cont", "nearest": "quantile_disc"}
HOST_COLUMNS = {"mem.used_bytes": "mem_used_bytes", "load.1m": "load_1m", "web.busy_workers": "busy_workers"}


@dataclass(frozen=True)
class Step:
    """One load level: `users` held from `start` (inclusive) to `end` (exclusive)."""

    start: pd.Timestamp
    end: pd.Timestamp
    users: float
    kind: str = "plateau"


def detect_steps(users: pd.Series, min_step_s: int = 10, rel_tol: float = 0.02, settle_s: float | None = None,
                 ramp_bins: int = 6) -> list[Step]:
    """Segments of constant users in a 1-second users series.

    Consecutive seconds whose users stay within `max(0.5, rel_tol * users)` of
    the segment's first value form a plateau; plateaus shorter than
    `min_step_s` (transitions) are dropped, and adjacent plateaus at the same
    level are merged. The first `settle_s` seconds of each plateau are cut so
    queues built during the transition do not bias it (default: 10 % of the
    plateau, at most 10 s). When fewer than two plateaus exist but users rise
    steadily (a ramp test), the rising part is cut into `ramp_bins` bins of
    equal user width instead, each a step of kind `ramp` whose users are the
    time-weighted mean.
    """
    if users.empty:
        return []
    # Python floats: this loop visits every second of the run, and numpy scalars are slow one by one.
    values: list[float] = users.to_numpy(float).tolist()
    index = users.index
    segments: list[tuple[int, int, float]] = []
    i = 0
    while i < len(values):
        ref = values[i]
        tol = max(0.5, rel_tol * abs(ref))
        j = i
        while j + 1 < len(values) and abs(values[j + 1] - ref) <= tol:
            j += 1
        if j - i + 1 >= min_step_s and ref > 0:
            # The same value as numpy's median (the middle one, or the mean of the middle two).
            level = float(statistics.median(values[i : j + 1]))
            if segments and abs(segments[-1][2] - level) <= tol and segments[-1][1] + min_step_s >= i:
                segments[-1] = (segments[-1][0], j, segments[-1][2])
            else:
                segments.append((i, j, level))
        i = j + 1
    firsts = [a for a, _, _ in segments]
    lasts = [b for _, b, _ in segments]
    cuts = [settle_s if settle_s is not None else min(10.0, 0.1 * (b - a + 1)) for a, b, _ in segments]
    # Whole arrays: thousands of steps, each a Timestamp plus a Timedelta, took longer than finding them.
    starts = index[firsts] + pd.to_timedelta(cuts, unit="s")
    ends = index[lasts] + pd.Timedelta(seconds=1)
    steps = [Step(start, end, level) for start, end, (_, _, level) in zip(starts, ends, segments, strict=True) if end > start]
    if len(steps) >= 2 or len(values) < 2 * ramp_bins:
        return steps
    return _ramp_bins(users, ramp_bins) or steps


def _ramp_bins(users: pd.Series, bins: int) -> list[Step]:
    """Bins of equal user width over the rising part of a ramp."""
    peak = int(np.argmax(users.to_numpy()))
    rising = users.iloc[: peak + 1]
    rising = rising[rising > 0]
    if len(rising) < 2 * bins or rising.iloc[-1] <= rising.iloc[0]:
        return []
    edges = np.linspace(rising.iloc[0], rising.iloc[-1], bins + 1)
    out = []
    for k in range(bins):
        upper = rising <= edges[k + 1] if k == bins - 1 else rising < edges[k + 1]
        part = rising[(rising >= edges[k]) & upper]
        if len(part) >= 2:
            out.append(Step(part.index.min(), part.index.max() + pd.Timedelta(seconds=1), float(part.mean()), "ramp"))
    return out


def run_steps(con: duckdb.DuckDBPyConnection, run: str, min_step_s: int = 10, settle_s: float | None = None) -> list[Step]:
    """The steps of one run, detected from its load curve."""
    return detect_steps(users_per_second(con, run), min_step_s=min_step_s, settle_s=settle_s)


def step_table(con: duckdb.DuckDBPyConnection, run: str, steps: list[Step], method: str = "linear",
               offset_s: float = 0.0) -> pd.DataFrame:
    """Request and server statistics of `run` over each step.

    Request figures come from `sample` rows starting inside the step, computed
    by DuckDB (exact percentiles, `method` as in `stats`); throughput is the
    count over the step's duration. A run without raw samples (Locust history,
    Tsung intervals) takes them from the tool's windowed summaries lying inside
    the step: counts and errors add, means weigh by count, and percentiles stay
    null because summaries cannot give them. Server figures are the means of the
    readings inside the step after shifting server clocks by `offset_s`: CPU
    busy % and the other host columns of the busiest host (highest CPU),
    `busy_workers`/`max_workers` from `web_status` when present.
    """
    if method not in QUANTILE_FUNCTIONS:
        raise ValueError(f"unknown percentile method {method!r}; known: {', '.join(QUANTILE_FUNCTIONS)}")
    frame = pd.DataFrame(
        {
            "step": range(len(steps)),
            "start_ms": [int(s.start.value // 10**6) for s in steps],
            "end_ms": [int(s.end.value // 10**6) for s in steps],
        }
    )
    out = pd.DataFrame(
        {
            "run": run,
            "step": range(len(steps)),
            "kind": [s.kind for s in steps],
            "users": [s.users for s in steps],
            "start": [s.start for s in steps],
            "end": [s.end for s in steps],
        }
    )
    out["duration_s"] = (frame["end_ms"] - frame["start_ms"]) / 1000.0
    if not steps:
        return pd.DataFrame(columns=list(STEP_COLUMNS))
    con.register("_steps", frame)
    con.register("_step_seconds", _seconds_of(frame))
    try:
        # Each second of the run belongs to at most one step: an equality join on the second finds a
        # sample's step in one hash probe (a range or as-of join would sort every sample).
        # Timestamps are compared as timestamps: converting every sample's to epoch ms costs more than the join.
        source = (
            f"(SELECT s.step, r.elapsed_ms, r.success FROM requests r JOIN _step_seconds s ON {second_sql('r.ts')} = s.second "
            "WHERE r.run_id = $run AND r.row_kind = 'sample' AND r.ts >= s.start_ts AND r.ts < s.end_ts)"
        )
        # Steps hold a few thousand samples each: sorting them (`quantile_*`) beats a histogram here.
        fn = QUANTILE_FUNCTIONS[method]
        req = con.execute(
            "SELECT step, count(*) AS requests, count(*) FILTER (WHERE NOT success) AS errors, avg(elapsed_ms) AS mean_ms, "
            f"{fn}(elapsed_ms, [0.5, 0.9, 0.95, 0.99]) AS q, max(elapsed_ms) AS max_ms FROM {source} GROUP BY step",
            {"run": run},
        ).df()
        for i, name in enumerate(("p50_ms", "p90_ms", "p95_ms", "p99_ms")):
            req[name] = [None if q is None else q[i] for q in req["q"]]
        req = req.drop(columns="q")
        if req.empty:
            req = _summary_means(con, run)
        host = _host_means(con, run, frame, offset_s)
        web = _web_means(con, run, frame, offset_s)
    finally:
        con.unregister("_steps")
        con.unregister("_step_seconds")
    out = out.merge(req, on="step", how="left").merge(host, on="step", how="left").merge(web, on="step", how="left")
    if "web_busy" in out:
        out["busy_workers"] = out["busy_workers"].fillna(out["web_busy"]) if "busy_workers" in out else out["web_busy"]
    out["requests"] = out["requests"].fillna(0).astype(int)
    out["errors"] = out["errors"].fillna(0).astype(int)
    out["throughput_rps"] = out["requests"] / out["duration_s"]
    out["error_pct"] = np.where(out["requests"] > 0, 100.0 * out["errors"] / out["requests"].clip(lower=1), np.nan)
    for c in STEP_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out[list(STEP_COLUMNS)]


def _seconds_of(frame: pd.DataFrame) -> pd.DataFrame:
    """Every whole second (epoch) each step touches, with the step's bounds."""
    first = frame["start_ms"].to_numpy() // 1000
    last = (frame["end_ms"].to_numpy() - 1) // 1000
    counts = np.maximum(last - first + 1, 0)
    rows = np.repeat(np.arange(len(frame)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return pd.DataFrame({
        "second": first[rows] + offsets,
        "step": frame["step"].to_numpy()[rows],
        "start_ts": pd.to_datetime(frame["start_ms"].to_numpy()[rows], unit="ms", utc=True),
        "end_ts": pd.to_datetime(frame["end_ms"].to_numpy()[rows], unit="ms", utc=True),
    })


def _summary_means(con: duckdb.DuckDBPyConnection, run: str) -> pd.DataFrame:
    """Per-step requests, errors and mean from windowed `request_stats` (the tool's total rows when it wrote them)."""
    return con.execute(
        "WITH w AS (SELECT * FROM request_stats WHERE run_id = ? AND window_start IS NOT NULL AND window_end IS NOT NULL), "
        "picked AS (SELECT * FROM w WHERE row_kind = 'total' "
        "  OR (coalesce(row_kind, 'sample') = 'sample' AND NOT EXISTS (SELECT 1 FROM w WHERE row_kind = 'total'))) "
        "SELECT s.step, sum(p.count)::BIGINT AS requests, coalesce(sum(p.errors), 0)::BIGINT AS errors, "
        "sum(p.count * p.mean_ms) / nullif(sum(p.count) FILTER (WHERE p.mean_ms IS NOT NULL), 0) AS mean_ms "
        "FROM picked p JOIN _steps s ON epoch_ms(p.window_start) >= s.start_ms AND epoch_ms(p.window_end) <= s.end_ms "
        "GROUP BY s.step",
        [run],
    ).df()


def _host_means(con: duckdb.DuckDBPyConnection, run: str, frame: pd.DataFrame, offset_s: float) -> pd.DataFrame:
    shift = int(round(offset_s * 1000))
    cpu = con.execute(
        f"SELECT s.step, c.host, avg(c.value) AS cpu_pct FROM ({CPU_BUSY_SQL}) c JOIN _steps s "
        f"ON epoch_ms(c.ts) + {shift} >= s.start_ms AND epoch_ms(c.ts) + {shift} < s.end_ms GROUP BY 1, 2",
        {"run": run},
    ).df()
    names = ", ".join(f"'{m}'" for m in HOST_COLUMNS)
    other = con.execute(
        f"SELECT s.step, h.host, h.metric, avg(h.value) AS value FROM host_metrics h JOIN _steps s "
        f"ON epoch_ms(h.ts) + {shift} >= s.start_ms AND epoch_ms(h.ts) + {shift} < s.end_ms "
        f"WHERE h.run_id = ? AND h.metric IN ({names}) AND (h.device IS NULL OR h.device IN ('all', '-1')) GROUP BY 1, 2, 3",
        [run],
    ).df()
    if cpu.empty and other.empty:
        return pd.DataFrame({"step": frame["step"]})
    wide = other.pivot_table(index=["step", "host"], columns="metric", values="value").rename(columns=HOST_COLUMNS) if not other.empty else None
    per_host = cpu.set_index(["step", "host"]) if not cpu.empty else pd.DataFrame(index=wide.index)
    if wide is not None:
        per_host = per_host.join(wide, how="outer")
    per_host = per_host.reset_index()
    # the busiest host is the one that limits capacity; rank hosts by mean CPU over all steps
    if "cpu_pct" in per_host and per_host["cpu_pct"].notna().any():
        busiest = per_host.groupby("host")["cpu_pct"].mean().idxmax()
    else:
        busiest = per_host["host"].iloc[0]
    chosen = per_host[per_host["host"] == busiest].drop(columns="host")
    return chosen


def _web_means(con: duckdb.DuckDBPyConnection, run: str, frame: pd.DataFrame, offset_s: float) -> pd.DataFrame:
    shift = int(round(offset_s * 1000))
    web = con.execute(
        "SELECT s.step, avg(w.busy_workers) AS web_busy, max(w.max_workers) AS max_workers FROM web_status w JOIN _steps s "
        f"ON epoch_ms(w.ts) + {shift} >= s.start_ms AND epoch_ms(w.ts) + {shift} < s.end_ms WHERE w.run_id = ? GROUP BY 1",
        [run],
    ).df()
    return web if not web.empty else pd.DataFrame({"step": frame["step"]})


def steps_for_run(con: duckdb.DuckDBPyConnection, run: str, method: str = "linear", min_step_s: int = 10,
                  settle_s: float | None = None, clock_offset_s: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Detect the steps of `run` and compute its step table; also return notes (offset used)."""
    offset = run_offset(con, run, clock_offset_s)
    table = step_table(con, run, run_steps(con, run, min_step_s, settle_s), method, offset.seconds)
    return table, {"clock_offset_s": offset.seconds, "clock_offset_method": offset.method}


def steps_for_runs(store: object, runs: list[str], method: str = "linear", clock_offset_s: float | None = None,
                   warmup_s: float | None = None, cooldown_s: float | None = None) -> pd.DataFrame:
    """One step per run, for runs at fixed user counts tagged `users` (e.g. `users=50`).

    Each run's step is its steady window (`align.steady_window`: warm-up and
    cool-down trimmed) with the tagged users. Steps are sorted by users.
    """
    tables = []
    for run in runs:
        info = store.run(run)  # type: ignore[attr-defined]
        if "users" not in info["tags"]:
            raise ValueError(f"run {run!r} has no `users` tag; tag it with its user count (e.g. users=50)")
        users = float(info["tags"]["users"])
        con = store.connect([run])  # type: ignore[attr-defined]
        try:
            curve = users_per_second(con, run)
            if curve.empty:
                raise ValueError(f"run {run!r} has no requests or load data")
            start, end = steady_window(curve, warmup_s, cooldown_s)
            offset = run_offset(con, run, clock_offset_s)
            tables.append(step_table(con, run, [Step(start, end + pd.Timedelta(seconds=1), users, "run")], method, offset.seconds))
        finally:
            con.close()
    out = pd.concat(tables, ignore_index=True).sort_values("users", ignore_index=True)
    out["step"] = range(len(out))
    return out

