"""The stability verdict: the threshold tau, the evidence of worsening B, the verdict and the collapse start.

The rules are those of ``DEFINITIONS`` ("threshold", "status", "collapse start"); a single run and a
configuration across seeds apply the same functions, only the evidence they pass differs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from benchmark.report.stats.directions import Direction

#: Worsening beyond which a configuration counts as collapsed: this share of its generation-0 quality.
THRESHOLD = 0.10
#: Consecutive generations beyond the threshold that make a collapse start.
CONSECUTIVE = 2
#: Evidence below this share of the scale (tau / THRESHOLD) is floating-point rounding, not worsening.
ROUNDING = 1e-9
#: Verdicts from mild to severe (a run that failed or diverged gets that as its verdict).
SEVERITY = ("stable", "degraded", "collapsed", "diverged", "failed")
#: Verdicts that send a configuration to the bottom of the ranking.
BROKEN = frozenset({"diverged", "failed"})


def threshold(first: float, values: np.ndarray) -> float:
    """tau: THRESHOLD x |generation-0 value|, or x the spread of ``values`` when that is 0 or not finite."""
    if np.isfinite(first) and first != 0:
        return THRESHOLD * abs(first)
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    spread = float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")
    return THRESHOLD * spread if np.isfinite(spread) else float("nan")


def bound(low: ArrayLike, high: ArrayLike, direction: Direction) -> np.ndarray:
    """B, the evidence of worsening from an interval [low, high] of d: its lower bound when worse is up,
    its distance from zero (negative when it covers zero) when any change counts. Pass low = high = L
    for a single run."""
    lows, highs = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return lows if direction.known else np.maximum(lows, -highs)


def verdict(evidence: float, tau: float) -> str:
    """The verdict from the evidence B: collapsed beyond tau, degraded beyond zero (rounding aside), else stable."""
    scale = tau / THRESHOLD if np.isfinite(tau) else 0.0
    if evidence > tau:  # NaN compares False: no threshold, no collapse
        return "collapsed"
    if evidence > ROUNDING * scale:
        return "degraded"
    return "stable"


def collapse_start(generations: np.ndarray, evidence: np.ndarray, tau: float) -> int | None:
    """First generation t >= 1 starting CONSECUTIVE generations with evidence of worsening above tau."""
    above = np.asarray(evidence, dtype=float) > tau  # NaN compares False: unknown is not worse
    for i in range(1, len(above) - CONSECUTIVE + 1):
        if above[i : i + CONSECUTIVE].all():
            return int(generations[i])
    return None
