"""The data-mixing policies: how the training set of generation t >= 1 is built (registered by ``plugins.policies``).

With D the n real training points and S_t samples of the model of generation t-1:

=======================  =======================================================  ==========================
policy                   training set of generation t                             after
=======================  =======================================================  ==========================
mix [lambda]             D + round(lambda * n) samples (lambda = 0: real only)    Bertrand et al. 2024
replace                  n samples only (fully synthetic)                         Shumailov et al. 2024
accumulate               D + S_1 + ... + S_t, each of n samples                   Gerstgrasser et al. 2024
fresh [n_fresh]          n_fresh new real points from the pool + samples          Alemohammad et al. 2023
accumulate-subsample     n points drawn from D + S_1 + ... + S_t                  Kazdan et al. 2024
=======================  =======================================================  ==========================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark import Param, ParamError, Policy, PolicyStep, TrainingSet
from benchmark.run.settings import MAX_POINTS


def _accumulated(step: PolicyStep, n: int) -> np.ndarray:
    """All synthetic points so far, this generation's n fresh samples included."""
    new = step.sample(n)
    old = step.state.get("synthetic")
    return new if old is None or len(old) == 0 else np.concatenate([old, new])


def check_points(key: str, count: float, what: str) -> None:
    """Refuse a parameter that asks for more ``what`` than any size setting may hold (``MAX_POINTS``): found
    only at generation 1, after the store is made, as a MemoryError (or a ValueError for an infinite count)."""
    if not count <= MAX_POINTS:
        raise ParamError(key, f"asks for {count:.3g} {what}, more than the {MAX_POINTS:,} a size may be")


class Mix(Policy):
    """The whole real set plus round(lambda * n) fresh samples of the previous model."""

    name = "mix"
    parameters = {"lambda": Param(1.0, float, "synthetic points per real point", low=0)}

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        check_points("lambda", params["lambda"] * settings["n_real"], "synthetic points a generation")

    def build(self, step: PolicyStep) -> TrainingSet:
        n = len(step.real)
        m = math.floor(self.params["lambda"] * n + 0.5)
        if m == 0:
            return TrainingSet(step.real, {"real": n})
        return TrainingSet(np.concatenate([step.real, step.sample(m)]), {"real": n, "synthetic": m})


class Replace(Policy):
    """Fully synthetic: n samples of the previous model and no real data."""

    name = "replace"

    def build(self, step: PolicyStep) -> TrainingSet:
        n = len(step.real)
        return TrainingSet(step.sample(n), {"synthetic": n})


class Accumulate(Policy):
    """The real set plus every synthetic set so far, each of n samples: the data only grows."""

    name = "accumulate"

    def build(self, step: PolicyStep) -> TrainingSet:
        synthetic = _accumulated(step, len(step.real))
        return TrainingSet(
            np.concatenate([step.real, synthetic]),
            {"real": len(step.real), "synthetic": len(synthetic)},
            {"synthetic": synthetic},
        )


class AccumulateSubsample(Policy):
    """n points drawn without replacement from the real set plus every synthetic set so far."""

    name = "accumulate-subsample"

    def build(self, step: PolicyStep) -> TrainingSet:
        n = len(step.real)
        synthetic = _accumulated(step, n)
        picks = step.rng.choice(n + len(synthetic), size=n, replace=False)
        real = int(np.sum(picks < n))
        data = np.concatenate([step.real, synthetic])[np.sort(picks)]
        return TrainingSet(data, {"real": real, "synthetic": n - real}, {"synthetic": synthetic})


class Fresh(Policy):
    """n_fresh real points never seen before, from the pool, plus samples of the previous model."""

    name = "fresh"
    parameters = {
        "n_fresh": Param(None, int, "new real points per generation (default: n / 2)", low=0, optional=True),
        "n_synthetic": Param(None, int, "synthetic points per generation (default: n - n_fresh)", low=0, optional=True),
    }

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        if params["n_synthetic"] is not None:
            check_points("n_synthetic", params["n_synthetic"], "synthetic points a generation")
        n_real, n_fresh = settings["n_real"], params["n_fresh"]
        if n_fresh is not None and n_fresh > n_real:
            raise ParamError(
                "n_fresh", f"must be <= n_real = {n_real}: fresh points replace part of the n real ones (got {n_fresh})"
            )
        fresh, synthetic = cls._sizes(params, n_real)
        if fresh + synthetic == 0:
            empty = f"must be > 0 when n_fresh is {fresh} (n_real = {n_real}): the training set would be empty"
            raise ParamError("n_synthetic", empty)

    @staticmethod
    def _sizes(params: Mapping[str, Any], n_real: int) -> tuple[int, int]:
        """(fresh, synthetic) points a generation, the defaults filled in."""
        fresh = params["n_fresh"] if params["n_fresh"] is not None else n_real // 2
        synthetic = params["n_synthetic"] if params["n_synthetic"] is not None else max(n_real - fresh, 0)
        return fresh, synthetic

    def pool_size(self, n_real: int, generations: int) -> int:
        return self._sizes(self.params, n_real)[0] * generations

    def build(self, step: PolicyStep) -> TrainingSet:
        fresh, synthetic = self._sizes(self.params, len(step.real))
        if fresh + synthetic == 0:
            raise ValueError("fresh policy with n_fresh = n_synthetic = 0 builds an empty training set")
        real = step.pool[(step.generation - 1) * fresh : step.generation * fresh]
        if len(real) < fresh:
            raise ValueError(
                f"pool exhausted at generation {step.generation}: "
                f"{len(step.pool)} fresh points for {fresh} per generation"
            )
        if synthetic == 0:
            return TrainingSet(real, {"fresh": fresh})
        if fresh == 0:
            return TrainingSet(step.sample(synthetic), {"synthetic": synthetic})
        return TrainingSet(np.concatenate([real, step.sample(synthetic)]), {"fresh": fresh, "synthetic": synthetic})
