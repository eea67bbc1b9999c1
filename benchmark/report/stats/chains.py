"""Level and trend of one chain: where a series of worsenings ended up, and whether it is still moving.

A chain is one run's series e_t of worsening against a reference (its own generation 0, or the grid's
real-only control of the same seed). Its *level* is the mean of e_t over the last ``TAIL`` of the generations,
its *drift* how far the least-squares line through the last ``LATE`` of them moves across that window, and its
*noise* the standard deviation of e_t around that line: the generation-to-generation evaluation noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Share of the generations 1..T averaged into the level (the late worsening L): the last ceil(TAIL * T).
TAIL = 0.25
#: Share of the generations 1..T whose trend says whether the chain is still moving: the last ceil(LATE * T), and
#: the generation before them.
LATE = 0.5


def tail_size(last_generation: int) -> int:
    """How many of the generations 1..T the level averages: ceil(TAIL * T)."""
    return math.ceil(TAIL * last_generation) if last_generation > 0 else 0


def late_size(last_generation: int) -> int:
    """How many generations the late trend is fitted to: ceil(LATE * T) + 1 (none before generation 1)."""
    return math.ceil(LATE * last_generation) + 1 if last_generation > 0 else 0


def late_worsening(worse: np.ndarray) -> float:
    """The level L: the mean of e_t over the last tail_size(T) generations (NaN without a finite one)."""
    worse = np.asarray(worse, dtype=float)
    tail = worse[len(worse) - tail_size(len(worse) - 1) :] if len(worse) > 1 else worse[:0]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if len(tail) else float("nan")


@dataclass(frozen=True)
class Line:
    """A least-squares line: slope, its standard error, the residual standard deviation and its degrees of freedom."""

    slope: float
    slope_se: float
    residual_sd: float
    df: int


def fit_line(t: np.ndarray, y: np.ndarray) -> Line:
    """The least-squares line of y over t (finite points only); NaN where fewer than 2 (3 for the noise) points."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(y)
    t, y = t[keep], y[keep]
    if len(t) < 2:
        return Line(float("nan"), float("nan"), float("nan"), 0)
    tc = t - t.mean()
    sxx = float(np.sum(tc * tc))
    slope = float(np.sum(tc * (y - y.mean())) / sxx)
    df = len(t) - 2
    if df < 1:
        return Line(slope, float("nan"), float("nan"), 0)
    residuals = y - y.mean() - slope * tc
    sd = float(np.sqrt(np.sum(residuals * residuals) / df))
    return Line(slope, sd / math.sqrt(sxx), sd, df)


@dataclass(frozen=True)
class Chain:
    """Level and drift of one chain, each with the standard error its own evaluation noise gives it."""

    level: float
    level_se: float
    drift: float
    drift_se: float
    noise: float
    df: int


def chain(generations: np.ndarray, worsening: np.ndarray, anchored: bool = True) -> Chain:
    """Level, drift and noise of e_t over generations 0..T (sorted).

    ``anchored``: e_t is measured against one evaluation (generation 0), whose noise adds to the level's
    standard error as much as one more generation's; against a control's series it does not.
    """
    generations = np.asarray(generations, dtype=float)
    worsening = np.asarray(worsening, dtype=float)
    last = int(generations[-1]) if len(generations) else 0
    late = slice(len(worsening) - late_size(last), None) if last > 0 else slice(0, 0)
    window = generations[late]
    line = fit_line(window, worsening[late])
    span = float(window[-1] - window[0]) if len(window) else float("nan")
    k = max(tail_size(last), 1)
    level_se = line.residual_sd * math.sqrt(1 / k + (1 if anchored else 0))
    return Chain(
        late_worsening(worsening), level_se, line.slope * span, line.slope_se * span, line.residual_sd, line.df
    )
