"""Low-dimensional datasets drawn on demand: a Gaussian, eight Gaussians, moons, circles, a swiss roll.

All are generators (any number of points, from the run's data stream). The Gaussian and the
mixture of eight Gaussians know their density, a box holding all but a given part of its mass,
and their modes, which density-based and mode-coverage metrics use. Version 2 of each: the pool
of fresh points has its own stream, so train and test no longer depend on the pool's size (see
``Dataset.load``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from benchmark import Dataset, Param, hookimpl


def _normal_quantile(tail: float) -> float:
    """z with P(N(0, 1) > z) = tail."""
    from scipy.special import ndtri

    return float(-ndtri(tail))


class GaussianData(Dataset):
    """Isotropic Gaussian N(mean, scale^2 I) in dim dimensions: the setting of the closed forms."""

    name = "gaussian"
    version = "2"
    provides = frozenset({"density", "modes"})
    parameters = {
        "dim": Param(1, int, "dimension", low=1),
        "mean": Param(0.0, float, "every coordinate's mean"),
        "scale": Param(1.0, float, "standard deviation of every coordinate", above=0),
    }

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        return p["mean"] + p["scale"] * rng.standard_normal((n, p["dim"]))

    def modes(self) -> np.ndarray:
        return np.full((1, self.params["dim"]), self.params["mean"])

    def density_box(self, outside: float) -> tuple[np.ndarray, np.ndarray] | None:
        # The coordinates are independent: each leaves out outside / dim, split between its two tails.
        p = self.params
        half = p["scale"] * _normal_quantile(outside / (2 * p["dim"]))
        return np.full(p["dim"], p["mean"] - half), np.full(p["dim"], p["mean"] + half)

    def log_density(self, x: np.ndarray) -> np.ndarray:
        p = self.params
        z = (x - p["mean"]) / p["scale"]
        return -0.5 * np.sum(z**2, axis=1) - p["dim"] * (math.log(p["scale"]) + 0.5 * math.log(2 * math.pi))


class EightGaussians(Dataset):
    """Equal mixture of Gaussians evenly spaced on a circle (2-D); knows its modes and density."""

    name = "eight-gaussians"
    version = "2"
    provides = frozenset({"density", "modes"})
    parameters = {
        "modes": Param(8, int, "number of mixture components", low=1),
        "radius": Param(2.0, float, "radius of the circle of centres", above=0),
        "std": Param(0.2, float, "standard deviation of each component", above=0),
    }

    def modes(self) -> np.ndarray:
        k = self.params["modes"]
        angles = 2 * np.pi * np.arange(k) / k
        return self.params["radius"] * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        centres = self.modes()
        which = rng.integers(0, len(centres), size=n)
        return centres[which] + self.params["std"] * rng.standard_normal((n, 2))

    def density_box(self, outside: float) -> tuple[np.ndarray, np.ndarray] | None:
        # The centres' box widened so that each component leaves out at most ``outside`` of its mass
        # (two coordinates, two tails each); then so does their mixture.
        centres, half = self.modes(), self.params["std"] * _normal_quantile(outside / 4)
        return centres.min(axis=0) - half, centres.max(axis=0) + half

    def log_density(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import logsumexp

        std, centres = self.params["std"], self.modes()
        sq = np.sum((x[:, None, :] - centres[None]) ** 2, axis=2)
        log_components = -0.5 * sq / std**2 - 2 * math.log(std) - math.log(2 * math.pi)
        return logsumexp(log_components, axis=1) - math.log(len(centres))


class _ScikitLearnSamples(Dataset):
    """Points of a scikit-learn sample generator (``sklearn.datasets.make_*``), moved by ``place``.

    The parameters are the generator's keyword arguments; its ``random_state`` is seeded from the run's stream.
    """

    #: Name of the generator in ``sklearn.datasets``.
    generator: ClassVar[str]

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import sklearn.datasets

        make = getattr(sklearn.datasets, self.generator)
        x, _ = make(n, **self.params, random_state=np.random.RandomState(rng.integers(2**31)))
        return self.place(x)

    def place(self, x: np.ndarray) -> np.ndarray:
        """The generator's points as this dataset hands them over (as they are, unless a subclass moves them)."""
        return x


class Moons(_ScikitLearnSamples):
    """Two interleaving half circles (scikit-learn's make_moons), centred."""

    name = "moons"
    version = "2"
    generator = "make_moons"
    parameters = {"noise": Param(0.1, float, "standard deviation of the Gaussian noise", low=0)}

    def place(self, x: np.ndarray) -> np.ndarray:
        return x - np.array([0.5, 0.25])


class Circles(_ScikitLearnSamples):
    """Two concentric circles (scikit-learn's make_circles)."""

    name = "circles"
    version = "2"
    generator = "make_circles"
    parameters = {
        "noise": Param(0.05, float, "standard deviation of the Gaussian noise", low=0),
        "factor": Param(0.5, float, "inner radius over outer radius", above=0, high=1),
    }


class SwissRoll(_ScikitLearnSamples):
    """The 2-D swiss roll (scikit-learn's make_swiss_roll, coordinates x and z), scaled to about [-1.5, 1.5]."""

    name = "swiss-roll"
    version = "2"
    generator = "make_swiss_roll"
    parameters = {"noise": Param(0.5, float, "standard deviation of the noise before scaling", low=0)}

    def place(self, x: np.ndarray) -> np.ndarray:
        return x[:, [0, 2]] / 8.0


@hookimpl
def register_datasets(register):
    for dataset in (GaussianData, EightGaussians, Moons, Circles, SwissRoll):
        register(dataset)
