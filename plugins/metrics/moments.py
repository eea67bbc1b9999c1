"""Likelihood, moments and spread: NLL, Gaussian-fit (Fréchet) distance, mean distance, variance, log-det, diversity.

Collapse drives the spread metrics (variance, log-det, mean pairwise distance) to their floor long
before the fit of the mean moves. Samples of any shape are compared as flat vectors.
"""

from __future__ import annotations

import math

import numpy as np

from benchmark import Evaluation, Measured, Metric
from plugins.metrics.maths import distance_sum, flatten, frechet_distance, require_points, rescaling


def _total_variance(x: np.ndarray, what: str) -> float:
    """Trace of the sample covariance (ddof=1) of ``what``, which needs 2 points (1 gives no spread estimate)."""
    x = flatten(x)
    require_points(what, 2, x)
    return float(np.sum(np.var(x, axis=0, ddof=1)))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance between distinct samples (points beyond ``HUGE`` rescaled first)."""
    require_points("mean pairwise distance", 2, x)
    c = rescaling(x)
    return c * (distance_sum(x / c if c != 1 else x) / (len(x) * (len(x) - 1)))


def covariance_log_determinant(x: np.ndarray) -> tuple[float, int]:
    """(log det of the covariance (ddof=1) of the rows of ``x``, its rank): -inf when the rank is below d.

    The rank is numpy's ``matrix_rank`` of the centred data, whose singular values s_i give the
    covariance's eigenvalues s_i^2 / (n - 1): s_i counts when above s.max() * max(n, d) * eps, a
    tolerance relative to the spread, so rescaling the data never changes the verdict. It is at
    most n - 1 (centring removes one direction), so n <= d points are always singular, and points
    on a plane are singular however rounding perturbs them. A full rank gives sum(log s_i^2) -
    d log(n - 1), from the data rather than the covariance (whose entries square, and overflow, first).
    """
    n, d = x.shape
    require_points("the log-determinant of a covariance", 2, x)
    singular_values = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    tolerance = singular_values.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
    rank = min(int(np.sum(singular_values > tolerance)), n - 1)
    if rank < d:
        return -math.inf, rank
    return float(2 * np.sum(np.log(singular_values)) - d * math.log(n - 1)), rank


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
        return _total_variance(evaluation.samples, "the variance of the samples")


class VarianceRatio(Metric):
    """Total variance of the samples over that of the test set: 1 is right, below 1 is lost diversity.

    A test set without spread (all points equal) has no ratio: that is an error, not inf or NaN."""

    name = "variance-ratio"
    higher_is_better = None
    optimum = 1.0

    def compute(self, evaluation: Evaluation) -> float:
        samples, test = flatten(evaluation.samples), flatten(evaluation.test)
        # each side rescaled on its own (huge points' squares overflow, and a common scale could
        # underflow the other side's variance); the exact powers of two multiply back at the end
        cs, ct = rescaling(samples), rescaling(test)
        spread = _total_variance(samples / cs, "the variance of the samples")
        reference = _total_variance(test / ct, "the variance of the test set")
        if reference == 0:
            raise ValueError(f"variance-ratio: the {len(test)} test points all coincide (variance 0)")
        return spread / reference * (cs / ct) * (cs / ct) if spread else 0.0  # (inf, never OverflowError)


class MeanDistance(Metric):
    """Euclidean distance between the mean of the samples and the mean of the test set.

    Version 2: points beyond ~1e150 are rescaled first (version 1 overflowed to inf near 1e306)."""

    name = "mean-distance"
    higher_is_better = False
    optimum = 0.0
    version = "2"

    def compute(self, evaluation: Evaluation) -> float:
        samples, test = flatten(evaluation.samples), flatten(evaluation.test)
        require_points("the distance between means", 1, samples, test)
        c = rescaling(samples, test)  # sums of huge points would overflow
        return c * float(np.linalg.norm((samples / c).mean(axis=0) - (test / c).mean(axis=0)))


class PairwiseDistance(Metric):
    """Mean distance between two distinct samples: diversity, which collapse drives to zero (higher is better).

    Version 2: points beyond ~1e150 are rescaled first (version 1 gave inf beyond ~1e154)."""

    name = "pairwise-distance"
    higher_is_better = True
    version = "2"

    def compute(self, evaluation: Evaluation) -> float:
        return mean_pairwise_distance(flatten(evaluation.samples))


class LogDet(Metric):
    """Log-determinant of the samples' covariance (ddof=1): volume of the spread; -inf once it is singular.

    Singular means a numerical rank below the dimension, with the relative tolerance of
    ``covariance_log_determinant`` (numpy's ``matrix_rank`` of the centred samples): n <= d samples
    or samples on a plane always give -inf, with the rank in the detail, never a large negative
    number that rounding happened to leave. Version 2: that tolerance (version 1 took slogdet's sign).
    """

    name = "logdet"
    higher_is_better = None
    version = "2"

    def compute(self, evaluation: Evaluation) -> Measured:
        x = flatten(evaluation.samples)
        value, rank = covariance_log_determinant(x)
        if rank < x.shape[1]:
            return Measured(value, f"singular covariance: rank {rank} < {x.shape[1]} dimensions ({len(x)} samples)")
        return Measured(value, "")
