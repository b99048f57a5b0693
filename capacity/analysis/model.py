"""The capacity model of one step table: USL, linear resource fits, laws, SLO limit, predictions.

`fit_capacity` is the function a notebook or the CLI calls; it returns a
`CapacityModel` whose `as_dict()` is the `capacity fit --json` document.

Concurrency for the USL (MODELS.md B8.3): with `concurrency="in_system"` the
USL is fitted to the requests in flight, N_sys = X·R, and users map to it
through Little's law for a closed system, users = N_sys + Z·X(N_sys), with
the think time Z estimated from the steps (or given). With
`concurrency="users"` the virtual users are used directly. σ, κ and λ are in
the chosen unit; `n_star` is always reported in users.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

from capacity.analysis.estimate import NAN, Estimate
from capacity.analysis.laws import LawsCheck, check_laws, in_system, mean_estimate
from capacity.analysis.regression import LinearFit, fit_line
from capacity.analysis.slo import SLO, Limit, binding, combine, crossing, observed_limit
from capacity.analysis.usl import USLFit, fit_usl, gradient


@dataclass
class CapacityModel:
    """Everything fitted on one step table."""

    steps: pd.DataFrame
    concurrency: str
    usl: USLFit | None
    think_time: Estimate
    p95_ratio: Estimate
    cpu: LinearFit | None
    mem: LinearFit | None
    workers: LinearFit | None
    laws: LawsCheck
    slo: SLO
    limits: list[Limit]
    max_users: dict[str, object]
    cpu_count: float | None = None
    memory_bytes: float | None = None
    warnings: list[str] = field(default_factory=list)
    saturation_causes: list[str] = field(default_factory=list)

    def n_sys(self, users: float) -> float:
        """Requests in flight at `users` (the users themselves in `users` mode)."""
        if self.concurrency == "users":
            return users
        z = self.think_time.value
        return float(optimize.brentq(lambda n: n + z * float(self.usl.throughput(n)) - users, 0.0, users)) if users > 0 else 0.0

    def throughput(self, users: float) -> Estimate:
        """Throughput at `users` with its 95 % band (delta method through the USL and, in in-system mode, Z)."""
        if self.usl is None:
            return NAN
        if self.concurrency == "users":
            return self.usl.predict(users)
        z = self.think_time
        n = self.n_sys(users)
        p = self.usl.params
        x = float(self.usl.throughput(n))
        eps = max(1e-6, 1e-6 * n)
        dxdn = float((self.usl.throughput(n + eps) - self.usl.throughput(max(n - eps, 0.0))) / (n + eps - max(n - eps, 0.0)))
        denom = 1.0 + z.value * dxdn
        g = gradient(np.array([n]), p)[0] / denom
        var = float(g @ self.usl.cov @ g)
        if math.isfinite(z.lo) and math.isfinite(z.hi) and z.hi > z.lo and math.isfinite(self.usl.t):
            var_z = ((z.hi - z.lo) / 2 / self.usl.t) ** 2
            var += (x * dxdn / denom) ** 2 * var_z
        if not math.isfinite(var) or not math.isfinite(self.usl.t):
            return Estimate(x, math.nan, math.nan)
        half = self.usl.t * math.sqrt(max(var, 0.0))
        return Estimate(x, max(x - half, 0.0), x + half)

    def response_ms(self, users: float) -> Estimate:
        """Mean response time at `users` from Little's law, R = users/X − Z."""
        x = self.throughput(users)
        z = self.think_time.value
        lo = 1000 * (users / x.hi - z) if x.hi > 0 else math.nan
        hi = 1000 * (users / x.lo - z) if x.lo > 0 else math.inf
        return Estimate(1000 * (users / x.value - z), max(lo, 0.0) if math.isfinite(lo) else lo, hi)

    def p95_ms(self, users: float) -> Estimate:
        """p95 at `users`: the Little's-law mean response times the fitted steps' p95/mean ratio."""
        r = self.response_ms(users)
        q = self.p95_ratio
        return Estimate(r.value * q.value, r.lo * (q.lo if math.isfinite(q.lo) else q.value), r.hi * (q.hi if math.isfinite(q.hi) else q.value))

    def predict(self, users: float) -> dict[str, object]:
        """The `prediction` object of `capacity fit --predict-users`."""
        return {"users": users, "throughput_rps": self.throughput(users).as_dict(), "p95_ms": self.p95_ms(users).as_dict(),
                "mean_ms": self.response_ms(users).as_dict()}

    def n_star_users(self) -> Estimate:
        """USL peak concurrency in users."""
        if self.usl is None:
            return NAN
        ns = self.usl.n_star
        if self.concurrency == "users":
            return ns
        z = self.think_time.value

        def to_users(n: float) -> float:
            return n + z * float(self.usl.throughput(n)) if math.isfinite(n) else n

        return Estimate(to_users(ns.value), to_users(ns.lo), to_users(ns.hi))

    def as_dict(self) -> dict[str, object]:
        """The `capacity fit --json` document (without `run`)."""
        usl = None
        if self.usl is not None:
            usl = self.usl.as_dict()
            usl["n_star"] = self.n_star_users().as_dict()
            usl["n_star_unit"] = "users"
            usl["concurrency"] = self.concurrency
            if self.concurrency == "in_system":
                usl["n_star_in_system"] = self.usl.n_star.as_dict()
        cpu_count = self.cpu_count
        return {
            "usl": usl,
            "think_time_s": self.think_time.as_dict(),
            "cpu_per_user_pct": self.cpu.slope.as_dict() if self.cpu else None,
            "cpu_base_pct": self.cpu.intercept.as_dict() if self.cpu else None,
            "cpu_per_user_cores": self.cpu.slope.scaled(cpu_count / 100).as_dict() if self.cpu and cpu_count else None,
            "mem_per_user_bytes": self.mem.slope.as_dict() if self.mem else None,
            "mem_base_bytes": self.mem.intercept.as_dict() if self.mem else None,
            "max_users": self.max_users,
            "limits": [lim.as_dict() for lim in self.limits],
            "slo": self.slo.as_dict(),
            "laws": self.laws.as_dict(),
            "saturation_causes": self.saturation_causes,
            "hardware": {"cpu_count": self.cpu_count, "memory_bytes": self.memory_bytes},
            "steps_fitted": [float(u) for u in self.steps["users"]],
            "warnings": self.warnings,
        }


