"""The stability verdict: the tolerance, the claims about a chain's level and trend, and the verdict they make.

The rules are those of ``DEFINITIONS`` ("tolerance", "status", "worse from"); a single run and a
configuration across seeds apply the same functions, only the intervals they pass differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Worsening that matters at least: this share of the configuration's generation-0 quality ...
THRESHOLD = 0.10
#: ... and never less than this many noise floors (the evaluation noise of one generation).
FLOOR = 2.0
#: Consecutive generations beyond the tolerance that make the generation the chain is "worse from".
CONSECUTIVE = 2
#: Verdicts from mild to severe (a run that failed or diverged gets that as its verdict).
SEVERITY = ("stable", "inconclusive", "worsening", "settled-worse", "worse", "collapsed", "diverged", "failed")
#: Verdicts that send a configuration to the bottom of the ranking.
BROKEN = frozenset({"diverged", "failed"})
#: Verdicts that claim the level ended beyond the tolerance.
WORSE = frozenset({"settled-worse", "worse", "collapsed"})


def tolerance(first: float, noise: float) -> float:
    """THRESHOLD x |generation-0 value|, at least FLOOR x the noise floor; NaN when neither is known."""
    parts = [p for p in (THRESHOLD * abs(first), FLOOR * noise) if np.isfinite(p)]
    return max(parts) if parts else float("nan")


@dataclass(frozen=True)
class Claims:
    """What the tests showed about a chain: its level beyond or within the tolerance, its drift beyond it
    (still moving) or within it (settled). Neither of a pair: the data cannot tell."""

    worse: bool
    within: bool
    moving: bool
    settled: bool


def verdict(claims: Claims) -> str:
    """stable: within and settled; collapsed: worse and moving; settled-worse: worse and settled; worse: worse,
    trend unclear; worsening: moving but not shown worse; inconclusive: anything else."""
    if claims.worse:
        return "collapsed" if claims.moving else "settled-worse" if claims.settled else "worse"
    if claims.moving:
        return "worsening"
    return "stable" if claims.within and claims.settled else "inconclusive"


def worse_from(generations: np.ndarray, lower_bounds: np.ndarray, tol: float) -> int | None:
    """First generation t >= 1 starting CONSECUTIVE generations whose worsening's lower bound exceeds ``tol``."""
    above = np.asarray(lower_bounds, dtype=float) > tol  # NaN compares False: unknown is not worse
    for i in range(1, len(above) - CONSECUTIVE + 1):
        if above[i : i + CONSECUTIVE].all():
            return int(generations[i])
    return None
