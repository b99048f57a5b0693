"""Max users under an SLO: every constraint's limit, the smallest one, and what saturated during the run."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from capacity.analysis.estimate import Estimate

PHRASES = {
    "cpu": "CPU saturates",
    "memory": "memory runs out",
    "workers": "web workers run out",
    "p95": "p95 response time breaks the SLO",
    "error_pct": "error rate breaks the SLO",
}


@dataclass(frozen=True)
class SLO:
    """Service-level targets (conventional defaults, MODELS.md B10; all configurable)."""

    p95_ms: float = 2000.0
    error_pct: float = 5.0
    cpu_pct: float = 80.0
    mem_pct: float = 90.0
    workers: bool = True

    def as_dict(self) -> dict[str, object]:
        """The targets as JSON."""
        return {"p95_ms": self.p95_ms, "error_pct": self.error_pct, "cpu_pct": self.cpu_pct, "mem_pct": self.mem_pct,
                "busy_workers_below_max": self.workers}


@dataclass(frozen=True)
class Limit:
    """The users at which one constraint is reached."""

    constraint: str
    users: Estimate
    basis: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready limit."""
        return {"constraint": self.constraint, **self.users.as_dict(), "basis": self.basis}


def observed_limit(steps: pd.DataFrame, column: str, target: float, name: str) -> Limit | None:
    """Limit from the measured steps alone: interpolated between the last step meeting the target and the first failing it.

    The interval is the bracket [last passing step, first failing step]; when
    every step passes, the limit is beyond the measured range (value and hi
    infinite, lo the largest step).
    """
    s = steps[["users", column]].dropna().sort_values("users")
    if s.empty:
        return None
    fails = s[s[column] > target]
    if fails.empty:
        return Limit(name, Estimate(math.inf, float(s["users"].max()), math.inf), f"not reached up to {s['users'].max():g} users (measured)")
    first = fails.iloc[0]
    passing = s[(s["users"] < first["users"]) & (s[column] <= target)]
    if passing.empty:
        return Limit(name, Estimate(0.0, 0.0, float(first["users"])), f"already exceeded at the smallest step ({first['users']:g} users)")
    last = passing.iloc[-1]
    frac = (target - last[column]) / (first[column] - last[column])
    value = float(last["users"] + frac * (first["users"] - last["users"]))
    return Limit(name, Estimate(value, float(last["users"]), float(first["users"])), "interpolated between measured steps")


def crossing(curve: Callable[[float], Estimate], target: float, n_max: float, name: str, basis: str) -> Limit:
    """Users where an increasing model `curve` reaches `target`; the bands give the interval.

    lo: where the upper band reaches the target; hi: where the lower band does.
    A curve that does not reach the target below `n_max` gives an infinite bound.
    """
    from scipy import optimize  # imported here: scipy is most of a command's start-up time

    def solve(pick: Callable[[Estimate], float]) -> float:
        def f(n: float) -> float:
            v = pick(curve(n))
            return (v if math.isfinite(v) else 1e300) - target
        if f(1e-6) >= 0:
            return 0.0
        if f(n_max) < 0:
            return math.inf
        grid = np.geomspace(1e-6, n_max, 200)
        # The first bracket of the grid, evaluated up to it only: each value solves the model.
        fa = f(grid[0])
        for a, b in zip(grid[:-1], grid[1:], strict=True):
            fb = f(b)
            if fa < 0 <= fb:
                return float(optimize.brentq(f, a, b))
            fa = fb
        return math.inf

    value = solve(lambda e: e.value)
    lo = solve(lambda e: e.hi if math.isfinite(e.hi) else e.value)
    hi = solve(lambda e: e.lo if math.isfinite(e.lo) else e.value)
    return Limit(name, Estimate(value, lo, hi), basis)


def combine(limits: list[Limit], observed: list[Limit]) -> list[Limit]:
    """Narrow model limits with what the steps measured (a measured pass or failure beats the model)."""
    seen = {o.constraint: o for o in observed}
    out = []
    for lim in limits:
        o = seen.pop(lim.constraint, None)
        if o is None:
            out.append(lim)
            continue
        lo = o.users.lo if math.isnan(lim.users.lo) else max(lim.users.lo, o.users.lo)
        hi = o.users.hi if math.isnan(lim.users.hi) else min(lim.users.hi, o.users.hi)
        if lo > hi or not lo <= lim.users.value <= hi:  # the model contradicts the measured steps: trust the measurements
            out.append(Limit(o.constraint, o.users, f"{o.basis} (the model, {lim.basis}, disagrees with the measured steps)"))
            continue
        value = lim.users.value
        out.append(Limit(lim.constraint, Estimate(value, lo, hi), f"{lim.basis}; bounded by the measured steps"))
    return out + list(seen.values())


def binding(limits: list[Limit]) -> dict[str, object]:
    """The smallest limit over all constraints, naming the binding one.

    The interval is (min of the lower bounds, min of the upper bounds): the
    minimum is monotone in each limit, so it holds whenever every limit's
    interval does.
    """
    usable = [lim for lim in limits if not math.isnan(lim.users.value)]
    if not usable:
        return {"value": None, "lo": None, "hi": None, "binding": None, "message": "no constraint could be evaluated"}
    first = min(usable, key=lambda lim: lim.users.value)
    lo = min(lim.users.lo for lim in usable if not math.isnan(lim.users.lo)) if any(not math.isnan(lim.users.lo) for lim in usable) else math.nan
    hi = min(lim.users.hi for lim in usable if not math.isnan(lim.users.hi)) if any(not math.isnan(lim.users.hi) for lim in usable) else math.nan
    est = Estimate(first.users.value, lo, hi)
    if math.isinf(first.users.value):
        message = "no constraint is reached within the model's range"
    else:
        message = f"{PHRASES.get(first.constraint, first.constraint)} first at ~{first.users.value:.0f} users"
        if math.isfinite(lo) and math.isfinite(hi):
            message += f" (95 % interval {lo:.0f}-{hi:.0f})"
    return {**est.as_dict(), "binding": first.constraint, "message": message}


def saturation_causes(con: duckdb.DuckDBPyConnection, run: str) -> list[str]:
    """Limits hit during the run: beancounter failcnt > 0 and busy workers reaching the maximum."""
    causes = []
    rows = con.execute(
        "SELECT host, container, resource, max(failcnt) - CASE WHEN count(*) > 1 THEN min(failcnt) ELSE 0 END AS fails, max(failcnt) "
        "FROM limits WHERE run_id = ? AND failcnt > 0 GROUP BY 1, 2, 3 ORDER BY 4 DESC",
        [run],
    ).fetchall()
    for host, container, resource, fails, total in rows:
        if fails and fails > 0:
            causes.append(f"container {container} on {host}: {resource} limit refused allocations (failcnt {total:,}, +{fails:,} during the run)")
    web = con.execute(
        "SELECT host, max(busy_workers), max(max_workers), count(*) FILTER (WHERE busy_workers >= max_workers) FROM web_status "
        "WHERE run_id = ? AND max_workers IS NOT NULL GROUP BY host",
        [run],
    ).fetchall()
    for host, busy, most, hits in web:
        if hits:
            causes.append(f"{host}: busy workers reached the maximum ({busy} of {most}) in {hits} snapshot(s): requests queued for a worker")
    return causes
