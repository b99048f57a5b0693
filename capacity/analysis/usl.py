"""Universal Scalability Law fit with honest uncertainty (MODELS.md B8).

X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted by bounded nonlinear least squares
(λ > 0, 0 ≤ σ, κ ≤ 1). Intervals are two-sided 95 % with a t quantile on
df = n − (free parameters): a parameter sitting on a bound is not free, so it
does not cost a degree of freedom, and its interval is reported as the bound
itself. Prediction bands come from the delta method (J(N)·Cov·J(N)ᵀ), so they
widen away from the measured N. A fit the bounds had to stop (super-linear
scaling, σ < 0) is reported in `warnings`, never clipped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from capacity.analysis.estimate import Estimate
from capacity.analysis.tdist import t_critical

LEVEL = 0.95
MIN_POINTS = 6  # usl4j refuses fewer, R's usl warns (MODELS.md B8.3)


@dataclass
class USLFit:
    """A fitted USL: parameters with intervals, covariance and goodness of fit."""

    lam: Estimate
    sigma: Estimate
    kappa: Estimate
    n_star: Estimate
    cov: np.ndarray
    df: int
    t: float
    r2: float
    rmse: float
    n_points: int
    n_range: tuple[float, float]
    model: str
    warnings: list[str] = field(default_factory=list)
    free: tuple[bool, bool, bool] = (True, True, True)

    @property
    def params(self) -> np.ndarray:
        """(λ, σ, κ) point values."""
        return np.array([self.lam.value, self.sigma.value, self.kappa.value])

    def throughput(self, n: float | np.ndarray) -> np.ndarray:
        """Model throughput at concurrency `n`."""
        return usl(np.asarray(n, float), *self.params)

    def predict(self, n: float) -> Estimate:
        """Throughput at `n` with its 95 % delta-method confidence band (NaN bounds when df = 0)."""
        value = float(self.throughput(n))
        g = gradient(np.array([float(n)]), self.params)[0]
        var = float(g @ self.cov @ g)
        if not math.isfinite(self.t) or not math.isfinite(var):
            return Estimate(value, math.nan, math.nan)
        half = self.t * math.sqrt(max(var, 0.0))
        return Estimate(value, max(value - half, 0.0), value + half)

    def response_time_s(self, n: float, think_time_s: float = 0.0) -> Estimate:
        """Response time implied by Little's law, R = N/X(N) − Z, with the band of X carried through."""
        x = self.predict(n)
        value = n / x.value - think_time_s
        lo = n / x.hi - think_time_s if x.hi > 0 else math.nan
        hi = n / x.lo - think_time_s if x.lo > 0 else math.inf
        return Estimate(value, lo, hi)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready parameters, intervals and fit diagnostics."""
        return {
            "sigma": self.sigma.as_dict(),
            "kappa": self.kappa.as_dict(),
            "lambda": self.lam.as_dict(),
            "n_star": self.n_star.as_dict(),
            "model": self.model,
            "df": self.df,
            "t_quantile": self.t if math.isfinite(self.t) else None,
            "r2": self.r2,
            "rmse": self.rmse,
            "points": self.n_points,
            "warnings": self.warnings,
        }


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    """X(N) = λN / (1 + σ(N−1) + κN(N−1))."""
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def gradient(n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """dX/d(λ, σ, κ) at each N (rows), for delta-method bands."""
    lam, sigma, kappa = p
    d = 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)
    return np.column_stack([n / d, -lam * n * (n - 1.0) / d**2, -lam * n * n * (n - 1.0) / d**2])


def _solve(n: np.ndarray, x: np.ndarray, lower: list[float]) -> optimize.OptimizeResult:
    best = None
    lam0 = float(np.max(x / n))
    for s0, k0 in ((0.01, 1e-4), (0.1, 1e-3), (0.0, 0.0), (0.3, 0.01)):
        start = np.clip([lam0, s0, k0], np.array(lower) + 1e-12, [np.inf, 1.0, 1.0])
        res = optimize.least_squares(lambda p: usl(n, *p) - x, start, bounds=(lower, [np.inf, 1.0, 1.0]),
                                     x_scale=[lam0, 0.01, 1e-4], method="trf", max_nfev=5000)
        if best is None or res.cost < best.cost:
            best = res
    return best


def fit_usl(n: np.ndarray | list[float], x: np.ndarray | list[float]) -> USLFit:
    """Fit the USL to concurrency `n` and throughput `x` (one point per step)."""
    n = np.asarray(n, float)
    x = np.asarray(x, float)
    ok = np.isfinite(n) & np.isfinite(x) & (n > 0)
    n, x = n[ok], x[ok]
    if len(n) < 2 or len(np.unique(n)) < 2:
        raise ValueError("a USL fit needs throughput at two or more distinct concurrencies")
    warnings: list[str] = []
    res = _solve(n, x, [1e-12, 0.0, 0.0])
    p = res.x
    free_res = _solve(n, x, [1e-12, -1.0, -1.0])
    if free_res.cost < res.cost * (1 - 1e-6) - 1e-12:
        q = free_res.x
        if q[1] < 0:
            warnings.append(f"super-linear scaling: the unconstrained best fit has sigma = {q[1]:.4g} < 0; sigma is held at its bound 0")
        if q[2] < 0:
            warnings.append(f"the unconstrained best fit has kappa = {q[2]:.4g} < 0 (throughput curving upwards); kappa is held at 0")
    at_bound = [False, bool(p[1] <= 1e-9 or p[1] >= 1 - 1e-9), bool(p[2] <= 1e-12 or p[2] >= 1 - 1e-9)]
    for i in (1, 2):
        if at_bound[i]:
            p[i] = 0.0 if p[i] < 0.5 else 1.0
    free = tuple(not b for b in at_bound)
    k = sum(free)
    df = len(n) - k
    resid = usl(n, *p) - x
    ssr = float(resid @ resid)
    jac = gradient(n, p)[:, list(np.flatnonzero(free))]
    cov = np.full((3, 3), np.nan)
    t = math.nan
    if df > 0:
        s2 = ssr / df
        t = t_critical(df, LEVEL)
        try:
            sub = np.linalg.inv(jac.T @ jac) * s2
            cov = np.zeros((3, 3))
            idx = np.flatnonzero(free)
            cov[np.ix_(idx, idx)] = sub
        except np.linalg.LinAlgError:
            warnings.append("the parameters are not identifiable from these points (singular Jacobian); no intervals")
    else:
        warnings.append(f"{len(n)} points for {k} free parameters: df = {df}, no interval can be estimated from the residuals")
    if len(np.unique(n)) < MIN_POINTS:
        warnings.append(
            f"only {len(np.unique(n))} distinct load levels (at least {MIN_POINTS} advised): intervals use a t quantile with df = {df}"
            + (f" (t = {t:.2f})" if math.isfinite(t) else "") + " and are wide; treat extrapolation with care"
        )
    names = ("lambda", "sigma", "kappa")
    ests = []
    for i in range(3):
        se = math.sqrt(cov[i, i]) if math.isfinite(cov[i, i]) and cov[i, i] >= 0 else math.nan
        if at_bound[i]:
            ests.append(Estimate(float(p[i]), float(p[i]), float(p[i])))
            warnings.append(f"{names[i]} is at its bound {p[i]:.3g}; its interval is not estimated")
        else:
            lo, hi = p[i] - t * se, p[i] + t * se
            if i > 0:
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            ests.append(Estimate(float(p[i]), float(lo), float(hi)))
    lam, sigma, kappa = ests
    n_star = _n_star(p, cov, t)
    if kappa.value <= 1e-12:
        model = "amdahl" if sigma.value > 1e-9 else "linear"
    else:
        model = "usl"
    ss_tot = float(((x - x.mean()) ** 2).sum())
    return USLFit(lam, sigma, kappa, n_star, cov, df, t, 1 - ssr / ss_tot if ss_tot > 0 else math.nan,
                  math.sqrt(ssr / len(n)), len(n), (float(n.min()), float(n.max())), model, warnings, free)


def _n_star(p: np.ndarray, cov: np.ndarray, t: float) -> Estimate:
    """Peak concurrency sqrt((1−σ)/κ) with a delta-method interval (infinite when κ may be 0)."""
    _, sigma, kappa = p
    if kappa <= 1e-12:
        return Estimate(math.inf, math.nan, math.inf)
    value = math.sqrt((1 - sigma) / kappa)
    g = np.array([0.0, -1.0 / (2 * kappa * value), -value / (2 * kappa)])
    var = float(g @ np.nan_to_num(cov) @ g) if np.isfinite(cov).all() else math.nan
    if not math.isfinite(var) or not math.isfinite(t):
        return Estimate(value, math.nan, math.nan)
    half = t * math.sqrt(max(var, 0.0))
    return Estimate(value, max(value - half, 0.0), value + half)
