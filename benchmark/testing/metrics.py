"""Checks of a metric: at its optimum on samples identical to the test set, ordered in its declared direction, and
the same for the same rng on identical and on degraded samples (where a randomised estimate is not trivially 0)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from benchmark.api.components import Dataset, DataSplits, Evaluation, Measured, Metric, Model
from benchmark.run.loop import read_only
from benchmark.run.seeding import stream
from benchmark.testing.common import describe, judged_as_in_the_loop
from benchmark.testing.reference import Budget, ReferenceChain, ReferenceSequences, reference_data

if TYPE_CHECKING:
    from benchmark.api.registry import Registry


class _AffineModel(Model):
    """The reference data pushed through x -> centre + scale * (x - centre) + shift: scale 1, shift 0 is the truth."""

    def __init__(self, dataset: Dataset, centre: np.ndarray, scale: float, shift: np.ndarray) -> None:
        self.dataset, self.centre, self.scale, self.shift = dataset, centre, scale, shift

    def _map(self, x: np.ndarray) -> np.ndarray:
        y = self.centre + self.scale * (x - self.centre) + self.shift
        return np.clip(y, 0.0, 1.0) if self.dataset.kind == "image" else y

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        return {}

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._map(self.dataset.draw(n, rng))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        inverse = self.centre + (x - self.shift - self.centre) / self.scale
        d = x.reshape(len(x), -1).shape[1]
        return self.dataset.log_density(inverse) - d * math.log(self.scale)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class _ChainModel(Model):
    """A Markov chain of the reference sequences' vocabulary as a model: the source itself, or a sharpened one."""

    def __init__(self, chain: ReferenceChain, length: int) -> None:
        self.chain, self.length = chain, length

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        return {}

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.chain.draw(n, self.length, rng)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.chain.log_prob(x)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def _metric_data_kind(metric: Metric) -> str:
    if "features" in metric.needs:
        return "image"
    return "sequence" if {"tokens", "source"} & metric.needs else "vector"


def _sequence_models(dataset: Dataset, data: DataSplits) -> tuple[Model, Model]:
    """(true, degraded) models of the reference sequences: the source, and its chain at temperature 0.25 (its rare
    tokens all but vanish)."""
    source = cast(ReferenceSequences, dataset)
    length = data.sample_shape[0]
    return _ChainModel(source.chain, length), _ChainModel(ReferenceChain(len(data.vocabulary), 0.25), length)


def _evaluations(metric: Metric, budget: Budget, registry: Registry | None) -> tuple[Evaluation, Evaluation]:
    """(identical, degraded): samples equal to the test set from the true model, then shrunk and shifted ones (a
    sharpened chain, for sequences)."""
    kind = _metric_data_kind(metric)
    dataset, data = reference_data(kind, budget)
    models = _sequence_models(dataset, data) if kind == "sequence" else _affine_models(dataset, data)
    return _evaluations_of(metric, budget, registry, dataset, data, *models)


def _affine_models(dataset: Dataset, data: DataSplits) -> tuple[Model, Model]:
    """(true, degraded) models of vector or image reference data: the data itself, then shrunk and shifted."""
    kind = dataset.kind
    flat = data.train.reshape(len(data.train), -1)
    centre = flat.mean(axis=0).reshape(data.sample_shape)
    if kind == "image":
        scale, shift = 0.3, np.full(data.sample_shape, 0.6)
    else:  # squeeze to 30% of the spread and move by three standard deviations: every aspect degrades
        scale, shift = 0.3, 3.0 * flat.std(axis=0).reshape(data.sample_shape)
    return _AffineModel(dataset, centre, 1.0, np.zeros(data.sample_shape)), _AffineModel(dataset, centre, scale, shift)


def _evaluations_of(
    metric: Metric,
    budget: Budget,
    registry: Registry | None,
    dataset: Dataset,
    data: DataSplits,
    truth: Model,
    worse: Model,
) -> tuple[Evaluation, Evaluation]:
    """The two evaluations of ``_evaluations``: ``truth`` with the test set as samples, ``worse`` with its own."""
    from benchmark.run.features import FeatureSpace

    kind, context = dataset.kind, budget.context()
    out = []
    for generation, (model, samples) in enumerate(
        (
            (truth, read_only(data.test.copy())),
            (worse, read_only(worse.sample(len(data.test), stream(budget.seed, "conformance", "worse")))),
        )
    ):
        features = None
        if "features" in metric.needs:
            if registry is None:
                from benchmark.api.plugins import default_registry

                registry = default_registry()
            key = {"conformance": kind, "seed": budget.seed, "n_train": budget.n_train, "n_test": budget.n_test}
            space = FeatureSpace(registry, data, key, context, None)
            features = space.lookup(samples, generation)
        out.append(
            Evaluation(
                samples=samples,
                test=data.test,
                train=data.train,
                model=model,
                dataset=dataset,
                rng=stream(budget.seed, "conformance", "metric"),
                context=context,
                features=features,
            )
        )
    return out[0], out[1]


