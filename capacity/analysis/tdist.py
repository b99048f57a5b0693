"""Student's t critical values for the confidence intervals of the fits.

`scipy.special.stdtrit` is the inverse of Student's t CDF, the function
`scipy.stats.t.ppf` calls; importing it alone spares a command the second that
importing `scipy.stats` takes.
"""

from __future__ import annotations

from scipy.special import stdtrit


def t_critical(df: float, level: float) -> float:
    """The two-sided critical value of Student's t with `df` degrees of freedom at confidence `level`."""
    return float(stdtrit(df, 0.5 + level / 2))