def _fit_or_none(x: pd.Series, y: pd.Series) -> LinearFit | None:
    ok = x.notna() & y.notna()
    if ok.sum() < 2 or x[ok].nunique() < 2:
        return None
    return fit_line(x[ok], y[ok])


def fit_capacity(
    steps: pd.DataFrame,
    *,
    cpu_count: float | None = None,
    memory_bytes: float | None = None,
    max_workers: float | None = None,
    slo: SLO | None = None,
    think_time_s: float | None = None,
    concurrency: str = "in_system",
    fit_max_users: float | None = None,
    saturation_causes: list[str] | None = None,
) -> CapacityModel:
    """Fit every model on a step table (`steps.step_table` columns).

    `fit_max_users` keeps only steps with at most that many users (to test a
    prediction against a step the model did not see). `cpu_count` and
    `memory_bytes` describe the measured server (needed for CPU demand and
    the memory limit); `max_workers` defaults to the steps' `max_workers`.
    """
    if concurrency not in ("in_system", "users"):
        raise ValueError("concurrency must be 'in_system' or 'users'")
    slo = slo or SLO()
    s = steps.copy()
    if fit_max_users is not None:
        s = s[s["users"] <= fit_max_users]
    s = s[(s["throughput_rps"] > 0) & s["users"].gt(0)].sort_values("users", ignore_index=True)
    warnings: list[str] = []
    if len(s) < 2:
        raise ValueError(f"{len(s)} usable step(s): a capacity model needs at least two load levels")
    laws = check_laws(s, cpu_count, think_time_s)
    z = laws.think_time_s
    if concurrency == "in_system" and (s["mean_ms"].isna().any() or not math.isfinite(z.value) or z.value < 0):
        warnings.append("no usable think time (mean response or Little's law estimate missing or negative): USL fitted on users")
        concurrency = "users"
    if concurrency == "users":
        z = z if math.isfinite(z.value) and z.value >= 0 else Estimate(0.0, 0.0, 0.0)
    n = in_system(s) if concurrency == "in_system" else s["users"]
    usl: USLFit | None = None
    try:
        usl = fit_usl(n.to_numpy(float), s["throughput_rps"].to_numpy(float))
        warnings += [f"usl: {w}" for w in usl.warnings]
    except ValueError as exc:
        warnings.append(f"usl: {exc}")
    ratio = mean_estimate((s["p95_ms"] / s["mean_ms"]).to_numpy(float)) if "p95_ms" in s else NAN
    cpu = _fit_or_none(s["users"], s["cpu_pct"]) if "cpu_pct" in s else None
    mem = _fit_or_none(s["users"], s["mem_used_bytes"]) if "mem_used_bytes" in s else None
    workers = _fit_or_none(s["users"], s["busy_workers"]) if "busy_workers" in s else None
    if max_workers is None and "max_workers" in s and s["max_workers"].notna().any():
        max_workers = float(s["max_workers"].max())
    model = CapacityModel(s, concurrency, usl, z, ratio, cpu, mem, workers, laws, slo, [], {}, cpu_count, memory_bytes,
                          warnings, list(saturation_causes or []))
    model.limits = _limits(model, max_workers)
    model.max_users = binding(model.limits)
    return model


def _limits(m: CapacityModel, max_workers: float | None) -> list[Limit]:
    s, slo = m.steps, m.slo
    top = float(s["users"].max())
    n_max = 1000 * top
    limits: list[Limit] = []
    observed: list[Limit] = []
    if m.usl is not None and math.isfinite(m.p95_ratio.value) and m.usl.lam.value > 0:
        limits.append(crossing(m.p95_ms, slo.p95_ms, n_max, "p95",
                               "USL throughput -> Little's-law response time x p95/mean ratio of the steps"))
    if "p95_ms" in s and (o := observed_limit(s, "p95_ms", slo.p95_ms, "p95")):
        observed.append(o)
    if "error_pct" in s and (o := observed_limit(s, "error_pct", slo.error_pct, "error_pct")):
        observed.append(o)
    if m.cpu is not None:
        limits.append(_line_limit(m.cpu, slo.cpu_pct, "cpu", "linear fit of CPU % on users"))
    if m.mem is not None and m.memory_bytes:
        limits.append(_line_limit(m.mem, slo.mem_pct / 100 * m.memory_bytes, "memory", "linear fit of used memory on users"))
    elif m.mem is not None:
        m.warnings.append("memory per user fitted, but the host's memory size is unknown: no memory limit")
    if m.workers is not None and max_workers and slo.workers:
        limits.append(_line_limit(m.workers, max_workers, "workers", "linear fit of busy workers on users"))
    return combine(limits, observed)


def _line_limit(fit: LinearFit, target: float, name: str, basis: str) -> Limit:
    if fit.slope.value <= 0:
        return Limit(name, Estimate(math.inf, math.nan, math.inf), f"{basis}: does not grow with users")
    est = fit.solve(target)
    lo = max(est.lo, 0.0) if math.isfinite(est.lo) else est.lo
    return Limit(name, Estimate(max(est.value, 0.0), lo, est.hi), basis)
