"""Distances between the sample and test distributions from all their points: Wasserstein, energy, MMD.

Unlike the Fréchet distance (plugins/metrics/moments.py), these see more than two moments: a
mixture that lost a mode is far from the data even if its mean and covariance are right. The
functions (``wasserstein``, ``rbf_mmd2``, ``energy_distance``, ...) take plain arrays.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param
from plugins.metrics.maths import (
    distance_sum,
    require_points,
    rescaling,
    samples_and_test,
    squared_distance_batches,
    squared_distances,
)

# ---------------------------------------------------------------- MMD


def median_bandwidth(x: np.ndarray, y: np.ndarray, max_points: int = 1000) -> float:
    """Median pairwise distance of the pooled points (the first max_points/2 of each: they are i.i.d.)."""
    from scipy.spatial.distance import pdist

    half = max(max_points // 2, 1)
    pooled = np.concatenate([x[:half], y[:half]])
    c = rescaling(pooled)  # the median scales with the points
    distances = pdist(pooled / c)
    positive = distances[distances > 0]
    if len(positive) == 0:
        raise ValueError("median heuristic: all points coincide, set the MMD bandwidth explicitly")
    return c * float(np.median(positive))


def rbf_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with k(a, b) = exp(-|a - b|^2 / (2 h^2)); may dip below 0."""
    require_points("unbiased MMD", 2, x, y)
    n, m = len(x), len(y)
    c = rescaling(x, y)  # the kernel sees |a - b| / h only: huge points and bandwidth scale together
    if c != 1:
        x, y, bandwidth = x / c, y / c, bandwidth / c

    def kernel_sum(a: np.ndarray, b: np.ndarray | None = None) -> float:
        total = 0.0
        for _, block in squared_distance_batches(a, b):
            block *= -1.0 / (2 * bandwidth**2)
            total += float(np.sum(np.exp(block, out=block)))
        return total

    xx = (kernel_sum(x) - n) / (n * (n - 1))  # the diagonal's k(a, a) = 1 left out
    yy = (kernel_sum(y) - m) / (m * (m - 1))
    xy = kernel_sum(x, y) / (n * m)
    return float(xx + yy - 2 * xy)


class MMD(Metric):
    """Unbiased squared maximum mean discrepancy, RBF kernel, bandwidth by the median heuristic unless set."""

    name = "mmd"
    higher_is_better = False
    optimum = 0.0
    parameters = {
        "bandwidth": Param(
            None, float, "RBF kernel width h (default: median pairwise distance)", above=0, optional=True
        ),
        "median_points": Param(1000, int, "pooled points the median heuristic looks at", low=2),
    }

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = samples_and_test(evaluation)
        h = self.params["bandwidth"]
        how = "set"
        if h is None:
            h, how = median_bandwidth(samples, test, self.params["median_points"]), "median heuristic"
        return Measured(rbf_mmd2(samples, test, h), f"unbiased MMD^2, RBF bandwidth {h:.4g} ({how})")


# ---------------------------------------------------------------- Wasserstein


def _pot():
    """POT, imported without its torch/jax/tensorflow/cupy backends unless the user chose otherwise.

    These metrics hand POT numpy arrays only; its backend discovery would otherwise import torch in
    every worker process (seconds, and hundreds of MB) just to compute a transport plan."""
    if "ot" not in sys.modules:
        for backend in ("PYTORCH", "JAX", "TF", "CUPY"):
            os.environ.setdefault(f"POT_BACKEND_DISABLE_{backend}", "1")
    import ot

    return ot


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, p: int, directions: np.ndarray) -> float:
    """Sliced W_p: (mean over unit ``directions`` (d, L) of W_p^p of the projections)^(1/p), exact per direction.

    inf when |projected differences|^p overflow float64 (points beyond ~1e154 for p = 2): the distance
    is that large, and POT's quantile sums would turn the overflow into NaN (0 * inf)."""
    ot = _pot()

    with np.errstate(over="ignore", invalid="ignore"):
        a, b = x @ directions, y @ directions
        if len(a) == len(b):  # equal uniform weights: the 1-D optimal plan pairs sorted points
            per_direction = np.mean(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0)) ** p, axis=0)
        else:
            per_direction = ot.wasserstein_1d(a, b, p=p)
    if not np.all(np.isfinite(per_direction)):
        return math.inf
    return float(np.mean(per_direction) ** (1.0 / p))


def exact_wasserstein(x: np.ndarray, y: np.ndarray, p: int) -> Measured:
    """Exact W_p between the empirical measures of ``x`` and ``y``: sorting in 1-D, POT's network simplex beyond.

    A failed solve never passes for a value: when squared distances of finite points overflow (points
    beyond ~1e154, as a diverging model's) the distance really is enormous and is inf, with a detail
    that says so; a solver that stops short of optimality (POT's result code) raises ArithmeticError."""
    ot = _pot()

    if x.shape[1] == 1:
        return Measured(float(ot.wasserstein_1d(x[:, 0], y[:, 0], p=p)) ** (1.0 / p), "exact (1-D)")
    with np.errstate(over="ignore", invalid="ignore"):
        cost = squared_distances(x, y)
    if not np.all(np.isfinite(cost)):
        return Measured(math.inf, "squared distances overflow float64: the points lie beyond ~1e154")
    if p == 1:
        cost = np.sqrt(cost, out=cost)
    value, log = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10_000_000, log=True)
    if log["result_code"] != 1:  # 1 is OPTIMAL in POT's network simplex
        raise ArithmeticError(f"exact W_p: POT's solver found no optimal plan: {log['warning']}")
    return Measured(float(max(value, 0.0)) ** (1.0 / p), "exact")


