"""One UTC timeline per run: load level, clock offset, resampling and trimming.

Load generators and servers keep their own clocks; a server's metrics are
shifted by `offset_s` (added to the server's timestamps) to land on the load
generator's timeline. The offset is given by the user or estimated by
cross-correlating the load (requests per second, else users) with CPU busy %.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd


def second_sql(column: str = "ts") -> str:
    """SQL for the epoch second of timestamp `column` (after 1970).

    Integer arithmetic on DuckDB's own microseconds: several times cheaper per row than
    `epoch_ms(ts) // 1000` or `floor(epoch(ts))` on a timestamp with zone.
    """
    return f"epoch_us({column}) // 1000000"


# CPU busy % from whichever CPU metrics a collector wrote, in order of preference.
CPU_BUSY_SQL = """
WITH cpu AS (
  SELECT host, ts, metric, avg(value) AS value FROM host_metrics
  WHERE run_id = $run AND metric IN ('cpu.busy_pct', 'cpu.idle_pct', 'cpu.iowait_pct')
    AND (device IS NULL OR device IN ('all', '-1'))
  GROUP BY host, ts, metric
)
SELECT host, ts,
  coalesce(max(value) FILTER (WHERE metric = 'cpu.busy_pct'),
           100 - max(value) FILTER (WHERE metric = 'cpu.idle_pct') - coalesce(max(value) FILTER (WHERE metric = 'cpu.iowait_pct'), 0)
  ) AS value