def _value(who: str, metric: Metric, evaluation: Evaluation, what: str) -> float:
    result = metric.compute(evaluation)
    value = Measured.of(result).value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise AssertionError(f"{who}: compute() on {what} returned {result!r}, expected a float or a Measured")
    if not math.isfinite(float(value)):
        raise AssertionError(f"{who}: compute() on {what} returned {value}, expected a finite number")
    return float(value)


@judged_as_in_the_loop
def check_metric_identical(
    metric: Metric, budget: Budget = Budget(), *, registry: Registry | None = None, tolerance: float = 1e-3
) -> None:
    """On samples identical to the test set (from the true model): a finite float, at its optimum.

    "At its optimum" is scale-free: the distance from ``optimum`` must be at most ``tolerance`` times
    that of clearly degraded samples (floating-point error, such as a square root of a rounding error,
    stays far below), or beyond the optimum in the good direction (an unbiased estimator may dip below
    a distance's 0). A metric without an optimum is only required to be finite here;
    ``check_metric_direction`` orders it.
    """
    who = describe(metric)
    identical, degraded = _evaluations(metric, budget, registry)
    value = _value(who, metric, identical, "identical inputs")
    optimum, higher = metric.optimum, metric.higher_is_better
    if optimum is None:
        return
    allowed = tolerance * abs(_value(who, metric, degraded, "degraded samples") - optimum)
    gap = value - optimum
    if (
        (higher is None and abs(gap) > allowed)
        or (higher is True and gap < -allowed)
        or (higher is False and gap > allowed)
    ):
        raise AssertionError(
            f"{who}: on identical inputs it gives {value!r}, not its declared optimum {optimum!r} "
            f"(higher_is_better={higher}; allowed distance {allowed:.3g}, {tolerance:g} of the degraded samples')"
        )


@judged_as_in_the_loop
def check_metric_direction(metric: Metric, budget: Budget = Budget(), *, registry: Registry | None = None) -> None:
    """The true model with identical samples scores better than a shrunk, shifted model, in the declared direction."""
    who = describe(metric)
    higher, optimum = metric.higher_is_better, metric.optimum
    if higher is None and optimum is None:
        return  # a descriptive quantity (say, a variance): neither direction is better
    identical, degraded = _evaluations(metric, budget, registry)
    good = _value(who, metric, identical, "identical inputs")
    bad = _value(who, metric, degraded, "degraded samples")
    if higher is not None:
        ok, says = (good > bad) if higher else (good < bad), "higher" if higher else "lower"
    else:  # no direction, so an optimum (a metric with neither returned above)
        best = cast(float, optimum)
        ok, says = abs(good - best) < abs(bad - best), f"closer to the optimum {optimum}"
    if not ok:
        raise AssertionError(
            f"{who}: higher_is_better={higher} says good models score {says}, but samples identical to the test "
            f"set score {good!r} and degraded samples (shrunk and shifted) score {bad!r}"
        )


@judged_as_in_the_loop
def check_metric_deterministic(metric: Metric, budget: Budget = Budget(), *, registry: Registry | None = None) -> None:
    """Two evaluations with the same rng seed give the same value, on identical and on degraded samples.

    Identical samples alone would let a randomised estimate that ignores its rng pass: many distances
    are 0 there whatever the random projections or subsamples.
    """
    who = describe(metric)
    evaluations = _evaluations(metric, budget, registry)
    for evaluation, what in zip(evaluations, ("identical inputs", "degraded samples"), strict=True):
        first = _value(who, metric, evaluation, what)
        again = _value(who, metric, replace(evaluation, rng=stream(budget.seed, "conformance", "metric")), what)
        if first != again:
            raise AssertionError(
                f"{who}: two evaluations on {what} with the same rng seed gave {first!r} and {again!r}: draw every "
                "random number from evaluation.rng"
            )


METRIC_CHECKS: dict[str, Callable[..., None]] = {
    "identical": check_metric_identical,
    "direction": check_metric_direction,
    "deterministic": check_metric_deterministic,
}
