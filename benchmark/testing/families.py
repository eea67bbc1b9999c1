"""Checks of a model family: it fits and samples, deterministically, warm-starts, and survives a checkpoint."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchmark.api.components import DataSplits, Model, ModelFamily
from benchmark.api.kinds import expected_values, values_problem
from benchmark.run.loop import read_only
from benchmark.run.seeding import stream
from benchmark.testing.common import describe, judged_as_in_the_loop, round_trip
from benchmark.testing.reference import Budget, reference_data


def _flat_state(state: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """A state dict as flat numpy arrays (torch tensors converted), for comparing two states."""
    if isinstance(state, Mapping):
        out: dict[str, np.ndarray] = {}
        for key, value in state.items():
            out.update(_flat_state(value, f"{prefix}{key}/"))
        return out
    if isinstance(state, (list, tuple)):
        out = {}
        for i, value in enumerate(state):
            out.update(_flat_state(value, f"{prefix}{i}/"))
        return out
    if hasattr(state, "detach"):  # a torch tensor, without importing torch
        state = state.detach().cpu().numpy()
    return {prefix.rstrip("/"): np.asarray(state)}


def _same_state(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    fa, fb = _flat_state(a), _flat_state(b)
    return fa.keys() == fb.keys() and all(
        fa[k].shape == fb[k].shape and np.array_equal(fa[k], fb[k], equal_nan=fa[k].dtype.kind in "fc") for k in fa
    )


def _check_samples(who: str, x: Any, n: int, data: DataSplits, when: str) -> np.ndarray:
    expected = (n, *data.sample_shape)
    if not isinstance(x, np.ndarray):
        raise AssertionError(f"{who}: sample() {when} returned {type(x).__name__}, expected a numpy array {expected}")
    if x.shape != expected:
        raise AssertionError(f"{who}: sample({n}) {when} has shape {x.shape}, expected {expected} (n, *data shape)")
    if (problem := values_problem(data.kind, x, data.vocabulary_size)) is not None:
        wanted = expected_values(data.kind, data.vocabulary_size)
        raise AssertionError(f"{who}: sample() {when} has {problem}, expected {wanted}")
    if not np.all(np.isfinite(x)):
        raise AssertionError(f"{who}: sample() {when} returned {int(np.sum(~np.isfinite(x)))} non-finite values")
    if data.kind == "image" and (x.min() < 0 or x.max() > 1):
        raise AssertionError(f"{who}: image samples {when} range over [{x.min():.3g}, {x.max():.3g}], expected [0, 1]")
    return x


def _fit(who: str, model: Model, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> None:
    stats = model.fit(data, warm_start=warm_start, rng=rng)
    if not isinstance(stats, Mapping):
        raise AssertionError(f"{who}: fit() returned {type(stats).__name__}, expected a mapping of training statistics")
    for key, value in stats.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise AssertionError(f"{who}: fit() statistic {key!r} = {value!r} is not a number") from None
        if not math.isfinite(number):
            raise AssertionError(f"{who}: fit() statistic {key!r} is not finite ({number})")


def _iterative(family: ModelFamily, iterative: bool | None) -> bool:
    return family.warm_start_default if iterative is None else iterative


@judged_as_in_the_loop
def check_family_fits(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """Fits on its declared data kind and samples ``(n, *shape)`` finite floats (images in [0, 1]) or token ids
    within the vocabulary (sequences)."""
    who = describe(family)
    if kind not in family.data_kinds:
        raise AssertionError(f"{who}: checked on {kind!r} data, but it declares data_kinds={family.data_kinds!r}")
    _, data = reference_data(kind, budget)
    model = family.create(data, budget.context())
    if not isinstance(model, Model):
        raise AssertionError(f"{who}: create() returned {type(model).__name__}, expected a benchmark.Model")
    _fit(who, model, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
    _check_samples(
        who, model.sample(budget.n_samples, stream(budget.seed, 0, "eval")), budget.n_samples, data, "after fit"
    )
    _check_samples(who, model.sample(1, stream(budget.seed, 1, "eval")), 1, data, "of one point")


@judged_as_in_the_loop
def check_family_deterministic(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """Same rng seeds give identical fits and samples; another sampling seed gives other samples."""
    who = describe(family)
    _, data = reference_data(kind, budget)
    draws = []
    for _ in range(2):
        model = family.create(data, budget.context())
        _fit(who, model, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
        draws.append(model.sample(budget.n_samples, stream(budget.seed, 0, "eval")))
    if not np.array_equal(draws[0], draws[1]):
        raise AssertionError(
            f"{who}: two models fit and sampled with the same rng seeds gave different samples: draw every random "
            "number from the rng passed to fit()/sample() (seed torch from it with "
            "benchmark.torch_support.devices.torch_generator)"
        )
    again = model.sample(budget.n_samples, stream(budget.seed, 0, "eval"))
    if not np.array_equal(again, draws[1]):
        raise AssertionError(f"{who}: sampling the same model twice with the same rng seed gave different samples")
    other = model.sample(budget.n_samples, stream(budget.seed, 99, "eval"))
    if np.array_equal(other, draws[1]):
        raise AssertionError(f"{who}: sample() ignores its rng: two different seeds gave identical samples")


@judged_as_in_the_loop
def check_family_warm_start(
    family: ModelFamily, kind: str = "vector", budget: Budget = Budget(), *, iterative: bool | None = None
) -> None:
    """A warm-started fit works; for an iterative family it continues from the previous parameters.

    ``iterative`` defaults to the family's ``warm_start_default``: a family that warm-starts by
    default must end a warm-started fit in another state than a fresh fit on the same data with the
    same rng (otherwise warm_start is ignored). For closed-form families (the fit forgets history)
    only a valid warm-started fit is required.
    """
    who = describe(family)
    _, data = reference_data(kind, budget)
    warm = family.create(data, budget.context())
    _fit(who, warm, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
    _fit(who, warm, data.test, warm_start=True, rng=stream(budget.seed, 1, "fit"))
    _check_samples(
        who,
        warm.sample(budget.n_samples, stream(budget.seed, 1, "eval")),
        budget.n_samples,
        data,
        "after a warm-started fit",
    )
    if not _iterative(family, iterative):
        return
    fresh = family.create(data, budget.context())
    _fit(who, fresh, data.test, warm_start=False, rng=stream(budget.seed, 1, "fit"))
    if _same_state(warm.state_dict(), fresh.state_dict()):
        raise AssertionError(
            f"{who}: fit(warm_start=True) ended in the same state as a fresh fit on the same data and rng: the warm "
            "start is ignored (warm_start_default=True says the family continues from the previous generation)"
        )


@judged_as_in_the_loop
def check_family_checkpoint(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """state_dict survives benchmark.run.checkpoint save/load: identical samples, likelihoods and next warm fit."""
    who = describe(family)
    _, data = reference_data(kind, budget)
    original = family.create(data, budget.context())
    _fit(who, original, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
    restored = family.create(data, budget.context())
    restored.load_state_dict(round_trip(original.state_dict(), f"{who}: state_dict()"))
    n = budget.n_samples
    if not np.array_equal(
        original.sample(n, stream(budget.seed, 0, "eval")), restored.sample(n, stream(budget.seed, 0, "eval"))
    ):
        raise AssertionError(
            f"{who}: a model restored from its checkpoint samples differently from the original (same rng)"
        )
    if "log_prob" in family.provides:
        x = data.test[:n]
        if not np.array_equal(original.log_prob(x), restored.log_prob(x)):
            raise AssertionError(f"{who}: a model restored from its checkpoint gives other log_prob values")
    # A resumed run warm-starts the next generation from the loaded state: it must continue exactly.
    for model in (original, restored):
        _fit(who, model, data.test, warm_start=True, rng=stream(budget.seed, 1, "fit"))
    if not np.array_equal(
        original.sample(n, stream(budget.seed, 1, "eval")), restored.sample(n, stream(budget.seed, 1, "eval"))
    ):
        raise AssertionError(
            f"{who}: after a warm-started fit, the restored model differs from the original: state_dict() misses "
            "something the next fit uses (optimizer state, normalisation, step counters?), so resumed runs would drift"
        )


@judged_as_in_the_loop
def check_family_log_prob(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """``log_prob`` (of families providing "log_prob"): finite floats of shape (n,) on test points and on samples."""
    who = describe(family)
    if "log_prob" not in family.provides:
        raise AssertionError(f"{who}: does not provide log_prob, nothing to check")
    _, data = reference_data(kind, budget)
    model = family.create(data, budget.context())
    _fit(who, model, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
    n = budget.n_samples
    for what, x in (
        ("test points", data.test[:n]),
        ("its own samples", read_only(model.sample(n, stream(budget.seed, 0, "eval")))),
    ):
        lp = model.log_prob(x)
        if not isinstance(lp, np.ndarray) or lp.shape != (n,):
            shape = getattr(lp, "shape", type(lp).__name__)
            raise AssertionError(f"{who}: log_prob of {n} {what} has shape {shape}, expected a numpy array ({n},)")
        if not np.issubdtype(lp.dtype, np.floating):
            raise AssertionError(f"{who}: log_prob has dtype {lp.dtype}, expected floats")
        if not np.all(np.isfinite(lp)):
            raise AssertionError(f"{who}: log_prob of {what} has {int(np.sum(~np.isfinite(lp)))} non-finite values")


FAMILY_CHECKS: dict[str, Callable[..., None]] = {
    "fits": check_family_fits,
    "deterministic": check_family_deterministic,
    "warm-start": check_family_warm_start,
    "checkpoint": check_family_checkpoint,
    "log-prob": check_family_log_prob,
}
