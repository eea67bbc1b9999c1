"""Metrics computed from samples: fidelity, diversity, optimal transport, modes, and distances to the true density.

Collapse shows up as lost diversity (recall, coverage, spread) long before fidelity (precision)
moves, so both kinds are here. Samples of any shape are compared as flat vectors. Distances are
computed in row batches of bounded memory, so feature spaces with thousands of points and
dimensions fit; work that several metrics share (the k-nearest-neighbour pass of precision,
recall, density and coverage; distance sums of energy and pairwise distance; the real test set's
neighbour radii across generations) is memoised on the arrays' contents and done once.

The functions (``prdc``, ``rbf_mmd2``, ``wasserstein``, ...) take plain arrays: the image metrics
apply them to features.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param, hookimpl
from plugins.metrics.basic import flatten

T = TypeVar("T")

#: Memory per batch of distances (MB), as scikit-learn's ``working_memory``.
WORKING_MEMORY_MB = 64

# ---------------------------------------------------------------- shared work, computed once


_MEMO: OrderedDict[tuple, Any] = OrderedDict()
_MEMO_SIZE = 16


def digest(x: np.ndarray) -> tuple:
    """A content key for an array (metrics of one generation see the same arrays; later ones do not)."""
    x = np.ascontiguousarray(x)
    return (x.shape, x.dtype.str, hashlib.blake2b(x.view(np.uint8).ravel(), digest_size=16).hexdigest())


def memo(key: tuple, compute: Callable[[], T]) -> T:
    """``compute()`` once per key among the last few keys: several metrics share one computation."""
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    value = compute()
    _MEMO[key] = value
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return value


#: Up to this dimension distances are summed coordinate by coordinate (exact zeros for equal points);
#: above it, through -2 x.y + |x|^2 + |y|^2 as scikit-learn does (one matrix product).
DIRECT_DIMENSIONS = 8


def squared_distance_batches(x: np.ndarray, y: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Squared Euclidean distances of rows of ``x`` to rows of ``y`` (or of ``x``, with an exact zero diagonal),
    as (first row, block), each block about ``WORKING_MEMORY_MB`` large."""
    same = y is None
    y = x if y is None else y
    rows = max(1, WORKING_MEMORY_MB * 2**20 // (8 * max(len(y), 1)))
    direct = x.shape[1] <= DIRECT_DIMENSIONS
    if not direct:
        yy = np.einsum("ij,ij->i", y, y)
        xx = yy if same else np.einsum("ij,ij->i", x, x)
    for start in range(0, len(x), rows):
        part = x[start : start + rows]
        if direct:
            block = np.zeros((len(part), len(y)))
            for k in range(x.shape[1]):
                diff = part[:, k, None] - y[None, :, k]
                block += diff * diff
        else:
            block = part @ y.T
            block *= -2
            block += xx[start : start + rows, None]
            block += yy[None, :]
            np.maximum(block, 0.0, out=block)
        if same:
            block[np.arange(len(block)), np.arange(start, start + len(block))] = 0.0
        yield start, block


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The whole matrix of squared distances (for problems that need it at once, such as exact transport)."""
    return np.concatenate([block for _, block in squared_distance_batches(x, y)])


def distance_batches(x: np.ndarray, y: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Euclidean distances, batched as ``squared_distance_batches``."""
    for start, block in squared_distance_batches(x, y):
        yield start, np.sqrt(block, out=block)


def distance_sum(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """Sum of the Euclidean distances over all pairs (x_i, y_j), or (x_i, x_j); memoised (metrics share them)."""

    def compute() -> float:
        return float(sum(np.sum(block) for _, block in distance_batches(x, y)))

    return memo(("distance-sum", digest(x), None if y is None else digest(y)), compute)


def _pair(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """(samples, real test set) as flat float vectors."""
    return flatten(evaluation.samples), flatten(evaluation.test)


# ---------------------------------------------------------------- precision, recall, density, coverage


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the (k+1)-th smallest, counting itself)."""
    if not 1 <= k < len(x):
        raise ValueError(f"k = {k} nearest neighbours needs at least {k + 1} points, got {len(x)}")
    radii = np.empty(len(x))
    for start, block in distance_batches(x):
        radii[start : start + len(block)] = np.partition(block, k, axis=1)[:, k]
    return radii


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    k-nearest-neighbour balls around real points estimate the real manifold (and around fake points
    the fake one), with the conventions of the ``prdc`` package: strict inequalities, radius = distance
    to the k-th nearest other point. Memoised on the arrays' contents, so the four metrics share one pass.
    """

    def compute() -> dict[str, float]:
        real_radii = memo(("knn", digest(real), k), lambda: knn_radii(real, k))
        fake_radii = knn_radii(fake, k)
        in_real_ball = np.zeros(len(fake), dtype=bool)
        real_balls_hit = np.zeros(len(fake))
        recalled = np.zeros(len(real), dtype=bool)
        covered = np.zeros(len(real), dtype=bool)
        for start, block in distance_batches(real, fake):  # rows: real points, columns: fake points
            radii = real_radii[start : start + len(block), None]
            inside = block < radii
            in_real_ball |= inside.any(axis=0)
            real_balls_hit += inside.sum(axis=0)
            recalled[start : start + len(block)] = (block < fake_radii[None]).any(axis=1)
            covered[start : start + len(block)] = block.min(axis=1) < radii[:, 0]
        return {
            "precision": float(in_real_ball.mean()),
            "recall": float(recalled.mean()),
            "density": float(real_balls_hit.mean() / k),
            "coverage": float(covered.mean()),
        }

    return memo(("prdc", digest(real), digest(fake), k), compute)


class _PRDC(Metric):
    """Base of the four k-nearest-neighbour manifold metrics, on samples or on their features."""

    higher_is_better = True
    optimum = 1.0
    parameters = {
        "k": Param(5, int, "nearest neighbours that set each ball's radius", low=1),
        "extractor": Param(
            None,
            str,
            "compare features of this extractor (e.g. inception, domain for images) instead of the samples themselves",
            optional=True,
        ),
    }
    #: Key of ``prdc``'s result.
    key: str

    def compute(self, evaluation: Evaluation) -> Measured:
        k, extractor = self.params["k"], self.params["extractor"]
        if extractor is None:
            samples, test = _pair(evaluation)
            return Measured(prdc(test, samples, k)[self.key], f"k={k}")
        if evaluation.features is None:
            raise ValueError(
                f"metric {self.name!r} with an extractor needs feature extraction, which this evaluation lacks"
            )
        fake, real = evaluation.features(extractor, "samples"), evaluation.features(extractor, "test")
        return Measured(prdc(real, fake, k)[self.key], f"{extractor} features; k={k}")


class Precision(_PRDC):
    """Fraction of samples inside the real data's k-NN manifold (fidelity; Kynkäänniemi et al. 2019)."""

    name, key = "precision", "precision"


class Recall(_PRDC):
    """Fraction of real test points inside the samples' k-NN manifold (diversity; Kynkäänniemi et al. 2019)."""

    name, key = "recall", "recall"


class Density(_PRDC):
    """Mean number of real k-NN balls containing a sample, over k (Naeem et al. 2020): 1 on average when right."""

    name, key = "density", "density"
    higher_is_better = None


class Coverage(_PRDC):
    """Fraction of real points whose k-NN ball contains a sample (Naeem et al. 2020)."""

    name, key = "coverage", "coverage"


# ---------------------------------------------------------------- MMD


def median_bandwidth(x: np.ndarray, y: np.ndarray, max_points: int = 1000) -> float:
    """Median pairwise distance of the pooled points (the first max_points/2 of each: they are i.i.d.)."""
    from scipy.spatial.distance import pdist

    half = max(max_points // 2, 1)
    distances = pdist(np.concatenate([x[:half], y[:half]]))
    positive = distances[distances > 0]
    if len(positive) == 0:
        raise ValueError("median heuristic: all points coincide, set the MMD bandwidth explicitly")
    return float(np.median(positive))


def rbf_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with k(a, b) = exp(-|a - b|^2 / (2 h^2)); may dip below 0."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"unbiased MMD needs at least 2 points per side, got {n} and {m}")

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
        samples, test = _pair(evaluation)
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
    """Sliced W_p: (mean over unit ``directions`` (d, L) of W_p^p of the projections)^(1/p)."""
    ot = _pot()

    a, b = x @ directions, y @ directions
    if len(a) == len(b):  # equal uniform weights: the 1-D optimal plan pairs sorted points
        per_direction = np.mean(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0)) ** p, axis=0)
    else:
        per_direction = ot.wasserstein_1d(a, b, p=p)
    return float(np.mean(per_direction) ** (1.0 / p))


def wasserstein(
    x: np.ndarray, y: np.ndarray, p: int, max_exact: int, projections: int, rng: np.random.Generator
) -> Measured:
    """W_p between the empirical measures: exact in 1-D (sorting) and up to ``max_exact`` points per side
    (POT's network simplex), sliced over ``projections`` random directions beyond."""
    ot = _pot()

    if x.shape[1] == 1:
        value = float(ot.wasserstein_1d(x[:, 0], y[:, 0], p=p)) ** (1.0 / p)
        return Measured(value, "exact (1-D)")
    if max(len(x), len(y)) <= max_exact:
        cost = squared_distances(x, y)
        if p == 1:
            cost = np.sqrt(cost, out=cost)
        value = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10_000_000)
        return Measured(float(max(value, 0.0)) ** (1.0 / p), "exact")
    directions = rng.standard_normal((x.shape[1], projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    return Measured(sliced_wasserstein(x, y, p, directions), f"sliced, {projections} projections")


class _Wasserstein(Metric):
    higher_is_better = False
    optimum = 0.0
    requires = ("ot",)
    install_hint = "pip install pot"
    parameters = {
        "max_exact": Param(1000, int, "largest sample size (per side) solved exactly; larger ones are sliced", low=1),
        "projections": Param(200, int, "random directions of the sliced estimate", low=1),
    }
    p: int

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = _pair(evaluation)
        return wasserstein(samples, test, self.p, self.params["max_exact"], self.params["projections"], evaluation.rng)


class W1(_Wasserstein):
    """Wasserstein-1 distance between samples and test set (POT): exact up to max_exact points, sliced beyond."""

    name, p = "w1", 1


class W2(_Wasserstein):
    """Wasserstein-2 distance between samples and test set (POT): exact up to max_exact points, sliced beyond."""

    name, p = "w2", 2
    #: 2: exact in 1-D at any size; own sliced projections (from the metric's stream); max_exact 1000, 200 projections.
    version = "2"


# ---------------------------------------------------------------- Fréchet distance


def _covariance_factor(x: np.ndarray) -> np.ndarray:
    """A matrix L with L @ L.T equal to the covariance of ``x`` (ddof=1), with min(n, d) columns."""
    n, d = x.shape
    centred = (x - x.mean(axis=0)) / math.sqrt(n - 1)
    if n <= d:
        return centred.T
    try:
        return np.linalg.cholesky(centred.T @ centred)
    except np.linalg.LinAlgError:  # singular: collapsed samples
        w, v = np.linalg.eigh(centred.T @ centred)
        return v * np.sqrt(np.clip(w, 0.0, None))


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """|m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) between Gaussian fits (ddof=1) of ``x`` and ``y``.

    With S1 = L1 L1^T and S2 = L2 L2^T, S1 S2 has the eigenvalues of (L1^T L2)(L1^T L2)^T, so
    tr (S1 S2)^1/2 is the sum of the singular values of L1^T L2: exact, and with fewer points than
    dimensions (FID on a few hundred samples) a small matrix instead of the square root of a
    2048 x 2048 one (minutes of CPU with scipy's sqrtm).
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 points per side, got {len(x)} and {len(y)}")
    f1, f2 = _covariance_factor(x), _covariance_factor(y)
    cross = np.linalg.svd(f1.T @ f2, compute_uv=False).sum()
    value = np.sum((x.mean(axis=0) - y.mean(axis=0)) ** 2) + np.sum(f1**2) + np.sum(f2**2) - 2 * cross
    return float(max(value, 0.0))


# ---------------------------------------------------------------- energy distance and diversity


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) between the empirical measures (V-statistics: 0 for equal sets)."""
    n, m = len(x), len(y)
    value = 2 * distance_sum(x, y) / (n * m) - distance_sum(x) / n**2 - distance_sum(y) / m**2
    return math.sqrt(max(value, 0.0))


class Energy(Metric):
    """Energy distance between samples and test set (Székely & Rizzo); 0 only for equal distributions."""

    name = "energy"
    higher_is_better = False
    optimum = 0.0

    def compute(self, evaluation: Evaluation) -> float:
        return energy_distance(*_pair(evaluation))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance between distinct samples."""
    if len(x) < 2:
        raise ValueError(f"mean pairwise distance needs at least 2 points, got {len(x)}")
    return distance_sum(x) / (len(x) * (len(x) - 1))


class PairwiseDistance(Metric):
    """Mean distance between two distinct samples: diversity, which collapse drives to zero."""

    name = "pairwise-distance"
    higher_is_better = None

    def compute(self, evaluation: Evaluation) -> float:
        return mean_pairwise_distance(flatten(evaluation.samples))


class LogDet(Metric):
    """Log-determinant of the samples' covariance (ddof=1): volume of the spread; -inf once it is singular."""

    name = "logdet"
    higher_is_better = None

    def compute(self, evaluation: Evaluation) -> Measured:
        x = flatten(evaluation.samples)
        sign, value = np.linalg.slogdet(np.atleast_2d(np.cov(x, rowvar=False)))
        if sign <= 0:
            return Measured(-math.inf, f"singular covariance ({len(x)} samples in {x.shape[1]} dimensions)")
        return Measured(float(value), "")


# ---------------------------------------------------------------- modes of mixture datasets


def _nearest_mode(x: np.ndarray, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sq = np.sum((x[:, None, :] - modes[None]) ** 2, axis=2)
    which = np.argmin(sq, axis=1)
    return which, np.sqrt(sq[np.arange(len(x)), which])


def _modes_of(evaluation: Evaluation, metric: str) -> np.ndarray:
    modes = evaluation.dataset.modes()
    if modes is None:
        raise ValueError(f"metric {metric!r} needs a dataset with modes; {evaluation.dataset.name!r} has none")
    return np.asarray(modes, dtype=np.float64).reshape(len(modes), -1)


class _ModeMetric(Metric):
    higher_is_better = True
    optimum = 1.0
    needs = frozenset({"samples", "modes"})

    def _radius(self, test: np.ndarray, modes: np.ndarray) -> tuple[float, str]:
        if self.params["radius"] is not None:
            return self.params["radius"], f"radius {self.params['radius']:.4g}"
        radius = float(np.max(_nearest_mode(test, modes)[1]))
        return radius, f"radius {radius:.4g} (farthest real test point from its mode)"


_RADIUS = Param(
    None,
    float,
    "a sample within this distance of its nearest mode is high quality "
    "(default: the largest distance of a real test point to its nearest mode)",
    above=0,
    optional=True,
)


class HighQuality(_ModeMetric):
    """Fraction of samples within the mode radius of their nearest mode (high-quality samples)."""

    name = "high-quality"
    parameters = {"radius": _RADIUS}

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = _pair(evaluation)
        modes = _modes_of(evaluation, self.name)
        radius, how = self._radius(test, modes)
        return Measured(float(np.mean(_nearest_mode(samples, modes)[1] <= radius)), how)


class ModeCoverage(_ModeMetric):
    """Fraction of modes that receive at least min_share of their fair share of high-quality samples."""

    name = "mode-coverage"
    parameters = {
        "radius": _RADIUS,
        "min_share": Param(
            0.25,
            float,
            "a mode is covered with at least this fraction of the high-quality samples "
            "the real data's proportions give it",
            above=0,
            high=1,
        ),
    }

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = _pair(evaluation)
        modes = _modes_of(evaluation, self.name)
        radius, how = self._radius(test, modes)
        which, distance = _nearest_mode(samples, modes)
        counts = np.bincount(which[distance <= radius], minlength=len(modes))
        real_share = np.bincount(_nearest_mode(test, modes)[0], minlength=len(modes)) / len(test)
        needed = np.maximum(self.params["min_share"] * real_share * len(samples), 1.0)
        covered = int(np.sum(counts >= needed))
        return Measured(covered / len(modes), f"{covered} of {len(modes)} modes; {how}")


# ---------------------------------------------------------------- distances to the true density


def _grid(lo: np.ndarray, hi: np.ndarray, per_axis: int) -> tuple[np.ndarray, float]:
    """Cell centres of a regular grid on the box [lo, hi] and the volume of one cell."""
    step = (hi - lo) / per_axis
    axes = [lo[i] + (np.arange(per_axis) + 0.5) * step[i] for i in range(len(lo))]
    points = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
    return points, float(np.prod(step))


class _DensityDistance(Metric):
    """Compares the model's density with the dataset's true one: on a grid in 1-2 dimensions, else by Monte Carlo."""

    higher_is_better = False
    optimum = 0.0
    needs = frozenset({"samples", "log_prob", "density"})
    parameters = {
        "grid_points": Param(16384, int, "grid points in 1-2 dimensions (per axis: its square root in 2-D)", low=16),
        "pad": Param(0.25, float, "the grid box spans samples and test set, widened by this fraction per side", low=0),
    }

    def _on_grid(self, evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray, float, str]:
        """log p (true) and log q (model) at the grid's cell centres, the cell volume, and a description."""
        samples, test = _pair(evaluation)
        d = test.shape[1]
        per_axis = int(round(self.params["grid_points"] ** (1.0 / d)))
        both = np.concatenate([samples, test])
        lo, hi = both.min(axis=0), both.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        lo, hi = lo - self.params["pad"] * span, hi + self.params["pad"] * span

        def evaluate() -> tuple[np.ndarray, np.ndarray, float]:
            points, cell = _grid(lo, hi, per_axis)
            return evaluation.dataset.log_density(points), evaluation.model.log_prob(points), cell

        key = ("grid", digest(samples), digest(test), id(evaluation.model), id(evaluation.dataset), per_axis)
        log_p, log_q, cell = memo(key, evaluate)
        mass = float(np.sum(np.exp(log_p)) * cell)
        box = " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi))
        shape = "x".join([str(per_axis)] * d)
        return log_p, log_q, cell, f"grid {shape} on {box}, true mass on the grid {mass:.4f}"

    def _monte_carlo(self, evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
        """log p and log q at the real test points, which are draws of the true distribution."""
        test = flatten(evaluation.test)
        return evaluation.dataset.log_density(test), evaluation.model.log_prob(test)

    def compute(self, evaluation: Evaluation) -> Measured:
        if flatten(evaluation.test).shape[1] <= 2:
            log_p, log_q, cell, how = self._on_grid(evaluation)
            return Measured(self.on_grid(log_p, log_q, cell), how)
        log_p, log_q = self._monte_carlo(evaluation)
        terms = self.terms(log_p, log_q)
        se = float(np.std(terms, ddof=1) / math.sqrt(len(terms))) if len(terms) > 1 else math.nan
        how = f"Monte Carlo over {len(terms)} real test points, standard error {se:.3g}"
        return Measured(float(np.mean(terms)), how)

    def on_grid(self, log_p: np.ndarray, log_q: np.ndarray, cell: float) -> float:
        raise NotImplementedError

    def terms(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        """Per-point terms whose mean under the true distribution is the distance."""
        raise NotImplementedError


class TV(_DensityDistance):
    """Total variation distance between the model's density and the true one (Fu et al. 2024)."""

    name = "tv"

    def on_grid(self, log_p: np.ndarray, log_q: np.ndarray, cell: float) -> float:
        return float(0.5 * np.sum(np.abs(np.exp(log_p) - np.exp(log_q))) * cell)

    def terms(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        # TV = E_p[(1 - q/p)_+], since the positive and negative parts of p - q have equal mass.
        return np.maximum(1.0 - np.exp(log_q - log_p), 0.0)


class KL(_DensityDistance):
    """Kullback-Leibler divergence KL(true || model) in nats: the excess test log-loss of the model."""

    name = "kl"

    def on_grid(self, log_p: np.ndarray, log_q: np.ndarray, cell: float) -> float:
        p = np.exp(log_p)
        with np.errstate(invalid="ignore"):
            integrand = np.where(p > 0, p * (log_p - log_q), 0.0)
        return float(np.sum(integrand) * cell)

    def terms(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        return log_p - log_q


METRICS = (
    Precision,
    Recall,
    Density,
    Coverage,
    MMD,
    W1,
    W2,
    Energy,
    PairwiseDistance,
    LogDet,
    HighQuality,
    ModeCoverage,
    TV,
    KL,
)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
