"""Distances from the model's density to the dataset's true one: total variation and Kullback-Leibler.

In 1-2 dimensions both densities are evaluated on a grid of cell centres (exact up to the grid's
resolution and box); above, the distance is a Monte Carlo mean over the real test points, which are
draws of the true distribution. Needs a model with ``log_prob`` and a dataset with a density.
"""

from __future__ import annotations

import math

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param
from plugins.metrics.maths import digest, flatten, memo, samples_and_test


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
        samples, test = samples_and_test(evaluation)
        d = test.shape[1]
        per_axis = round(self.params["grid_points"] ** (1.0 / d))
        both = np.concatenate([samples, test])
        lo, hi = both.min(axis=0), both.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        lo, hi = lo - self.params["pad"] * span, hi + self.params["pad"] * span

        def evaluate() -> tuple[np.ndarray, np.ndarray, float]:
            points, cell = _grid(lo, hi, per_axis)
            return evaluation.dataset.log_density(points), evaluation.model.log_prob(points), cell

        # Everything the grid's values depend on: model, dataset, box (so pad) and resolution
        # (samples and test also tell generations apart, whose models may reuse an id.)
        grid = (digest(lo), digest(hi), per_axis)
        key = ("grid", digest(samples), digest(test), id(evaluation.model), id(evaluation.dataset), grid)
        log_p, log_q, cell = memo(key, evaluate)
        mass = float(np.sum(np.exp(log_p)) * cell)
        box = " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi, strict=True))
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
