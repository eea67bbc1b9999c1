"""Basic metrics of every generation: likelihood, Gaussian-fit distance, spread.

Samples of any shape are compared as flat vectors. Optimal transport (``w1``, ``w2``) and the
other sample-based metrics live in ``plugins.metrics.samples``.
"""

from __future__ import annotations

import numpy as np

from benchmark import Evaluation, Metric, hookimpl


def flatten(x: np.ndarray) -> np.ndarray:
    """Samples of any shape as float64 rows: (n, ...) -> (n, prod(...))."""
    return x.reshape(len(x), -1).astype(np.float64, copy=False)


def _total_variance(x: np.ndarray) -> float:
    """Trace of the sample covariance (ddof=1)."""
    return float(np.sum(np.var(flatten(x), axis=0, ddof=1)))


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
        from plugins.metrics.samples import frechet_distance  # exact without a d x d matrix square root

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


@hookimpl
def register_metrics(register):
    for metric in (NLL, Frechet, Variance, VarianceRatio, MeanDistance):
        register(metric)
