"""Model families with closed-form or EM fits: Gaussian, Gaussian KDE, Gaussian mixture.

They refit in milliseconds and their behaviour under retraining is known in closed form
(see the analytic tests), which makes them the reference points of the benchmark.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, ParamError, RunContext, hookimpl
from benchmark.run.seeding import derive_int

if TYPE_CHECKING:
    from sklearn.mixture import GaussianMixture


def _psd_root(cov: np.ndarray) -> np.ndarray:
    """A matrix L with L @ L.T == cov, also for singular (collapsed) covariances."""
    w, v = np.linalg.eigh(cov)
    return v * np.sqrt(np.clip(w, 0.0, None))


# ---------------------------------------------------------------- Gaussian


class GaussianModel(Model):
    def __init__(self, dim: int, ddof: int, fixed_scale: float | None) -> None:
        self.dim, self.ddof, self.fixed_scale = dim, ddof, fixed_scale
        self.mean = np.zeros(dim)
        self.cov = np.eye(dim)

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        self.mean = data.mean(axis=0)
        if self.fixed_scale is not None:
            self.cov = self.fixed_scale**2 * np.eye(self.dim)
        else:
            centred = data - self.mean
            self.cov = centred.T @ centred / (len(data) - self.ddof)
        return {}

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.mean + rng.standard_normal((n, self.dim)) @ _psd_root(self.cov).T

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        from scipy.stats import multivariate_normal

        return np.atleast_1d(multivariate_normal(self.mean, self.cov, allow_singular=True).logpdf(x))

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.copy(), "cov": self.cov.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mean, self.cov = np.array(state["mean"]), np.array(state["cov"])


class GaussianFamily(ModelFamily):
    """Multivariate Gaussian fit by maximum likelihood (ddof=0) or with the unbiased covariance (ddof=1)."""

    name = "gaussian"
    provides = frozenset({"log_prob"})
    parameters = {
        "ddof": Param(0, int, "divide the scatter by n - ddof", choices=(0, 1)),
        "fixed_scale": Param(
            None,
            float,
            "fit the mean only, with covariance fixed_scale^2 I (the known-variance model)",
            above=0,
            optional=True,
        ),
    }

    def create(self, data: DataSplits, context: RunContext) -> GaussianModel:
        (dim,) = data.sample_shape
        return GaussianModel(dim, self.params["ddof"], self.params["fixed_scale"])


# ---------------------------------------------------------------- KDE


class KDEModel(Model):
    def __init__(self, bandwidth: float | str) -> None:
        self.bandwidth = bandwidth
        self.centres = np.zeros((0, 0))
        self.h = 0.0

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        self.centres = np.array(data, dtype=float)
        if isinstance(self.bandwidth, str):
            n, d = self.centres.shape
            sigma = float(np.mean(self.centres.std(axis=0, ddof=1)))
            factor = n ** (-1.0 / (d + 4)) if self.bandwidth == "scott" else (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
            self.h = sigma * factor
        else:
            self.h = float(self.bandwidth)
        return {"bandwidth": self.h}

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        picks = rng.integers(0, len(self.centres), size=n)
        return self.centres[picks] + self.h * rng.standard_normal((n, self.centres.shape[1]))

    def log_prob(self, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        from scipy.special import logsumexp

        n, d = self.centres.shape
        norm = -math.log(n) - d * (math.log(self.h) + 0.5 * math.log(2 * math.pi))
        sq_centres = np.sum(self.centres**2, axis=1)
        out = np.empty(len(x))
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk]
            sq = np.sum(part**2, axis=1)[:, None] - 2 * part @ self.centres.T + sq_centres[None]
            out[start : start + chunk] = logsumexp(-0.5 * np.maximum(sq, 0) / self.h**2, axis=1) + norm
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"centres": self.centres.copy(), "h": np.float64(self.h)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.centres, self.h = np.array(state["centres"]), float(state["h"])


class KDEFamily(ModelFamily):
    """Gaussian kernel density estimate: sampling resamples a training point and adds h * N(0, I)."""

    name = "kde"
    provides = frozenset({"log_prob"})
    parameters = {
        "bandwidth": Param(
            0.1,
            (float, str),
            "kernel width h, or a rule: 'scott' or 'silverman'",
            above=0,
            choices=("scott", "silverman"),
        ),
    }

    def create(self, data: DataSplits, context: RunContext) -> KDEModel:
        return KDEModel(self.params["bandwidth"])


# ---------------------------------------------------------------- Gaussian mixture


class GMMModel(Model):
    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        self.estimator: GaussianMixture | None = None

    @property
    def fitted(self) -> GaussianMixture:
        """The estimator of the last fit or load_state_dict."""
        if self.estimator is None:
            raise RuntimeError("gmm model used before fit or load_state_dict")
        return self.estimator

    def _new_estimator(self, warm_start: bool, seed: int) -> GaussianMixture:
        from sklearn.mixture import GaussianMixture

        p = self.params
        return GaussianMixture(
            n_components=p["components"],
            covariance_type=p["covariance"],
            max_iter=p["max_iter"],
            reg_covar=p["reg_covar"],
            random_state=seed,
            warm_start=warm_start,
        )

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        from sklearn.exceptions import ConvergenceWarning

        seed = derive_int(rng) % 2**32
        if warm_start and self.estimator is not None:
            estimator = self.estimator
            estimator.set_params(warm_start=True, random_state=seed)
        else:
            estimator = self.estimator = self._new_estimator(False, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(data)
        return {"lower_bound": float(estimator.lower_bound_), "iterations": float(estimator.n_iter_)}

    def _full_covariances(self) -> np.ndarray:
        est, k = self.fitted, self.params["components"]
        d = est.means_.shape[1]
        kind = self.params["covariance"]
        if kind == "full":
            return est.covariances_
        if kind == "tied":
            return np.repeat(est.covariances_[None], k, axis=0)
        if kind == "diag":
            return np.stack([np.diag(c) for c in est.covariances_])
        return est.covariances_[:, None, None] * np.eye(d)[None]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        est = self.fitted
        weights = est.weights_ / est.weights_.sum()
        which = rng.choice(len(weights), size=n, p=weights)
        roots = np.stack([_psd_root(c) for c in self._full_covariances()])
        z = rng.standard_normal((n, est.means_.shape[1]))
        return est.means_[which] + np.einsum("nij,nj->ni", roots[which], z)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.fitted.score_samples(x)

    _FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")

    def state_dict(self) -> dict[str, Any]:
        est = self.fitted
        state: dict[str, Any] = {name: np.array(getattr(est, name)) for name in self._FITTED}
        state["lower_bound_"] = np.float64(est.lower_bound_)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        estimator = self.estimator = self._new_estimator(True, 0)
        for name in self._FITTED:
            setattr(estimator, name, np.array(state[name]))
        estimator.lower_bound_ = float(state["lower_bound_"])
        estimator.converged_ = True
        estimator.n_iter_ = 0


class GMMFamily(ModelFamily):
    """Gaussian mixture fit by EM (scikit-learn); warm start begins EM at the previous generation's fit."""

    name = "gmm"
    provides = frozenset({"log_prob"})
    warm_start_default = True
    requires = ("sklearn",)
    install_hint = "pip install scikit-learn"
    parameters = {
        "components": Param(8, int, "number of mixture components", low=1),
        "covariance": Param("full", str, "covariance structure", choices=("full", "tied", "diag", "spherical")),
        "max_iter": Param(
            None, int, "EM iterations per generation (default: the grid's train_steps, else 100)", low=1, optional=True
        ),
        "reg_covar": Param(1e-6, float, "added to covariance diagonals", low=0),
    }

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        n_real, components = settings["n_real"], params["components"]
        if components > n_real:
            raise ParamError(
                "components",
                f"must be <= n_real = {n_real}: EM needs a training point per component (got {components})",
            )

    def create(self, data: DataSplits, context: RunContext) -> GMMModel:
        return GMMModel({**self.params, "max_iter": context.steps(self.params["max_iter"], 100)})


@hookimpl
def register_model_families(register):
    for family in (GaussianFamily, KDEFamily, GMMFamily):
        register(family)
