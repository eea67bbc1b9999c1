"""Feature-space metrics of image generations: FID and KID as clean-fid computes them.

Precision, recall, density and coverage work on features too: give them an ``extractor``
(plugins/metrics/manifold.py).

Each metric names a feature extractor (``inception`` by default: see plugins/features/extractors.py)
and compares the features of the generation's samples with those of a real split (the held-out
test set unless ``reference = "train"``). Real features are computed once per dataset, seed and
extractor and reused across generations and runs (benchmark/run/features.py); the extractor runs on
the run's device, in batches.

FID is clean-fid's Fréchet distance between Gaussian fits of the features; by default it is
computed through the singular values of a small factor product (exact, see
``plugins.metrics.maths.frechet_distance``) because scipy's square root of a 2048 x 2048 matrix
costs minutes of CPU; ``method = "clean-fid"`` calls ``cleanfid.fid.frechet_distance`` itself.
KID is clean-fid's ``kernel_distance`` (cubic polynomial kernel, unbiased MMD^2 averaged over random
subsets), with the subsets drawn from the metric's own random stream.
"""

from __future__ import annotations

import warnings

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param, hookimpl
from benchmark.run.seeding import derive_int
from plugins.metrics.maths import frechet_distance, require_points

_EXTRACTOR = Param("inception", str, "feature extractor (inception, domain, raw, ...)", registered="feature-extractor")
_REFERENCE = Param("test", str, "real split the samples are compared with", choices=("test", "train"))


class _FeatureMetric(Metric):
    """Base of metrics computed on features of the samples and of a real split."""

    needs = frozenset({"samples", "points", "features"})

    def features(self, evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
        """(sample features, real features)."""
        if evaluation.features is None:
            raise ValueError(f"metric {self.name!r} needs feature extraction, which this evaluation does not provide")
        extractor = self.params["extractor"]
        return evaluation.features(extractor, "samples"), evaluation.features(extractor, self.params["reference"])

    def where(self, fake: np.ndarray, real: np.ndarray) -> str:
        extractor, reference = self.params["extractor"], self.params["reference"]
        return f"{extractor} features, {len(fake)} samples vs {len(real)} real ({reference})"


class FID(_FeatureMetric):
    """Fréchet Inception Distance (clean-fid's Fréchet distance between Gaussian fits of the features)."""

    name = "fid"
    higher_is_better = False
    optimum = 0.0
    parameters = {
        "extractor": _EXTRACTOR,
        "reference": _REFERENCE,
        "method": Param(
            "factored",
            str,
            "'factored' (exact, fast) or 'clean-fid' (its scipy sqrtm)",
            choices=("factored", "clean-fid"),
        ),
    }

    def compute(self, evaluation: Evaluation) -> Measured:
        fake, real = self.features(evaluation)
        if self.params["method"] == "factored":
            value = frechet_distance(fake, real)
        else:
            value = clean_fid_frechet_distance(fake, real)
        return Measured(value, self.where(fake, real))


def clean_fid_frechet_distance(fake: np.ndarray, real: np.ndarray) -> float:
    """``cleanfid.fid.frechet_distance`` of the Gaussian fits (ddof=1) of two feature sets (n, d).

    One-dimensional features get a second coordinate, 0 in both sets: clean-fid unpacks
    ``scipy.linalg.sqrtm(..., disp=False)`` as (root, error), but scipy returns a bare 1 x 1 root
    for a 1 x 1 matrix. The added coordinate has mean 0 and variance 0 on both sides, so it adds
    exactly 0 to every term (sqrtm's zero eigenvalue stays 0)."""
    from cleanfid.fid import frechet_distance as clean_fid_frechet
    from scipy.linalg import LinAlgWarning

    require_points("the Fréchet distance", 2, fake, real)
    padded = fake.shape[1] == 1
    if padded:
        fake, real = (np.pad(z, ((0, 0), (0, 1))) for z in (fake, real))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy's notice about sqrtm's disp argument
        if padded:
            warnings.simplefilter("ignore", LinAlgWarning)  # "singular": the added coordinate, which is exact
        return float(
            clean_fid_frechet(
                fake.mean(axis=0), np.cov(fake, rowvar=False), real.mean(axis=0), np.cov(real, rowvar=False)
            )
        )


def kernel_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, rng: np.random.RandomState
) -> tuple[float, float]:
    """clean-fid's ``kernel_distance(real, fake, subsets, subset_size)`` with the subsets drawn from ``rng``
    (in clean-fid's order, so a RandomState seeded like ``np.random`` gives its exact subsets).

    Returns (KID, standard error over subsets). When every subset takes all points of both sets,
    the subsets differ only by order, so one is computed (the value is the same).
    """
    d = real.shape[1]
    require_points("KID", 2, fake, real)
    m = min(len(real), len(fake), subset_size)
    everything = m == len(real) == len(fake)
    values = []
    for _ in range(1 if everything else subsets):
        if everything:
            x, y = fake, real
        else:
            x = fake[rng.choice(len(fake), m, replace=False)]
            y = real[rng.choice(len(real), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        values.append(((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m)
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se


class KID(_FeatureMetric):
    """Kernel Inception Distance (clean-fid's kernel_distance): unbiased MMD^2, cubic kernel, over subsets."""

    name = "kid"
    higher_is_better = False
    optimum = 0.0
    parameters = {
        "extractor": _EXTRACTOR,
        "reference": _REFERENCE,
        "subsets": Param(100, int, "random subsets averaged", low=1),
        "subset_size": Param(1000, int, "largest subset size (smaller sets are used whole)", low=2),
    }

    def compute(self, evaluation: Evaluation) -> Measured:
        fake, real = self.features(evaluation)
        rng = np.random.RandomState(derive_int(evaluation.rng) % 2**32)
        value, se = kernel_distance(real, fake, self.params["subsets"], self.params["subset_size"], rng)
        return Measured(value, f"{self.where(fake, real)}; standard error over subsets {se:.3g}")


METRICS = (FID, KID)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
