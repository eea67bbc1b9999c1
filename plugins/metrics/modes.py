"""Modes of mixture datasets: the share of high-quality samples and the fraction of modes they cover.

A sample is high quality within a radius of its nearest mode; a model that collapses onto a few
modes keeps its quality and loses its coverage. Needs a dataset that knows its modes.
"""

from __future__ import annotations

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param
from plugins.metrics.maths import samples_and_test


def _nearest_mode(x: np.ndarray, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's nearest mode, and the distance to it."""
    sq = np.sum((x[:, None, :] - modes[None]) ** 2, axis=2)
    which = np.argmin(sq, axis=1)
    return which, np.sqrt(sq[np.arange(len(x)), which])


def _modes_of(evaluation: Evaluation, metric: str) -> np.ndarray:
    modes = evaluation.dataset.modes()
    if modes is None:
        raise ValueError(f"metric {metric!r} needs a dataset with modes; {evaluation.dataset.name!r} has none")
    return np.asarray(modes, dtype=np.float64).reshape(len(modes), -1)


class _ModeMetric(Metric):
    higher_is_better = True
    optimum = 1.0
    needs = frozenset({"samples", "points", "modes"})

    def _radius(self, test: np.ndarray, modes: np.ndarray) -> tuple[float, str]:
        if self.params["radius"] is not None:
            return self.params["radius"], f"radius {self.params['radius']:.4g}"
        radius = float(np.max(_nearest_mode(test, modes)[1]))
        return radius, f"radius {radius:.4g} (farthest real test point from its mode)"


_RADIUS = Param(
    None,
    float,
    "a sample within this distance of its nearest mode is high quality "
    "(default: the largest distance of a real test point to its nearest mode)",
    above=0,
    optional=True,
)


class HighQuality(_ModeMetric):
    """Fraction of samples within the mode radius of their nearest mode (high-quality samples)."""

    name = "high-quality"
    parameters = {"radius": _RADIUS}

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = samples_and_test(evaluation)
        modes = _modes_of(evaluation, self.name)
        radius, how = self._radius(test, modes)
        return Measured(float(np.mean(_nearest_mode(samples, modes)[1] <= radius)), how)


class ModeCoverage(_ModeMetric):
    """Fraction of modes that receive at least min_share of their fair share of high-quality samples."""

    name = "mode-coverage"
    parameters = {
        "radius": _RADIUS,
        "min_share": Param(
            0.25,
            float,
            "a mode is covered with at least this fraction of the high-quality samples "
            "the real data's proportions give it",
            above=0,
            high=1,
        ),
    }

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = samples_and_test(evaluation)
        modes = _modes_of(evaluation, self.name)
        radius, how = self._radius(test, modes)
        which, distance = _nearest_mode(samples, modes)
        counts = np.bincount(which[distance <= radius], minlength=len(modes))
        real_share = np.bincount(_nearest_mode(test, modes)[0], minlength=len(modes)) / len(test)
        needed = np.maximum(self.params["min_share"] * real_share * len(samples), 1.0)
        covered = int(np.sum(counts >= needed))
        return Measured(covered / len(modes), f"{covered} of {len(modes)} modes; {how}")
