"""A value with its 95 % interval, the shape every model result takes."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A point estimate with the bounds of its (two-sided, 95 % unless stated) interval."""

    value: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, float | None]:
        """`{"value", "lo", "hi"}` with non-finite numbers as None (JSON null)."""
        return {k: (v if v is not None and math.isfinite(v) else None) for k, v in (("value", self.value), ("lo", self.lo), ("hi", self.hi))}

    def covers(self, x: float) -> bool:
        """Whether `x` lies inside the interval."""
        return self.lo <= x <= self.hi

    def scaled(self, factor: float) -> Estimate:
        """The same estimate multiplied by a positive constant."""
        return Estimate(self.value * factor, self.lo * factor, self.hi * factor)


NAN = Estimate(math.nan, math.nan, math.nan)
