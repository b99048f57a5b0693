"""Straight-line fits (base + per-user) with t intervals, confidence bands and inverse prediction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from capacity.analysis.estimate import Estimate
from capacity.analysis.tdist import t_critical

LEVEL = 0.95


@dataclass(frozen=True)
class LinearFit:
    """y = intercept + slope·x by ordinary least squares, with 95 % intervals on df = n − 2."""

    intercept: Estimate
    slope: Estimate
    r2: float
    df: int
    s: float
    n: int
    x_mean: float
    sxx: float
    t: float
    x_range: tuple[float, float]

    def predict(self, x: float) -> Estimate:
        """The fitted mean at `x` with its confidence band (wider away from the data's centre)."""
        value = self.intercept.value + self.slope.value * x
        if not math.isfinite(self.t):
            return Estimate(value, math.nan, math.nan)
        half = self.t * self.s * math.sqrt(1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        return Estimate(value, value - half, value + half)

    def solve(self, target: float) -> Estimate:
        """The x at which the line reaches `target`, with Fieller's interval.

        The interval is the set of x whose confidence band contains `target`;
        when the slope is not significantly non-zero that set is unbounded
        and the bounds are NaN or infinite.
        """
        a, b = self.intercept.value, self.slope.value
        value = (target - a) / b if b != 0 else math.inf
        if not math.isfinite(self.t) or self.sxx <= 0:
            return Estimate(value, math.nan, math.nan)
        k = (self.t * self.s) ** 2
        c = a - target
        qa = b * b - k / self.sxx
        qb = 2 * b * c + 2 * k * self.x_mean / self.sxx
        qc = c * c - k / self.n - k * self.x_mean**2 / self.sxx
        if qa <= 0:
            return Estimate(value, -math.inf if b > 0 else math.nan, math.inf)
        disc = qb * qb - 4 * qa * qc
        if disc < 0:
            return Estimate(value, math.nan, math.nan)
        r1, r2 = sorted(((-qb - math.sqrt(disc)) / (2 * qa), (-qb + math.sqrt(disc)) / (2 * qa)))
        return Estimate(value, r1, r2)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready intercept, slope and fit diagnostics."""
        return {"base": self.intercept.as_dict(), "per_user": self.slope.as_dict(), "r2": self.r2, "df": self.df, "points": self.n}


def fit_line(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> LinearFit:
    """Fit y = a + b·x; points with a missing x or y are ignored. Needs two distinct x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        raise ValueError("a linear fit needs two or more points with distinct x")
    xm = float(x.mean())
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - y.mean())).sum() / sxx)
    a = float(y.mean() - b * xm)
    resid = y - a - b * x
    df = n - 2
    ssr = float(resid @ resid)
    sst = float(((y - y.mean()) ** 2).sum())
    if df > 0:
        s = math.sqrt(ssr / df)
        t = t_critical(df, LEVEL)
        se_b = s / math.sqrt(sxx)
        se_a = s * math.sqrt(1 / n + xm * xm / sxx)
        slope = Estimate(b, b - t * se_b, b + t * se_b)
        intercept = Estimate(a, a - t * se_a, a + t * se_a)
    else:
        s, t = math.nan, math.nan
        slope, intercept = Estimate(b, math.nan, math.nan), Estimate(a, math.nan, math.nan)
    return LinearFit(intercept, slope, 1 - ssr / sst if sst > 0 else math.nan, df, s, n, xm, sxx, t, (float(x.min()), float(x.max())))
