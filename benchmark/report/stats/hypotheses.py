"""The tests behind every verdict: one-sided t-tests of a worsening against its tolerance, and the
Benjamini-Hochberg adjustment that controls the false discovery rate across a report.

Each claim a verdict makes (worse than tolerance, within tolerance, still moving, settled) is its own
one-sided test at ``ALPHA``; a claim of "within" is an equivalence test (TOST): with one test, it is made
exactly when the (1 - 2 ALPHA) interval lies below the tolerance.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

#: Level of every one-sided test and the false discovery rate of a report's claims.
ALPHA = 0.05
#: The interval whose two ends are the one-sided tests at ALPHA (shown beside the level and drift).
CLAIM_CONFIDENCE = 1 - 2 * ALPHA
#: Relative size below which a difference is floating-point rounding (decides tests with no noise at all).
ROUNDING = 1e-9


def _exceeds(excess: float, se: float, df: float, scale: float, strict: bool = True) -> float:
    """p-value of "the true value exceeds the bound" from the estimate's excess over it (one-sided t-test).
    Without noise the estimate is the value: it exceeds the bound beyond rounding (``strict``) or reaches it."""
    if not (np.isfinite(excess) and np.isfinite(se)):
        return float("nan")
    if se == 0:  # no noise at all: the estimate is the value, up to rounding
        reaches = excess > ROUNDING * scale if strict else excess >= -ROUNDING * scale
        return 0.0 if reaches else 1.0
    if df < 1:
        return float("nan")
    return float(sps.t.sf(excess / se, df))


def p_beyond(mean: float, se: float, df: float, tolerance: float, known: bool = True) -> float:
    """p-value of "the worsening exceeds the tolerance" (either way when the direction is unknown)."""
    scale = abs(tolerance) + abs(mean)
    up = _exceeds(mean - tolerance, se, df, scale)
    if known:
        return up
    down = _exceeds(-tolerance - mean, se, df, scale)
    return min(1.0, 2 * min(up, down)) if np.isfinite(up) and np.isfinite(down) else float("nan")


def p_within(mean: float, se: float, df: float, tolerance: float, known: bool = True) -> float:
    """p-value of "the worsening stays within the tolerance" (TOST: within +-tolerance with an unknown direction)."""
    scale = abs(tolerance) + abs(mean)
    below = _exceeds(tolerance - mean, se, df, scale, strict=False)
    if known:
        return below
    above = _exceeds(mean + tolerance, se, df, scale, strict=False)
    return max(below, above)


def interval(mean: ArrayLike, se: ArrayLike, df: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The CLAIM_CONFIDENCE (90%) t-interval: each end is a one-sided test at ALPHA."""
    means, ses, dfs = (np.asarray(a, dtype=float) for a in (mean, se, df))
    with np.errstate(invalid="ignore"):
        half = np.where(dfs >= 1, sps.t.ppf(1 - ALPHA, np.maximum(dfs, 1)) * ses, np.nan)
    return means - half, means + half


def adjust(pvalues: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of every finite p-value (NaN stays NaN): a claim is made when its
    adjusted p-value is at most ALPHA, which keeps the expected share of false claims at most ALPHA."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = sps.false_discovery_control(p[finite], method="bh")
    return out


def seeds_needed(mean: float, sd: float, tolerance: float, limit: int = 100) -> int | None:
    """About how many seeds would make the level's interval clear the tolerance, if the mean and the seeds'
    standard deviation stayed as they are; None beyond ``limit`` or when undefined."""
    gap = abs(abs(mean) - tolerance)
    if not (np.isfinite(gap) and np.isfinite(sd)) or gap == 0:
        return None
    for n in range(2, limit + 1):
        if sps.t.ppf(1 - ALPHA, n - 1) * sd / math.sqrt(n) < gap:
            return n
    return None


def claim_pvalues(
    level: float, level_se: float, drift: float, drift_se: float, df: float, tol: float, known: bool = True
) -> tuple[float, float, float, float]:
    """p-values of the four claims about a chain: level beyond and within ``tol``, drift beyond and within it."""
    return (
        p_beyond(level, level_se, df, tol, known),
        p_within(level, level_se, df, tol, known),
        p_beyond(drift, drift_se, df, tol, known),
        p_within(drift, drift_se, df, tol, known),
    )