FROM cpu GROUP BY host, ts ORDER BY host, ts
"""


def users_per_second(con: duckdb.DuckDBPyConnection, run: str) -> pd.Series:
    """Concurrent users of `run` at each whole second (UTC), summed over load generators.

    Read from the `load` table when it has `active_users`, else from
    `requests.active_users`. Each generator's last reading in a second is
    carried forward over seconds without readings (a generator with no sample
    ending in a second still has its users), within that generator's own span.
    """
    query = (
        f"SELECT coalesce(generator, source) AS g, {second_sql()} AS s, "
        "arg_max(active_users, ts)::DOUBLE AS u FROM {table} WHERE run_id = ? AND active_users IS NOT NULL {extra} GROUP BY 1, 2"
    )
    df = con.execute(query.format(table="load", extra=""), [run]).df()
    if df.empty:
        df = con.execute(query.format(table="requests", extra="AND row_kind = 'sample'"), [run]).df()
    if df.empty:
        return pd.Series(dtype=float, name="users")
    wide = df.pivot_table(index="s", columns="g", values="u", aggfunc="last")
    wide = wide.reindex(np.arange(wide.index.min(), wide.index.max() + 1))
    # forward-fill only inside each generator's span, never past its last reading
    filled = wide.ffill().where(wide.bfill().notna() | wide.notna())
    total = filled.sum(axis=1, min_count=1).fillna(0.0)
    total.index = pd.to_datetime(total.index, unit="s", utc=True)
    total.name = "users"
    return total


def requests_per_second(con: duckdb.DuckDBPyConnection, run: str) -> pd.Series:
    """Samples started in each whole second (UTC) of `run`, gaps filled with 0."""
    df = con.execute(
        f"SELECT {second_sql()} AS s, count(*) AS n FROM requests "
        "WHERE run_id = ? AND row_kind = 'sample' GROUP BY 1 ORDER BY 1",
        [run],
    ).df()
    if df.empty:
        return pd.Series(dtype=float, name="rps")
    s = df.set_index("s")["n"].astype(float)
    s = s.reindex(np.arange(s.index.min(), s.index.max() + 1), fill_value=0.0)
    s.index = pd.to_datetime(s.index, unit="s", utc=True)
    s.name = "rps"
    return s


def cpu_busy(con: duckdb.DuckDBPyConnection, run: str) -> pd.DataFrame:
    """CPU busy % per host and timestamp (columns host, ts, value)."""
    return con.execute(CPU_BUSY_SQL, {"run": run}).fetch_df()


@dataclass(frozen=True)
class Offset:
    """An estimated clock offset: add `seconds` to server timestamps."""

    seconds: float
    correlation: float
    correlation_at_zero: float
    method: str


def estimate_offset(load: pd.Series, server: pd.Series, max_lag_s: int = 120, min_correlation: float = 0.5,
                    min_gain: float = 0.5) -> Offset:
    """Lag (seconds) that best aligns a server series with the load series.

    Both series are resampled to 1 s (the server's by linear interpolation
    between its samples, but never across a gap longer than three of its
    usual intervals: sparse snapshots would otherwise be joined by invented
    lines) and the Pearson correlation is scanned over lags in
    [-max_lag_s, max_lag_s]. The returned `seconds` is what must be added to
    the server's timestamps. If the best correlation is below
    `min_correlation`, or does not remove at least the fraction `min_gain` of
    the variance lag 0 leaves unexplained (clocks are usually synchronised:
    only a clear improvement moves data), the offset is 0 and `method` says why.
    """
    load = load.dropna()
    server = server.dropna().sort_index()
    if len(load) < 10 or len(server) < 3:
        return Offset(0.0, float("nan"), float("nan"), "not estimated: too few points")
    grid = pd.date_range(load.index.min().floor("s"), load.index.max().ceil("s"), freq="1s")
    x = load.reindex(grid, method="nearest").to_numpy(float)
    s_sec = server.index.as_unit("ns").asi8 / 1e9
    step = np.diff(s_sec)
    max_gap = 3 * max(1.0, float(np.median(step))) if len(step) else 3.0
    # Each server interval longer than max_gap is a hole, not a line to draw.
    hole_start, hole_end = s_sec[:-1][step > max_gap], s_sec[1:][step > max_gap]
    best = (0.0, -np.inf)
    at_zero = np.nan
    base = grid.as_unit("ns").asi8 / 1e9
    for lag in range(-max_lag_s, max_lag_s + 1):
        y = np.interp(base, s_sec + lag, server.to_numpy(float), left=np.nan, right=np.nan)
        if len(hole_start):
            idx = np.searchsorted(hole_start + lag, base, side="right") - 1
            inside = (idx >= 0) & (base < (hole_end + lag)[np.clip(idx, 0, None)])
            y[inside] = np.nan
        ok = ~np.isnan(y)
        if ok.sum() < 10 or np.std(y[ok]) == 0 or np.std(x[ok]) == 0:
            continue
        r = float(np.corrcoef(x[ok], y[ok])[0, 1])
        if lag == 0:
            at_zero = r
        if r > best[1] + 1e-9 or (abs(r - best[1]) <= 1e-9 and abs(lag) < abs(best[0])):
            best = (float(lag), r)
    if not np.isfinite(best[1]):
        return Offset(0.0, float("nan"), at_zero, "not estimated: no overlap between load and server data")
    if best[1] < min_correlation:
        return Offset(0.0, best[1], at_zero, f"not applied: best correlation {best[1]:.2f} < {min_correlation}")
    if best[0] != 0 and np.isfinite(at_zero) and (1 - best[1] ** 2) > (1 - min_gain) * (1 - max(at_zero, 0.0) ** 2):
        return Offset(0.0, best[1], at_zero, f"not applied: correlation {best[1]:.2f} at {best[0]:+.0f} s is not clearly "
                      f"better than {at_zero:.2f} at 0 s")
    return Offset(best[0], best[1], at_zero, "cross-correlation of load and CPU busy %")


def run_offset(con: duckdb.DuckDBPyConnection, run: str, given: float | None = None, max_lag_s: int = 120) -> Offset:
    """The clock offset of `run`'s servers: `given` if not None, else estimated from the data."""
    if given is not None:
        return Offset(float(given), float("nan"), float("nan"), "given")
    cpu = cpu_busy(con, run)
    if cpu.empty:
        return Offset(0.0, float("nan"), float("nan"), "not estimated: no CPU data")
    series = cpu.groupby("ts")["value"].mean()
    series.index = pd.to_datetime(series.index, utc=True)
    load = requests_per_second(con, run)
    if load.empty:
        load = users_per_second(con, run)
    return estimate_offset(load, series, max_lag_s=max_lag_s)


