"""Likelihood, moments and spread: NLL, Gaussian-fit (Fréchet) distance, mean distance, variance, log-det, diversity.

Collapse drives the spread metrics (variance, log-det, mean pairwise distance) to their floor long
before the fit of the mean moves. Samples of any shape are compared as flat vectors.
"""

from __future__ import annotations

import math

import numpy as np

from benchmark import Evaluation, Measured, Metric
from plugins.metrics.maths import distance_sum, flatten, frechet_distance


def _total_variance(x: np.ndarray) -> float:
    """Trace of the sample covariance (ddof=1)."""
    return float(np.sum(np.var(flatten(x), axis=0, ddof=1)))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance between distinct samples."""
    if len(x) < 2:
        raise ValueError(f"mean pairwise distance needs at least 2 points, got {len(x)}")
    return distance_sum(x) / (len(x) * (len(x) - 1))


class NLL(Metric):
    """Negative log-likelihood of the held-out test set under the model (nats per point)."""

    name = "nll"
    needs = frozenset({"log_prob"})
    higher_is_better = False

    def compute(self, evaluation: Evaluation) -> float:
        return float(-np.mean(evaluation.model.log_prob(evaluation.test)))


class Frechet(Metric):
    """Fréchet distance between Gaussian fits of samples and test set: |m1-m2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)."""

    name = "frechet"
    higher_is_better = False
    optimum = 0.0

    def compute(self, evaluation: Evaluation) -> float:
        return frechet_distance(flatten(evaluation.samples), flatten(evaluation.test))


class Variance(Metric):
    """Total variance of the samples: trace of their covariance (ddof=1). Collapse drives it to zero."""

    name = "variance"
    higher_is_better = None

    def compute(self, evaluation: Evaluation) -> float:
        return _total_variance(evaluation.samples)


class VarianceRatio(Metric):
    """Total variance of the samples over that of the test set: 1 is right, below 1 is lost diversity."""

    name = "variance-ratio"
    higher_is_better = None
    optimum = 1.0

    def compute(self, evaluation: Evaluation) -> float:
        return _total_variance(evaluation.samples) / _total_variance(evaluation.test)


class MeanDistance(Metric):
    """Euclidean distance between the mean of the samples and the mean of the test set."""

    name = "mean-distance"
    higher_is_better = False
    optimum = 0.0

    def compute(self, evaluation: Evaluation) -> float:
        return float(np.linalg.norm(flatten(evaluation.samples).mean(axis=0) - flatten(evaluation.test).mean(axis=0)))


class PairwiseDistance(Metric):
    """Mean distance between two distinct samples: diversity, which collapse drives to zero (higher is better)."""

    name = "pairwise-distance"
    higher_is_better = True

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
