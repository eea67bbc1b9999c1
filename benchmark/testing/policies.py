"""Checks of a policy: its training sets add up and say truly where their rows came from, also across a resume."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from benchmark.api.components import DataSplits, Policy, PolicyStep, TrainingSet
from benchmark.run.loop import read_only
from benchmark.run.seeding import stream
from benchmark.testing.common import describe, judged_as_in_the_loop, round_trip
from benchmark.testing.reference import Budget, reference_data

#: Composition keys the policy checks can verify: rows of the real set, of the pool, of the model's samples.
SOURCES = ("real", "fresh", "synthetic")


class _Sampler:
    """Stands in for the previous generation's model: far-away, distinct points, remembered to recognise them.

    The model is a standard normal centred at 1000 in every coordinate; ``log_prob`` is its log-density,
    handed to policies that declare ``needs = {"log_prob"}`` as the loop hands them the previous model's.
    """

    CENTRE = 1000.0

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator, drawn: set[bytes]) -> None:
        self.shape, self.rng, self.drawn = shape, rng, drawn

    def __call__(self, n: int) -> np.ndarray:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise AssertionError(f"policy asked for {n!r} samples: sample() takes a non-negative integer")
        x = self.CENTRE + self.rng.standard_normal((int(n), *self.shape))
        self.drawn.update(_rows(x))
        return x

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim == 0 or x.shape[1:] != self.shape:
            got = f"shape {x.shape}" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
            raise AssertionError(f"policy passed log_prob {got}, expected an array (n, *{self.shape})")
        z = np.asarray(x, dtype=np.float64).reshape(len(x), -1) - self.CENTRE
        return -0.5 * np.sum(z**2, axis=1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def _rows(x: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(x, dtype=np.float64).reshape(len(x), -1)]


def _build_generations(
    policy: Policy, budget: Budget, *, through_checkpoint: bool
) -> list[tuple[TrainingSet, DataSplits, set[bytes]]]:
    who = describe(policy)
    n, generations = budget.n_policy, budget.generations
    pool_size = policy.pool_size(n, generations)
    if not isinstance(pool_size, (int, np.integer)) or pool_size < 0:
        raise AssertionError(f"{who}: pool_size({n}, {generations}) returned {pool_size!r}, expected an integer >= 0")
    _, data = reference_data("vector", replace(budget, n_train=n), n_pool=int(pool_size))
    state: Mapping[str, np.ndarray] = policy.initial_state()
    drawn: set[bytes] = set()
    built = []
    for t in range(1, generations + 1):
        if through_checkpoint:  # as a resumed run does: a new instance, and the state from the store
            policy = type(policy)(dict(policy.params))
            state = round_trip(dict(state), f"{who}: policy state at generation {t}")
        real = read_only(data.train.copy())
        sampler = _Sampler(data.sample_shape, stream(budget.seed, t, "synthetic"), drawn)
        step = PolicyStep(
            generation=t,
            real=real,
            pool=data.pool,
            sample=sampler,
            state=state,
            rng=stream(budget.seed, t, "policy"),
            log_prob=sampler.log_prob if "log_prob" in policy.needs else None,
        )
        result = policy.build(step)
        if not isinstance(result, TrainingSet):
            raise AssertionError(
                f"{who}: build() at generation {t} returned {type(result).__name__}, expected a TrainingSet"
            )
        if not np.array_equal(real, data.train):
            raise AssertionError(f"{who}: build() at generation {t} modified the real data in place")
        if not isinstance(result.state, Mapping):
            raise AssertionError(f"{who}: TrainingSet.state at generation {t} must be a mapping of numpy arrays")
        state = result.state
        built.append((result, data, set(drawn)))
    return built


@judged_as_in_the_loop
def check_policy_builds(
    policy: Policy,
    budget: Budget = Budget(),
    *,
    expected: Callable[[int, int], Mapping[str, int]] | None = None,
) -> None:
    """Over a few generations: training sets of the data's shape whose composition adds up and tells the truth.

    Rows counted as "real" must be rows of the real set, "fresh" rows of the pool, "synthetic" rows
    the policy drew from the model; other keys must account for the remaining rows. ``expected(t, n)``
    gives the documented composition at generation t for n real points, when the author states it.
    """
    who = describe(policy)
    for t, (result, data, drawn) in enumerate(_build_generations(policy, budget, through_checkpoint=False), start=1):
        x = result.data
        if not isinstance(x, np.ndarray) or x.ndim < 1 or x.shape[1:] != data.sample_shape:
            shape = getattr(x, "shape", type(x).__name__)
            raise AssertionError(
                f"{who}: training set at generation {t} has shape {shape}, expected (m, *{data.sample_shape})"
            )
        if len(x) == 0:
            raise AssertionError(f"{who}: training set at generation {t} is empty")
        composition = dict(result.composition)
        for key, count in composition.items():
            if (
                not isinstance(key, str)
                or isinstance(count, bool)
                or not isinstance(count, (int, np.integer))
                or count < 0
            ):
                raise AssertionError(
                    f"{who}: composition at generation {t} must map sources to counts >= 0, got {composition}"
                )
        if sum(composition.values()) != len(x):
            raise AssertionError(
                f"{who}: composition {composition} at generation {t} adds up to {sum(composition.values())}, "
                f"but the training set has {len(x)} points"
            )
        rows = _rows(x)
        real, pool = set(_rows(data.train)), set(_rows(data.pool)) if len(data.pool) else set()
        found = {
            "real": sum(r in real for r in rows),
            "fresh": sum(r in pool for r in rows),
            "synthetic": sum(r in drawn for r in rows),
        }
        for source in SOURCES:
            if found[source] != composition.get(source, 0):
                raise AssertionError(
                    f"{who}: composition at generation {t} says {composition.get(source, 0)} {source} points, but "
                    f"{found[source]} rows of the training set are {_SOURCE_WORDS[source]}"
                )
        others = {k: v for k, v in composition.items() if k not in SOURCES}
        unexplained = len(x) - sum(found.values())
        if unexplained != sum(others.values()):
            raise AssertionError(
                f"{who}: {unexplained} rows of the training set at generation {t} come from neither the real set, "
                f"the pool nor the model's samples, but the other composition keys {others or '{}'} count "
                f"{sum(others.values())}"
            )
        if expected is not None:
            want = dict(expected(t, budget.n_policy))
            if composition != want:
                raise AssertionError(f"{who}: composition at generation {t} is {composition}, documented as {want}")


_SOURCE_WORDS = {
    "real": "real training points",
    "fresh": "fresh points from the pool",
    "synthetic": "samples the policy drew from the model",
}


@judged_as_in_the_loop
def check_policy_deterministic(policy: Policy, budget: Budget = Budget()) -> None:
    """Same seeds, same training sets; and a state saved and loaded between generations (a resume) changes nothing."""
    who = describe(policy)
    plain = _build_generations(policy, budget, through_checkpoint=False)
    resumed = _build_generations(policy, budget, through_checkpoint=True)
    for t, ((a, _, _), (b, _, _)) in enumerate(zip(plain, resumed, strict=True), start=1):
        if not np.array_equal(a.data, b.data) or dict(a.composition) != dict(b.composition):
            raise AssertionError(
                f"{who}: generation {t} differs when the policy state goes through a checkpoint (as on resume) "
                "or between two runs with the same seeds: draw randomness only from step.rng and keep "
                "everything carried over in TrainingSet.state"
            )


POLICY_CHECKS: dict[str, Callable[..., None]] = {
    "builds": check_policy_builds,
    "deterministic": check_policy_deterministic,
}