def wasserstein(x: np.ndarray, y: np.ndarray, p: int, max_exact: int, rng: np.random.Generator) -> Measured:
    """W_p between the samples ``x`` and the test points ``y``, always the exact transport between empirical
    measures: of all the points in 1-D (sorting costs nothing) and up to ``max_exact`` points per side, of
    a uniform random subsample of ``max_exact`` points (without replacement, drawn from ``rng``: samples
    first, then test points) of each larger side beyond.

    A subsample estimates the same distance between the distributions, with the upward bias of a
    smaller sample; the detail says which points were used."""
    require_points("W_p", 1, x, y)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("W_p: the points are not all finite")
    if x.shape[1] == 1 or max(len(x), len(y)) <= max_exact:
        return exact_wasserstein(x, y, p)
    used = " and ".join(
        f"{max_exact} of {len(z)} {what}" if len(z) > max_exact else f"all {len(z)} {what}"
        for z, what in ((x, "samples"), (y, "test points"))
    )
    x, y = (z[rng.choice(len(z), max_exact, replace=False)] if len(z) > max_exact else z for z in (x, y))
    result = exact_wasserstein(x, y, p)
    if math.isinf(result.value):  # the overflow's detail says why
        return result
    return Measured(result.value, f"exact on a random subsample: {used}")


class _Wasserstein(Metric):
    higher_is_better = False
    optimum = 0.0
    requires = ("ot",)
    install_hint = "pip install pot"
    parameters = {
        "max_exact": Param(
            1000, int, "largest side (points) solved whole; a larger one is randomly subsampled to this size", low=1
        ),
    }
    p: int

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = samples_and_test(evaluation)
        return wasserstein(samples, test, self.p, self.params["max_exact"], evaluation.rng)


class W1(_Wasserstein):
    """Wasserstein-1 distance between samples and test set: exact optimal transport (POT), on a random subsample
    of max_exact points of each larger side; all points in 1-D.

    inf when squared distances overflow (a diverging model's points); an error if the solver fails.
    Version 2: never sliced (``sliced-w1`` is); version 1 was sliced beyond max_exact points."""

    name, p = "w1", 1
    version = "2"


class W2(_Wasserstein):
    """Wasserstein-2 distance between samples and test set: exact optimal transport (POT), on a random subsample
    of max_exact points of each larger side; all points in 1-D.

    inf when squared distances overflow (a diverging model's points); an error if the solver fails.
    Version 3: never sliced (``sliced-w2`` is), no ``projections`` parameter; version 2 was sliced beyond
    max_exact points in d > 1."""

    name, p = "w2", 2
    version = "3"


class _SlicedWasserstein(Metric):
    higher_is_better = False
    optimum = 0.0
    requires = ("ot",)
    install_hint = "pip install pot"
    parameters = {"projections": Param(200, int, "random directions averaged", low=1)}
    p: int

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = samples_and_test(evaluation)
        require_points(f"sliced W_{self.p}", 1, samples, test)
        projections = self.params["projections"]
        directions = evaluation.rng.standard_normal((samples.shape[1], projections))
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        value = sliced_wasserstein(samples, test, self.p, directions)
        if value == math.inf:
            return Measured(value, f"|projected differences|^{self.p} overflow float64: the points are too far apart")
        return Measured(value, f"{projections} random projections")


class SlicedW1(_SlicedWasserstein):
    """Sliced Wasserstein-1 distance (Bonneel et al. 2015): mean over random directions of the 1-D W1 of the
    projections, all points, directions from the metric's random stream. Smaller than W1 (a projection
    shortens distances), so not comparable with it."""

    name, p = "sliced-w1", 1


class SlicedW2(_SlicedWasserstein):
    """Sliced Wasserstein-2 distance: (mean over random directions of W2^2 of the projections)^1/2, all points,
    directions from the metric's random stream. Smaller than W2, so not comparable with it."""

    name, p = "sliced-w2", 2


# ---------------------------------------------------------------- energy distance


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) between the empirical measures (V-statistics: 0 for equal sets).

    Homogeneous of degree 1/2: points beyond ``HUGE`` are rescaled first."""
    require_points("the energy distance", 1, x, y)
    c = rescaling(x, y)  # huge points: their squared distances and distance sums would overflow
    if c != 1:
        return math.sqrt(c) * energy_distance(x / c, y / c)
    n, m = len(x), len(y)
    value = 2 * distance_sum(x, y) / (n * m) - distance_sum(x) / n**2 - distance_sum(y) / m**2
    return math.sqrt(max(value, 0.0))


class Energy(Metric):
    """Energy distance between samples and test set (Székely & Rizzo); 0 only for equal distributions."""

    name = "energy"
    higher_is_better = False
    optimum = 0.0

    def compute(self, evaluation: Evaluation) -> float:
        return energy_distance(*samples_and_test(evaluation))
