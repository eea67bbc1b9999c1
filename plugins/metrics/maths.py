"""Numerical helpers the metric modules share: flat samples, memoised work, batched distances, Fréchet distance.

Samples of any shape are compared as flat vectors. Distances are computed in row batches of
bounded memory, so feature spaces with thousands of points and dimensions fit; work that several
metrics share (the k-nearest-neighbour pass of precision, recall, density and coverage; distance
sums of energy and pairwise distance; the real test set's neighbour radii across generations) is
memoised on the arrays' contents and done once.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from benchmark import Evaluation

T = TypeVar("T")

#: Memory per batch of distances (MB), as scikit-learn's ``working_memory``.
WORKING_MEMORY_MB = 64

#: Up to this dimension distances are summed coordinate by coordinate (exact zeros for equal points);
#: above it, through -2 x.y + |x|^2 + |y|^2 as scikit-learn does (one matrix product).
DIRECT_DIMENSIONS = 8
#: Above this ratio of the points' typical squared norm to their typical squared distance to their mean (both
#: medians), -2 x.y + |x|^2 + |y|^2 cancels away digits the distances need: 10-D points 1e8 from the origin with
#: a spread of 1 gave exact zeros (W2 = 0). Such points are first moved to one among them
#: (``_centred_when_far``), which leaves their distances as they are; below the ratio nothing changes, so no
#: result computed before changes either.
CENTRING_RATIO = 1e6


def flatten(x: np.ndarray) -> np.ndarray:
    """Samples of any shape as float64 rows: (n, ...) -> (n, prod(...))."""
    return x.reshape(len(x), -1).astype(np.float64, copy=False)


def samples_and_test(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """(samples, real test set) as flat float vectors."""
    return flatten(evaluation.samples), flatten(evaluation.test)


#: Points beyond this magnitude (2^500, about 3e150) are rescaled before distances are squared: 1e154^2 overflows.
HUGE = 2.0**500


def rescaling(*arrays: np.ndarray) -> float:
    """1, or a power of two c with every |value| / c below 1 when some value exceeds ``HUGE``.

    Distances of the rescaled points cannot overflow, and dividing by a power of two is exact, so a
    homogeneous quantity (a distance, a variance) computed on them and multiplied back by c (or c^2)
    is the number asked for, inf only when that number itself exceeds float64. Ordinary data is
    left alone, bit for bit."""
    top = max(float(np.max(np.abs(a), initial=0.0)) for a in arrays)
    if not (HUGE < top < math.inf):
        return 1.0
    return math.ldexp(1.0, math.frexp(top)[1])


def require_points(what: str, minimum: int, *sets: np.ndarray) -> None:
    """Raise ValueError when a set has fewer than ``minimum`` points.

    Every estimate that needs several points (a covariance, a pairwise mean) says so in one clear
    error instead of returning NaN from an empty or single-point average."""
    sizes = [len(x) for x in sets]
    if min(sizes) < minimum:
        per_side = " per side" if len(sets) > 1 else ""
        plural = "s" if minimum > 1 else ""
        raise ValueError(
            f"{what} needs at least {minimum} point{plural}{per_side}, got {' and '.join(map(str, sizes))}"
        )


# ---------------------------------------------------------------- shared work, computed once


_MEMO: OrderedDict[tuple, Any] = OrderedDict()
_MEMO_SIZE = 16


def digest(x: np.ndarray) -> tuple:
    """A content key for an array (metrics of one generation see the same arrays; later ones do not)."""
    x = np.ascontiguousarray(x)
    return (x.shape, x.dtype.str, hashlib.blake2b(x.view(np.uint8).ravel().data, digest_size=16).hexdigest())


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


def forget() -> None:
    """Drop every memoised result (tests use it to check that results do not depend on the memo)."""
    _MEMO.clear()


# ---------------------------------------------------------------- distances in batches


def squared_distance_batches(x: np.ndarray, y: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Squared Euclidean distances of rows of ``x`` to rows of ``y`` (or of ``x``, with an exact zero diagonal),
    as (first row, block), each block about ``WORKING_MEMORY_MB`` large."""
    same = y is None
    y = x if y is None else y
    rows = max(1, WORKING_MEMORY_MB * 2**20 // (8 * max(len(y), 1)))
    direct = x.shape[1] <= DIRECT_DIMENSIONS
    if not direct:
        x, y = _centred_when_far(x, y, same)
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


def _centred_when_far(x: np.ndarray, y: np.ndarray, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as they are, or both moved to a point among them when they lie so far from the origin, for
    their spread, that the expansion of the squared distances would lose them (``CENTRING_RATIO``).

    Typical squared norm against typical squared distance to the mean, both medians, so that one diverged point
    cannot hide the rest (a mean spread would). Squared distances to the mean come from the norms (no copy of the
    points); far out they cancel too, which only makes the test say "move", as it should. The points move to the
    one nearest their mean, which lies among the bulk of them, outliers or not.
    """
    sets = [x] if same else [x, y]
    count = sum(len(s) for s in sets)
    if not count:
        return x, y
    norms = [np.einsum("ij,ij->i", s, s) for s in sets]
    mean = sum(s.sum(axis=0) for s in sets) / count
    to_mean = [n - 2 * (s @ mean) + mean @ mean for s, n in zip(sets, norms, strict=True)]
    if float(np.median(np.concatenate(norms))) <= CENTRING_RATIO * float(np.median(np.concatenate(to_mean))):
        return x, y
    nearest = [int(np.argmin(d)) for d in to_mean]
    which = int(np.argmin([d[i] for d, i in zip(to_mean, nearest, strict=True)]))
    anchor = sets[which][nearest[which]].copy()
    x = x - anchor
    return x, x if same else y - anchor


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
    2048 x 2048 one (minutes of CPU with scipy's sqrtm). Points beyond ``HUGE`` are rescaled first
    (the distance is homogeneous of degree 2).
    """
    require_points("the Fréchet distance", 2, x, y)
    c = rescaling(x, y)
    if c != 1:
        return c * (c * frechet_distance(x / c, y / c))
    f1, f2 = _covariance_factor(x), _covariance_factor(y)
    cross = np.linalg.svd(f1.T @ f2, compute_uv=False).sum()
    value = np.sum((x.mean(axis=0) - y.mean(axis=0)) ** 2) + np.sum(f1**2) + np.sum(f2**2) - 2 * cross
    return float(max(value, 0.0))
