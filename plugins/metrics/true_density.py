"""Distances from the model's density to the dataset's true one: total variation and Kullback-Leibler.

In 1-2 dimensions both densities are evaluated on a grid of cell centres over the region where the
true density p lives: the box the dataset gives as holding all but 1e-9 of its mass
(``Dataset.density_box``) or, for a dataset that cannot say, the test set's extent widened by
``pad``. The model's samples never shape the box: a far sample would stretch it and coarsen the
grid. Neither distance needs more: KL(p || q) integrates p log(p / q), and TV = 1/2 ∫ |p - q| equals
∫ (p - q)_+ for any model density q, its mass outside the box included (the parts of p - q above and
below zero have equal mass). A grid whose sum of p is not 1 within 1e-3 (a box that misses part of
p, or cells too coarse for it) is refused. The detail gives the box, the true and the model's mass
on the grid (and the share of the model's samples inside), and how far the value on a grid with
half as many cells per axis lies: about three times the resolution error where that shrinks as the
cell width squared. Above 2 dimensions the distance is a Monte Carlo mean over
the real test points, which are draws of p. Needs a model with ``log_prob`` and a dataset with a
density.

Version 2 of both: version 1's box spanned the model's samples too, widened by ``pad``, so far
samples coarsened the grid, tv (1/2 the sum of |p - q| on the box) left out the model's mass outside
the box (one sample at 1e6 in 1-D gave TV = 0), and its default box missed enough of p to bias KL
low for models narrower than the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param
from plugins.metrics.maths import digest, flatten, memo, samples_and_test

#: The true mass a dataset's box may leave out: far below any grid's resolution error.
BOX_OUTSIDE = 1e-9
#: A grid whose sum of the true density differs from 1 by more is refused.
MASS_TOLERANCE = 1e-3


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
    needs = frozenset({"samples", "points", "log_prob", "density"})
    parameters = {
        "grid_points": Param(16384, int, "grid points in 1-2 dimensions (per axis: its square root in 2-D)", low=16),
        "pad": Param(
            0.25, float, "for a dataset without a density box: the test set's extent widened by this per side", low=0
        ),
    }
    #: 2: the grid's box holds the true density's mass, whatever the samples (see the module's docstring).
    version = "2"

    def _box(self, evaluation: Evaluation, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """The grid's corners and where they come from: the dataset's box, else the test set's widened extent."""
        dataset, d = evaluation.dataset, test.shape[1]
        known = dataset.density_box(BOX_OUTSIDE)
        if known is None:
            lo, hi = test.min(axis=0), test.max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
            pad = self.params["pad"]
            return lo - pad * span, hi + pad * span, f"the test set's extent widened by pad {pad:g}"
        lo, hi = (np.asarray(corner, dtype=np.float64) for corner in known)
        if lo.shape != (d,) or hi.shape != (d,) or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError(
                f"dataset {dataset.name!r}: density_box must return two finite corners of shape ({d},), "
                f"got {lo.shape} and {hi.shape}"
            )
        if not np.all(lo < hi):
            raise ValueError(f"dataset {dataset.name!r}: density_box's lower corner {lo} is not below {hi}")
        return lo, hi, f"the dataset's box, leaving out at most {BOX_OUTSIDE:g} of the true mass"

    def _on_grid(self, evaluation: Evaluation) -> Measured:
        """The distance as a midpoint sum over the grid, with the box, masses and resolution in the detail."""
        samples, test = samples_and_test(evaluation)
        d = test.shape[1]
        per_axis = round(self.params["grid_points"] ** (1.0 / d))
        lo, hi, source = self._box(evaluation, test)

        def evaluate(cells: int) -> Callable[[], tuple[np.ndarray, np.ndarray, float]]:
            def densities() -> tuple[np.ndarray, np.ndarray, float]:
                points, cell = _grid(lo, hi, cells)
                return evaluation.dataset.log_density(points), evaluation.model.log_prob(points), cell

            return densities

        def on(cells: int) -> tuple[np.ndarray, np.ndarray, float]:
            # Everything the grid's values depend on: model, dataset, box (so pad) and resolution
            # (samples and test also tell generations apart, whose models may reuse an id.)
            grid = (digest(lo), digest(hi), cells)
            key = ("grid", digest(samples), digest(test), id(evaluation.model), id(evaluation.dataset), grid)
            return memo(key, evaluate(cells))

        log_p, log_q, cell = on(per_axis)
        box = " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi, strict=True))
        shape = "x".join([str(per_axis)] * d)
        mass = float(np.sum(np.exp(log_p)) * cell)
        if not abs(1.0 - mass) <= MASS_TOLERANCE:
            raise ValueError(
                f"metric {self.name!r}: the grid {shape} on {box} ({source}) sums the true density to {mass:.6f}, "
                f"not 1 within {MASS_TOLERANCE:g}: the box misses part of it or the cells are too coarse "
                "(raise pad or grid_points, or give the dataset a density_box)"
            )
        value = float(np.sum(self.integrand(log_p, log_q)) * cell)
        # The same sum on a grid with half as many cells per axis: how far the grid is from resolving p and q.
        coarse_p, coarse_q, coarse_cell = on(per_axis // 2)
        coarse = float(np.sum(self.integrand(coarse_p, coarse_q)) * coarse_cell)
        model_mass = float(np.sum(np.exp(log_q)) * cell)
        inside = float(np.mean(np.all((samples >= lo) & (samples <= hi), axis=1))) if len(samples) else math.nan
        how = (
            f"grid {shape} on {box} ({source}): true mass on the grid {mass:.6f}, "
            f"model mass {model_mass:.4f} (its samples: {inside:.4f} inside), "
            f"half-resolution grid differs by {abs(value - coarse):.2g}"
        )
        return Measured(value, how)

    def _monte_carlo(self, evaluation: Evaluation) -> Measured:
        """The mean of the per-point terms over the real test points, which are draws of the true distribution."""
        test = flatten(evaluation.test)
        terms = self.terms(evaluation.dataset.log_density(test), evaluation.model.log_prob(test))
        se = float(np.std(terms, ddof=1) / math.sqrt(len(terms))) if len(terms) > 1 else math.nan
        return Measured(
            float(np.mean(terms)), f"Monte Carlo over {len(terms)} real test points, standard error {se:.3g}"
        )

    def compute(self, evaluation: Evaluation) -> Measured:
        if flatten(evaluation.test).shape[1] <= 2:
            return self._on_grid(evaluation)
        return self._monte_carlo(evaluation)

    def integrand(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        """The function whose integral over the region of the true density is the distance."""
        raise NotImplementedError

    def terms(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        """Per-point terms whose mean under the true distribution is the distance."""
        raise NotImplementedError


class TV(_DensityDistance):
    """Total variation distance between the model's density and the true one (Fu et al. 2024)."""

    name = "tv"

    def integrand(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        # (p - q)_+ integrates to TV whatever q's mass outside the box (the module's docstring).
        return np.maximum(np.exp(log_p) - np.exp(log_q), 0.0)

    def terms(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        # TV = E_p[(1 - q/p)_+], since the positive and negative parts of p - q have equal mass.
        return np.maximum(1.0 - np.exp(log_q - log_p), 0.0)


class KL(_DensityDistance):
    """Kullback-Leibler divergence KL(true || model) in nats: the excess test log-loss of the model."""

    name = "kl"

    def integrand(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        p = np.exp(log_p)
        with np.errstate(invalid="ignore"):
            return np.where(p > 0, p * (log_p - log_q), 0.0)

    def terms(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        return log_p - log_q
