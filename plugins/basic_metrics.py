"""Basic metrics of every generation: likelihood, optimal transport, Gaussian-fit distance, spread.

Samples of any shape are compared as flat vectors.
"""

from __future__ import annotations

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param, hookimpl


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64, copy=False)


def _total_variance(x: np.ndarray) -> float:
    """Trace of the sample covariance (ddof=1)."""
    return float(np.sum(np.var(_flat(x), axis=0, ddof=1)))


class NLL(Metric):
    """Negative log-likelihood of the held-out test set under the model (nats per point)."""

    name = "nll"
    needs = frozenset({"log_prob"})
    higher_is_better = False

    def compute(self, evaluation: Evaluation) -> float:
        return float(-np.mean(evaluation.model.log_prob(evaluation.test)))


class W2(Metric):
    """Wasserstein-2 distance between samples and test set (POT): exact up to max_exact points, sliced beyond."""

    name = "w2"
    higher_is_better = False
    optimum = 0.0
    requires = ("ot",)
    install_hint = "pip install pot"
    parameters = {
        "max_exact": Param(2000, int, "largest sample size (per side) solved exactly; larger ones are sliced", low=1),
        "projections": Param(500, int, "random directions of the sliced estimate", low=1),
    }

    def compute(self, evaluation: Evaluation) -> Measured:
        import ot

        x, y = _flat(evaluation.samples), _flat(evaluation.test)
        if max(len(x), len(y)) <= self.params["max_exact"]:
            cost = ot.dist(x, y, metric="sqeuclidean")
            value = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10_000_000)
            return Measured(float(np.sqrt(max(value, 0.0))), "exact")
        seed = int(evaluation.rng.integers(2**31))
        value = ot.sliced_wasserstein_distance(x, y, n_projections=self.params["projections"], p=2, seed=seed)
        return Measured(float(value), f"sliced, {self.params['projections']} projections")


class Frechet(Metric):
    """Fréchet distance between Gaussian fits of samples and test set: |m1-m2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)."""

    name = "frechet"
    higher_is_better = False
    optimum = 0.0

    def compute(self, evaluation: Evaluation) -> float:
        from scipy.linalg import sqrtm

        x, y = _flat(evaluation.samples), _flat(evaluation.test)
        m1, m2 = x.mean(axis=0), y.mean(axis=0)
        s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
        root = sqrtm(s1 @ s2)
        value = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * np.real(root))
        return float(max(value, 0.0))


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
        return float(np.linalg.norm(_flat(evaluation.samples).mean(axis=0) - _flat(evaluation.test).mean(axis=0)))


@hookimpl
def register_metrics(register):
    for metric in (NLL, W2, Frechet, Variance, VarianceRatio, MeanDistance):
        register(metric)
