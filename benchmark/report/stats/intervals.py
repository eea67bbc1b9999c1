"""The Student-t confidence interval of a mean: every interval across seeds in a report is this one."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

#: Confidence level of every interval across seeds.
CONFIDENCE = 0.95


def t_interval(mean: ArrayLike, std: ArrayLike, n: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """CONFIDENCE (95%) Student-t confidence interval of a mean from (mean, sample std, n); NaN where n < 2."""
    means, stds, counts = (np.asarray(a, dtype=float) for a in (mean, std, n))
    quantile = sps.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(counts - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.where(counts >= 2, quantile * stds / np.sqrt(counts), np.nan)
    return means - half, means + half
