"""Operational laws on the step table: Little's law, the utilisation law, and checks against them (MODELS.md B9)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capacity.analysis.estimate import Estimate
from capacity.analysis.tdist import t_critical

LEVEL = 0.95


def mean_estimate(values: np.ndarray | pd.Series) -> Estimate:
    """Mean with a two-sided t interval (df = n − 1); NaN bounds with fewer than two values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Estimate(math.nan, math.nan, math.nan)
    m = float(v.mean())
    if len(v) < 2:
        return Estimate(m, math.nan, math.nan)
    half = t_critical(len(v) - 1, LEVEL) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return Estimate(m, m - half, m + half)


def think_times_s(steps: pd.DataFrame) -> pd.Series:
    """Per-step think time from Little's law for a closed system: Z = N/X − R (seconds)."""
    return steps["users"] / steps["throughput_rps"] - steps["mean_ms"] / 1000.0


def in_system(steps: pd.DataFrame) -> pd.Series:
    """Requests in flight per step, N_sys = X·R (Little's law applied to the requests alone)."""
    return steps["throughput_rps"] * steps["mean_ms"] / 1000.0


def cpu_demand_s(steps: pd.DataFrame, cpu_count: float) -> pd.Series:
    """CPU service demand per request per step, D = U·cores / X (core-seconds), utilisation law."""
    return steps["cpu_pct"] / 100.0 * cpu_count / steps["throughput_rps"]


@dataclass
class LawsCheck:
    """Think time, CPU demand and the steps that break the laws."""

    think_time_s: Estimate
    think_time_given: bool
    cpu_demand_s: Estimate | None
    saturation_rps: Estimate | None
    flags: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "think_time_s": self.think_time_s.as_dict(),
            "think_time_given": self.think_time_given,
            "cpu_demand_s_per_request": self.cpu_demand_s.as_dict() if self.cpu_demand_s else None,
            "cpu_saturation_rps": self.saturation_rps.as_dict() if self.saturation_rps else None,
            "flags": self.flags,
        }


def check_laws(steps: pd.DataFrame, cpu_count: float | None = None, think_time_s: float | None = None, tolerance: float = 0.25) -> LawsCheck:
    """Apply Little's law and the utilisation law to every step and flag the ones that break them.

    Little: with think time Z (given, else the median of the steps' N/X − R),
    a step should satisfy N ≈ X·(R+Z). When X·(R+Z) falls short of N by more
    than `tolerance`, fewer users were active than configured: usually the
    load generator was the bottleneck or the client saturated. Utilisation:
    a step whose CPU demand per request D = U·cores/X departs from the median
    demand by more than `tolerance` is flagged too (work outside the measured
    requests, or a saturated CPU queueing).
    """
    z_steps = think_times_s(steps)
    given = think_time_s is not None
    z_est = Estimate(float(think_time_s), float(think_time_s), float(think_time_s)) if given else mean_estimate(z_steps)
    z_ref = float(think_time_s) if given else float(np.nanmedian(z_steps)) if len(z_steps) else math.nan
    flags: list[dict[str, object]] = []
    users = steps["users"].to_numpy(float)
    expected_n = steps["throughput_rps"].to_numpy(float) * (steps["mean_ms"].to_numpy(float) / 1000.0 + z_ref)
    for n, expected in zip(users, expected_n, strict=True):
        if math.isfinite(expected) and n > 0 and abs(expected - n) / n > tolerance:
            flags.append({
                "users": n, "law": "little",
                "message": (f"{n:g} users but X·(R+Z) = {expected:.1f}: " + (
                    "fewer users active than configured (load generator bottleneck or saturated client)"
                    if expected < n else "more work than the users can generate (think time shorter than assumed)")),
            })
    demand = saturation = None
    if cpu_count and "cpu_pct" in steps and steps["cpu_pct"].notna().any():
        d = cpu_demand_s(steps, cpu_count)
        demand = mean_estimate(d)
        if demand.value > 0:
            saturation = Estimate(cpu_count / demand.value, cpu_count / demand.hi if demand.hi > 0 else math.nan,
                                  cpu_count / demand.lo if demand.lo > 0 else math.inf)
        med = float(np.nanmedian(d))
        for n, di in zip(users, d, strict=True):
            if math.isfinite(di) and med > 0 and abs(di - med) / med > tolerance:
                flags.append({"users": n, "law": "utilisation",
                              "message": f"CPU demand {1000 * di:.2f} ms per request vs median {1000 * med:.2f} ms"})
    return LawsCheck(z_est, given, demand, saturation, flags)