def steady_window(users: pd.Series, warmup_s: float | None = None, cooldown_s: float | None = None,
                  level: float = 0.9) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The run's window without warm-up and cool-down.

    Explicit `warmup_s` / `cooldown_s` cut that many seconds from the first
    and last second with users. The default reads the load curve: the window
    starts when users first reach `level` of their first plateau's value (the
    first value held for at least 5 s) and ends when they last fall below
    `level` of the last plateau's value.
    """
    active = users[users > 0]
    if active.empty:
        raise ValueError("no users in the run: cannot find a steady window")
    start, end = active.index.min(), active.index.max()
    if warmup_s is not None or cooldown_s is not None:
        return start + pd.Timedelta(seconds=warmup_s or 0), end - pd.Timedelta(seconds=cooldown_s or 0)
    runs = _plateaus(active, 5)
    if not runs:
        return start, end
    first, last = runs[0][2], runs[-1][2]
    reached = active[active >= level * first]
    held = active[active >= level * last]
    return reached.index.min(), held.index.max()


def _plateaus(users: pd.Series, min_len: int) -> list[tuple[int, int, float]]:
    """Positions (start, end inclusive, value) of runs of equal values at least `min_len` long."""
    values = users.round(6).to_numpy()
    out = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        if j - i + 1 >= min_len:
            out.append((i, j, float(values[i])))
        i = j + 1
    return out


def timeline(con: duckdb.DuckDBPyConnection, run: str, interval_s: float = 10.0, offset_s: float = 0.0,
             method: str = "linear") -> pd.DataFrame:
    """Every table of `run` resampled to one `interval_s` grid (UTC, epoch-aligned).

    Columns: users (mean), rps, error_pct, mean_ms, p95_ms (exact per bin,
    never averaged), then one column per `host/metric` (mean of the readings
    in the bin, server timestamps shifted by `offset_s`) and `host/busy_workers`
    from `web_status`.
    """
    from capacity.analysis.stats import window_stats

    width = pd.Timedelta(seconds=interval_s)
    parts = []
    users = users_per_second(con, run)
    if not users.empty:
        parts.append(users.groupby(users.index.floor(width)).mean().rename("users"))
    ws = window_stats(con, run, interval_s, method)
    if not ws.empty:
        parts.append(ws.set_index("window_start")[["throughput_rps", "error_pct", "mean_ms", "p95_ms"]].rename(columns={"throughput_rps": "rps"}))
    shift_ms = int(round(offset_s * 1000))
    width_ms = int(round(interval_s * 1000))
    bucket = f"((epoch_ms(ts) + {shift_ms}) // {width_ms}) * {width_ms} AS b"
    for sql in (
        f"SELECT host || '/' || metric AS col, {bucket}, avg(value) AS v "
        "FROM host_metrics WHERE run_id = ? AND (device IS NULL OR device IN ('all', '-1')) GROUP BY 1, 2",
        f"SELECT host || '/busy_workers' AS col, {bucket}, avg(busy_workers) AS v FROM web_status WHERE run_id = ? GROUP BY 1, 2",
    ):
        long = con.execute(sql, [run]).df()
        if not long.empty:
            parts.append(wide_bins(long))
    return join_parts(parts)


def wide_bins(long: pd.DataFrame) -> pd.DataFrame:
    """Long rows `(col, b, v)`, `b` a bin start in epoch ms, as one column per `col` on a UTC time index."""
    wide = long.pivot_table(index="b", columns="col", values="v")
    wide.index = pd.to_datetime(wide.index, unit="ms", utc=True)
    return wide


def join_parts(parts: list[pd.Series | pd.DataFrame]) -> pd.DataFrame:
    """Series and frames on one time grid side by side, in time order, the index named `ts` (empty if none)."""
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, axis=1, sort=True).sort_index()
    out.index.name = "ts"
    return out
