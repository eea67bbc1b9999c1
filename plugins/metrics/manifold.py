"""Precision, recall, density and coverage: fidelity and diversity from k-nearest-neighbour balls.

Collapse shows up as lost diversity (recall, coverage) long before fidelity (precision) moves, so
both kinds are here. ``prdc`` takes plain arrays: given an ``extractor``, the metrics apply it to
features of the samples (images) instead of the samples themselves.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param
from plugins.metrics.maths import digest, distance_batches, memo, samples_and_test


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
    A point repeated more than k times has a ball of radius 0, inside which nothing lies: samples equal to a
    test set of such points score 0. The counts of these empty balls come with the values (``empty_real_balls``,
    ``empty_sample_balls``).
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
            "empty_real_balls": int(np.sum(real_radii == 0)),
            "empty_sample_balls": int(np.sum(fake_radii == 0)),
        }

    return memo(("prdc", digest(real), digest(fake), k), compute)


class _PRDC(Metric):
    """Base of the four k-nearest-neighbour manifold metrics, on samples or on their features."""

    higher_is_better: ClassVar[bool | None] = True
    optimum = 1.0
    parameters = {
        "k": Param(5, int, "nearest neighbours that set each ball's radius", low=1),
        "extractor": Param(
            None,
            str,
            "compare features of this extractor (e.g. inception, domain for images) instead of the samples themselves",
            optional=True,
            registered="feature-extractor",
        ),
    }
    #: Key of ``prdc``'s result.
    key: str

    def compute(self, evaluation: Evaluation) -> Measured:
        k, extractor = self.params["k"], self.params["extractor"]
        if extractor is None:
            samples, test = samples_and_test(evaluation)
            return self._measured(prdc(test, samples, k), len(test), len(samples), f"k={k}")
        if evaluation.features is None:
            raise ValueError(
                f"metric {self.name!r} with an extractor needs feature extraction, which this evaluation lacks"
            )
        fake, real = evaluation.features(extractor, "samples"), evaluation.features(extractor, "test")
        return self._measured(prdc(real, fake, k), len(real), len(fake), f"{extractor} features; k={k}")

    def _measured(self, values: dict[str, float], real: int, samples: int, detail: str) -> Measured:
        """The value, its detail saying how many balls are empty (points repeated more than k times) when any is."""
        empty = [
            f"{values[key]:.0f} of {n} {what} balls"
            for key, n, what in (("empty_real_balls", real, "test"), ("empty_sample_balls", samples, "sample"))
            if values[key]
        ]
        if empty:
            detail += f"; {' and '.join(empty)} have radius 0 (a point repeated more than k times): nothing is inside"
        return Measured(values[self.key], detail)


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
