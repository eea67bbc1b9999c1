"""Checks of a dataset: splits of the sizes asked for, shaped alike, deterministic, and a pool that only grows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmark.api.components import Dataset, DataSplits
from benchmark.api.kinds import DATA_KINDS, expected_values, values_problem
from benchmark.run.loop import read_only
from benchmark.run.seeding import stream
from benchmark.testing.common import describe, judged_as_in_the_loop
from benchmark.testing.reference import Budget


def _load(dataset: Dataset, budget: Budget, n_pool: int, seed: int | None = None) -> DataSplits:
    rng = stream(budget.seed if seed is None else seed, "conformance", "data")
    splits = dataset.load(budget.n_train, budget.n_test, n_pool, rng)
    if not isinstance(splits, DataSplits):
        raise AssertionError(f"{describe(dataset)}: load() returned {type(splits).__name__}, expected DataSplits")
    return splits


def _check_points(who: str, name: str, x: object, rows: int, splits: DataSplits) -> None:
    kind, sample_shape = DATA_KINDS[splits.kind], splits.sample_shape
    if not isinstance(x, np.ndarray) or x.ndim != kind.ndim or len(x) != rows or x.shape[1:] != sample_shape:
        shape = x.shape if isinstance(x, np.ndarray) else type(x).__name__
        raise AssertionError(
            f"{who}: the {name} split has shape {shape}, expected {rows} {kind.name} points "
            f"({kind.layout}) shaped like the training split {sample_shape}"
        )
    if (problem := values_problem(kind.name, x, splits.vocabulary_size)) is not None:
        expected = expected_values(kind.name, splits.vocabulary_size)
        raise AssertionError(f"{who}: the {name} split has {problem}, expected {expected}")
    if not kind.integer and not np.all(np.isfinite(x)):
        raise AssertionError(f"{who}: the {name} split has {int(np.sum(~np.isfinite(x)))} non-finite values")
    if kind.name == "image" and len(x) and (x.min() < 0 or x.max() > 1):
        raise AssertionError(f"{who}: the {name} split ranges over [{x.min():.3g}, {x.max():.3g}], expected [0, 1]")


@judged_as_in_the_loop
def check_dataset_loads(dataset: Dataset, budget: Budget = Budget()) -> None:
    """Train, test and pool of the sizes asked for, shaped alike: finite floats (images in [0, 1]) or token ids within
    the splits' vocabulary (sequences); the density and the modes it provides have the shapes metrics expect."""
    who = describe(dataset)
    n_pool = budget.n_policy
    splits = _load(dataset, budget, n_pool)
    if splits.kind != dataset.kind:
        raise AssertionError(
            f"{who}: load() returned {splits.kind!r} splits, but the dataset declares kind {dataset.kind!r}"
        )
    if dataset.kind not in DATA_KINDS:
        raise AssertionError(f"{who}: kind {dataset.kind!r} is none of the data kinds {', '.join(DATA_KINDS)}")
    vocabulary = splits.vocabulary
    if DATA_KINDS[dataset.kind].integer and (
        not isinstance(vocabulary, tuple) or not vocabulary or not all(isinstance(t, str) for t in vocabulary)
    ):
        raise AssertionError(f"{who}: sequence splits need a vocabulary, a non-empty tuple of token strings")
    shape = splits.sample_shape
    for name, rows in (("train", budget.n_train), ("test", budget.n_test), ("pool", n_pool)):
        _check_points(who, name, getattr(splits, name), rows, splits)
    if {"density", "source"} & dataset.provides:
        log_density = dataset.log_density(read_only(splits.test))
        if not isinstance(log_density, np.ndarray) or log_density.shape != (budget.n_test,):
            got = getattr(log_density, "shape", type(log_density).__name__)
            raise AssertionError(
                f"{who}: log_density of {budget.n_test} test points has shape {got}, expected ({budget.n_test},)"
            )
        if not np.all(np.isfinite(log_density)):
            raise AssertionError(f"{who}: log_density of its own test points is not finite everywhere")
    if "modes" in dataset.provides:
        modes = dataset.modes()
        if not isinstance(modes, np.ndarray) or modes.ndim < 1 or len(modes) == 0 or modes.shape[1:] != shape:
            got = getattr(modes, "shape", type(modes).__name__)
            raise AssertionError(f"{who}: modes() has shape {got}, expected (k, *{shape}) with k >= 1")


@judged_as_in_the_loop
def check_dataset_deterministic(dataset: Dataset, budget: Budget = Budget()) -> None:
    """The same rng seed gives the same splits, another seed other ones; a larger pool leaves train, test and the
    smaller pool's points as they were (so a run extended to more generations keeps its real data)."""
    who = describe(dataset)
    small, large = _load(dataset, budget, budget.n_policy), _load(dataset, budget, 2 * budget.n_policy)
    again = _load(dataset, budget, budget.n_policy)
    if not all(np.array_equal(getattr(small, s), getattr(again, s)) for s in ("train", "test", "pool")):
        raise AssertionError(
            f"{who}: two loads with the same rng seed gave different splits: draw every random number from the rng "
            "passed to load()/draw()"
        )
    if not (np.array_equal(small.train, large.train) and np.array_equal(small.test, large.test)):
        raise AssertionError(f"{who}: a larger pool changed the train or test split: draw the pool after them")
    if not np.array_equal(small.pool, large.pool[: len(small.pool)]):
        raise AssertionError(f"{who}: a larger pool does not begin with the smaller pool's points (see Dataset.load)")
    other = _load(dataset, budget, budget.n_policy, seed=budget.seed + 1)
    if np.array_equal(other.train, small.train):
        raise AssertionError(f"{who}: load() ignores its rng: two different seeds gave the same training split")


DATASET_CHECKS: dict[str, Callable[..., None]] = {
    "loads": check_dataset_loads,
    "deterministic": check_dataset_deterministic,
}
