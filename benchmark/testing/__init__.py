"""A conformance kit for plugin authors: checks every component must pass, and a pytest plugin to run them.

A broken plugin must be caught by its author's tests, not by our users. Each ``check_*`` function
is a plain function that raises ``AssertionError`` saying what is wrong, so it works under any test
runner. ``conformance_cases(registry, ...)`` turns them into pytest parameters, one per
(component, check); and this module is a pytest plugin (entry point ``pytest11``), so that::

    import pytest

    pytestmark = pytest.mark.retrainbench_conformance(distribution="my-dist")

    def test_conformance(conformance_case):
        conformance_case.run()

runs the whole suite against every component the distribution registers. The checks use their
own small reference data (the core cannot depend on the first-party plugins) and tiny training
budgets (``Budget``), so a family's checks take seconds.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.api.compatibility import CAPABILITIES, PROVIDED_BY
from benchmark.api.components import (
    Component,
    Dataset,
    DataSplits,
    Evaluation,
    Measured,
    Metric,
    Model,
    ModelFamily,
    Policy,
    PolicyStep,
    RunContext,
    TrainingSet,
)
from benchmark.api.kinds import CONFORMANCE_KINDS, KINDS
from benchmark.api.params import ParamError
from benchmark.run import checkpoint
from benchmark.run.seeding import stream

try:
    import pytest
except ImportError:  # pragma: no cover - the checks are plain functions and run without pytest
    pytest = None

if TYPE_CHECKING:
    from benchmark.api.registry import Registry

#: Kinds of component the kit checks beyond their declarations.
CHECKED_KINDS = CONFORMANCE_KINDS
#: What a metric may declare in ``needs``.
METRIC_NEEDS = CAPABILITIES
#: Composition keys the policy checks can verify: rows of the real set, of the pool, of the model's samples.
SOURCES = ("real", "fresh", "synthetic")


@dataclass(frozen=True)
class Budget:
    """How small the checks run: sizes of the reference data and the training budget handed to families."""

    n_train: int = 200
    n_test: int = 200
    #: Samples drawn by the family checks (kept small: image families sample slowly).
    n_samples: int = 32
    #: Real points per generation in the policy checks.
    n_policy: int = 50
    #: Generations the policy checks build.
    generations: int = 3
    train_steps: int = 10
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1

    def context(self) -> RunContext:
        return RunContext(seed=self.seed, device=self.device, train_steps=self.train_steps, threads=self.threads)


# ---------------------------------------------------------------- reference data


class ReferenceMixture(Dataset):
    """Four Gaussians on a circle in 2-D: the kit's vector data, with known modes and density."""

    name = "conformance-mixture"
    provides = frozenset({"density", "modes"})
    radius, std = 2.0, 0.3

    def modes(self) -> np.ndarray:
        angles = np.pi / 2 * np.arange(4)
        return self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        centres = self.modes()
        return centres[rng.integers(0, len(centres), size=n)] + self.std * rng.standard_normal((n, 2))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        sq = np.sum((x[:, None, :] - self.modes()[None]) ** 2, axis=2)
        log_parts = -0.5 * sq / self.std**2 - 2 * math.log(self.std) - math.log(2 * math.pi)
        top = log_parts.max(axis=1, keepdims=True)
        return (top + np.log(np.mean(np.exp(log_parts - top), axis=1, keepdims=True)))[:, 0]


class ReferenceImages(Dataset):
    """1x8x8 images in [0, 1]: a bright 3x3 square at a random place on a noisy dark background."""

    name = "conformance-images"
    kind = "image"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        images = 0.1 + 0.05 * rng.standard_normal((n, 1, 8, 8))
        rows, cols = rng.integers(0, 6, size=n), rng.integers(0, 6, size=n)
        for i, (r, c) in enumerate(zip(rows, cols)):
            images[i, 0, r : r + 3, c : c + 3] += 0.8
        return np.clip(images, 0.0, 1.0)


REFERENCE_DATASETS: dict[str, type[Dataset]] = {"vector": ReferenceMixture, "image": ReferenceImages}


def reference_data(kind: str, budget: Budget = Budget(), *, n_pool: int = 0) -> tuple[Dataset, DataSplits]:
    """The reference dataset of ``kind`` ("vector" or "image") and its splits, drawn from ``budget.seed``."""
    if kind not in REFERENCE_DATASETS:
        raise AssertionError(f"no reference data of kind {kind!r}: the kit knows {', '.join(REFERENCE_DATASETS)}")
    dataset = REFERENCE_DATASETS[kind]()
    return dataset, dataset.load(budget.n_train, budget.n_test, n_pool, stream(budget.seed, "conformance", "data"))


# ---------------------------------------------------------------- helpers


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


def _round_trip(state: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``state`` saved and loaded through benchmark.run.checkpoint, as the store does between generations."""
    with tempfile.TemporaryDirectory(prefix="retrainbench-conformance-") as folder:
        try:
            checkpoint.save(state, Path(folder), "state")
        except Exception as exc:
            raise AssertionError(
                f"{what} cannot be saved by benchmark.run.checkpoint: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return checkpoint.load(Path(folder), "state")
        except Exception as exc:
            raise AssertionError(
                f"{what} was saved but cannot be loaded back (numpy state loads without pickles, torch state with "
                f"weights_only=True: keep to arrays, tensors and dicts of them): "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def _check_samples(who: str, x: Any, n: int, data: DataSplits, when: str) -> np.ndarray:
    expected = (n, *data.sample_shape)
    if not isinstance(x, np.ndarray):
        raise AssertionError(f"{who}: sample() {when} returned {type(x).__name__}, expected a numpy array {expected}")
    if x.shape != expected:
        raise AssertionError(f"{who}: sample({n}) {when} has shape {x.shape}, expected {expected} (n, *data shape)")
    if not np.issubdtype(x.dtype, np.floating):
        raise AssertionError(f"{who}: sample() {when} has dtype {x.dtype}, expected a float dtype")
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


def _who(component: Component) -> str:
    return f"{type(component).__name__} {getattr(component, 'name', '?')!r}"


# ---------------------------------------------------------------- declarations (every kind)


def check_declaration(component: type[Component]) -> None:
    """Name, summary, parameters, requirements and kind-specific flags are declared as ``list`` and grids need."""
    who = f"{component.__name__} {getattr(component, 'name', '?')!r}"
    if not isinstance(getattr(component, "name", None), str) or not component.name:
        raise AssertionError(f"{component.__name__}: class attribute 'name' must be a non-empty string")
    if not component.summary():
        raise AssertionError(f"{who}: has no docstring; its first line is what `retrainbench list` shows")
    for key, param in component.parameters.items():
        if param.default is None and param.optional:
            continue
        try:
            param.check(key, param.default)
        except ParamError as exc:
            raise AssertionError(
                f"{who}: the default of parameter {key!r} violates its own declaration: {exc}"
            ) from None
    if isinstance(component.requires, str) or not all(isinstance(r, str) for r in component.requires):
        raise AssertionError(f"{who}: 'requires' must be a tuple of import names, got {component.requires!r}")
    if component.requires and not component.install_hint:
        raise AssertionError(
            f"{who}: declares requires={component.requires!r} but no install_hint telling users what to install"
        )
    if not isinstance(component.version, str):
        raise AssertionError(f"{who}: 'version' must be a string, got {component.version!r}")
    if issubclass(component, ModelFamily):
        kinds = component.data_kinds
        if isinstance(kinds, str) or not kinds or not set(kinds) <= {"vector", "image"}:
            raise AssertionError(f"{who}: data_kinds must be a non-empty tuple of 'vector'/'image', got {kinds!r}")
        if not isinstance(component.warm_start_default, bool):
            raise AssertionError(
                f"{who}: warm_start_default must be True or False, got {component.warm_start_default!r}"
            )
    if issubclass(component, (ModelFamily, Dataset)):
        provides, kind = component.provides, "model" if issubclass(component, ModelFamily) else "dataset"
        own = {need for need, (_, by) in PROVIDED_BY.items() if by == kind}
        if not isinstance(provides, frozenset) or not provides <= own:
            raise AssertionError(f"{who}: provides must be a frozenset drawn from {sorted(own)}, got {provides!r}")
    if issubclass(component, Metric):
        check_metric_flags(component)


def check_metric_flags(metric: type[Metric]) -> None:
    """``higher_is_better`` is True, False or None; ``optimum`` a finite number or None; ``needs`` known words."""
    who = f"{metric.__name__} {metric.name!r}"
    if metric.higher_is_better not in (True, False, None) or not isinstance(
        metric.higher_is_better, (bool, type(None))
    ):
        raise AssertionError(f"{who}: higher_is_better must be True, False or None, got {metric.higher_is_better!r}")
    optimum = metric.optimum
    if optimum is not None and (
        isinstance(optimum, bool) or not isinstance(optimum, (int, float)) or not math.isfinite(optimum)
    ):
        raise AssertionError(f"{who}: optimum must be a finite number or None, got {optimum!r}")
    needs = metric.needs
    if isinstance(needs, str) or not isinstance(needs, (set, frozenset)) or not needs <= METRIC_NEEDS:
        raise AssertionError(f"{who}: needs must be a set drawn from {sorted(METRIC_NEEDS)}, got {needs!r}")


# ---------------------------------------------------------------- model families


def _iterative(family: ModelFamily, iterative: bool | None) -> bool:
    return family.warm_start_default if iterative is None else iterative


def check_family_fits(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """Fits on its declared data kind and samples ``(n, *shape)`` finite floats (images in [0, 1])."""
    who = _who(family)
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


def check_family_deterministic(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """Same rng seeds give identical fits and samples; another sampling seed gives other samples."""
    who = _who(family)
    _, data = reference_data(kind, budget)
    draws = []
    for _ in range(2):
        model = family.create(data, budget.context())
        _fit(who, model, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
        draws.append(model.sample(budget.n_samples, stream(budget.seed, 0, "eval")))
    if not np.array_equal(draws[0], draws[1]):
        raise AssertionError(
            f"{who}: two models fit and sampled with the same rng seeds gave different samples: draw every random "
            "number from the rng passed to fit()/sample() (seed torch from it with benchmark.torch_support.devices.torch_generator)"
        )
    again = model.sample(budget.n_samples, stream(budget.seed, 0, "eval"))
    if not np.array_equal(again, draws[1]):
        raise AssertionError(f"{who}: sampling the same model twice with the same rng seed gave different samples")
    other = model.sample(budget.n_samples, stream(budget.seed, 99, "eval"))
    if np.array_equal(other, draws[1]):
        raise AssertionError(f"{who}: sample() ignores its rng: two different seeds gave identical samples")


def check_family_warm_start(
    family: ModelFamily, kind: str = "vector", budget: Budget = Budget(), *, iterative: bool | None = None
) -> None:
    """A warm-started fit works; for an iterative family it continues from the previous parameters.

    ``iterative`` defaults to the family's ``warm_start_default``: a family that warm-starts by
    default must end a warm-started fit in another state than a fresh fit on the same data with the
    same rng (otherwise warm_start is ignored). For closed-form families (the fit forgets history)
    only a valid warm-started fit is required.
    """
    who = _who(family)
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


def check_family_checkpoint(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """state_dict survives benchmark.run.checkpoint save/load: identical samples, likelihoods and next warm fit."""
    who = _who(family)
    _, data = reference_data(kind, budget)
    original = family.create(data, budget.context())
    _fit(who, original, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
    restored = family.create(data, budget.context())
    restored.load_state_dict(_round_trip(original.state_dict(), f"{who}: state_dict()"))
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


def check_family_log_prob(family: ModelFamily, kind: str = "vector", budget: Budget = Budget()) -> None:
    """``log_prob`` (families that provide "log_prob") gives finite floats of shape (n,) on test points and on samples."""
    who = _who(family)
    if "log_prob" not in family.provides:
        raise AssertionError(f"{who}: does not provide log_prob, nothing to check")
    _, data = reference_data(kind, budget)
    model = family.create(data, budget.context())
    _fit(who, model, data.train, warm_start=False, rng=stream(budget.seed, 0, "fit"))
    n = budget.n_samples
    for what, x in (
        ("test points", data.test[:n]),
        ("its own samples", model.sample(n, stream(budget.seed, 0, "eval"))),
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


# ---------------------------------------------------------------- policies


class _Sampler:
    """Stands in for the previous generation's model: far-away, distinct points, remembered to recognise them."""

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator, drawn: set[bytes]) -> None:
        self.shape, self.rng, self.drawn = shape, rng, drawn

    def __call__(self, n: int) -> np.ndarray:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise AssertionError(f"policy asked for {n!r} samples: sample() takes a non-negative integer")
        x = 1000.0 + self.rng.standard_normal((int(n), *self.shape))
        self.drawn.update(_rows(x))
        return x


def _rows(x: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.ascontiguousarray(x, dtype=np.float64).reshape(len(x), -1)]


def _build_generations(
    policy: Policy, budget: Budget, *, through_checkpoint: bool
) -> list[tuple[TrainingSet, DataSplits, set[bytes]]]:
    who = _who(policy)
    n, generations = budget.n_policy, budget.generations
    pool_size = policy.pool_size(n, generations)
    if not isinstance(pool_size, (int, np.integer)) or pool_size < 0:
        raise AssertionError(f"{who}: pool_size({n}, {generations}) returned {pool_size!r}, expected an integer >= 0")
    _, data = reference_data("vector", replace(budget, n_train=n), n_pool=int(pool_size))
    state = policy.initial_state()
    drawn: set[bytes] = set()
    built = []
    for t in range(1, generations + 1):
        if through_checkpoint:  # as a resumed run does: a new instance, and the state from the store
            policy = type(policy)(dict(policy.params))
            state = _round_trip(dict(state), f"{who}: policy state at generation {t}")
        real = data.train.copy()
        step = PolicyStep(
            generation=t,
            real=real,
            pool=data.pool,
            sample=_Sampler(data.sample_shape, stream(budget.seed, t, "synthetic"), drawn),
            state=state,
            rng=stream(budget.seed, t, "policy"),
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
    who = _who(policy)
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


def check_policy_deterministic(policy: Policy, budget: Budget = Budget()) -> None:
    """Same seeds, same training sets; and a state saved and loaded between generations (a resume) changes nothing."""
    who = _who(policy)
    plain = _build_generations(policy, budget, through_checkpoint=False)
    resumed = _build_generations(policy, budget, through_checkpoint=True)
    for t, ((a, _, _), (b, _, _)) in enumerate(zip(plain, resumed), start=1):
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


# ---------------------------------------------------------------- metrics


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


def _evaluations(metric: Metric, budget: Budget, registry: Registry | None) -> tuple[Evaluation, Evaluation]:
    """(identical, degraded): samples equal to the test set from the true model, then shrunk and shifted ones."""
    from benchmark.run.features import FeatureSpace

    kind = "image" if "features" in metric.needs else "vector"
    dataset, data = reference_data(kind, budget)
    context = budget.context()
    flat = data.train.reshape(len(data.train), -1)
    centre = flat.mean(axis=0).reshape(data.sample_shape)
    if kind == "image":
        scale, shift = 0.3, np.full(data.sample_shape, 0.6)
    else:  # squeeze to 30% of the spread and move by three standard deviations: every aspect degrades
        scale, shift = 0.3, 3.0 * flat.std(axis=0).reshape(data.sample_shape)
    truth = _AffineModel(dataset, centre, 1.0, np.zeros(data.sample_shape))
    worse = _AffineModel(dataset, centre, scale, shift)
    out = []
    for generation, (model, samples) in enumerate(
        ((truth, data.test.copy()), (worse, worse.sample(len(data.test), stream(budget.seed, "conformance", "worse"))))
    ):
        features = None
        if "features" in metric.needs:
            if registry is None:
                from benchmark.api.plugins import default_registry

                registry = default_registry()
            key = {"conformance": kind, "seed": budget.seed, "n_train": budget.n_train, "n_test": budget.n_test}
            space = FeatureSpace(registry, data, key, context, None)
            features = lambda name, which, space=space, samples=samples, g=generation: (
                space.of_samples(name, samples, g) if which == "samples" else space.real(name, which)
            )
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


def check_metric_identical(
    metric: Metric, budget: Budget = Budget(), *, registry: Registry | None = None, tolerance: float = 1e-3
) -> None:
    """On samples identical to the test set (from the true model): a finite float, at its optimum, the same twice.

    "At its optimum" is scale-free: the distance from ``optimum`` must be at most ``tolerance`` times
    that of clearly degraded samples (floating-point error, such as a square root of a rounding error,
    stays far below), or beyond the optimum in the good direction (an unbiased estimator may dip below
    a distance's 0). A metric without an optimum is only required to be finite and deterministic here;
    ``check_metric_direction`` orders it.
    """
    who = _who(metric)
    identical, degraded = _evaluations(metric, budget, registry)
    value = _value(who, metric, identical, "identical inputs")
    again = _value(
        who, metric, replace(identical, rng=stream(budget.seed, "conformance", "metric")), "identical inputs"
    )
    if value != again:
        raise AssertionError(f"{who}: two evaluations with the same rng seed gave {value!r} and {again!r}")
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


def check_metric_direction(metric: Metric, budget: Budget = Budget(), *, registry: Registry | None = None) -> None:
    """The true model with identical samples scores better than a shrunk, shifted model, in the declared direction."""
    who = _who(metric)
    higher, optimum = metric.higher_is_better, metric.optimum
    if higher is None and optimum is None:
        return  # a descriptive quantity (say, a variance): neither direction is better
    identical, degraded = _evaluations(metric, budget, registry)
    good = _value(who, metric, identical, "identical inputs")
    bad = _value(who, metric, degraded, "degraded samples")
    if higher is None:
        ok, says = abs(good - optimum) < abs(bad - optimum), f"closer to the optimum {optimum}"
    else:
        ok, says = (good > bad) if higher else (good < bad), "higher" if higher else "lower"
    if not ok:
        raise AssertionError(
            f"{who}: higher_is_better={higher} says good models score {says}, but samples identical to the test "
            f"set score {good!r} and degraded samples (shrunk and shifted) score {bad!r}"
        )


METRIC_CHECKS: dict[str, Callable[..., None]] = {
    "identical": check_metric_identical,
    "direction": check_metric_direction,
}


# ---------------------------------------------------------------- runs in memory


def run_in_memory(
    registry: Registry,
    *,
    dataset: Mapping[str, Any],
    model: Mapping[str, Any],
    policy: Mapping[str, Any],
    metric: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    n_real: int,
    n_test: int,
    n_eval: int,
    generations: int,
    seeds: Sequence[int],
) -> list[list[Any]]:
    """Generations 0..``generations`` of one combination (components as grid tables), one list per seed.

    The real retraining loop with no store: for statistical tests over many seeds of a plugin's
    behaviour under retraining (the analytic and reproduction tests use it). ``metric`` is one grid
    table or a list of them, all measured on the same chain.
    """
    from benchmark.run.loop import generations as run_generations
    from benchmark.run.spec import parse_grid

    grid = parse_grid(
        {
            "name": "in-memory",
            "generations": generations,
            "seeds": list(seeds),
            "n_real": n_real,
            "n_test": n_test,
            "n_eval": n_eval,
            "datasets": [dict(dataset)],
            "models": [dict(model)],
            "policies": [dict(policy)],
            "metrics": [dict(metric)] if isinstance(metric, Mapping) else [dict(m) for m in metric],
        },
        registry,
    )
    return [list(run_generations(run, registry)) for run in grid.runs]


def model_states(runs: Sequence[Sequence[Any]], key: str) -> np.ndarray:
    """``model_state[key]`` of every generation of every run, shape (runs, generations + 1, ...)."""
    return np.array([[np.asarray(r.model_state[key], dtype=float) for r in chain] for chain in runs])


# ---------------------------------------------------------------- cases for pytest


@dataclass(frozen=True)
class Case:
    """One check of one component: ``run()`` raises AssertionError with what is wrong."""

    kind: str
    name: str
    check: str
    component: type[Component]
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Data kind a family is checked on.
    data_kind: str | None = None
    budget: Budget = Budget()
    registry: Any = field(default=None, repr=False, compare=False)
    #: Extra keyword arguments of the check (``iterative``, ``tolerance``, ``expected``).
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        parts = [self.kind, self.name] + ([self.data_kind] if self.data_kind else []) + [self.check]
        return "-".join(parts)

    def run(self) -> None:
        if self.check == "declaration":
            check_declaration(self.component)
            return
        instance = self.component(self.params)
        options = dict(self.options)
        if self.kind == "model":
            if self.check != "warm-start":
                options.pop("iterative", None)
            FAMILY_CHECKS[self.check](instance, self.data_kind, self.budget, **options)
        elif self.kind == "policy":
            if self.check != "builds":
                options.pop("expected", None)
            POLICY_CHECKS[self.check](instance, self.budget, **options)
        elif self.kind == "metric":
            if self.check != "identical":
                options.pop("tolerance", None)
            METRIC_CHECKS[self.check](instance, self.budget, registry=self.registry, **options)
        else:
            raise AssertionError(f"no conformance checks for kind {self.kind!r}")


def component_cases(
    kind: str,
    component: type[Component],
    *,
    params: Mapping[str, Any] | None = None,
    budget: Budget = Budget(),
    registry: Registry | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Case]:
    """Every check that applies to one component class."""
    base = Case(
        kind, component.name, "declaration", component, dict(params or {}), None, budget, registry, dict(options or {})
    )
    cases = [base]
    if kind == "model":
        for data_kind in component.data_kinds:
            for check in FAMILY_CHECKS:
                if check != "log-prob" or "log_prob" in component.provides:
                    cases.append(replace(base, check=check, data_kind=data_kind))
    elif kind == "policy":
        cases += [replace(base, check=check) for check in POLICY_CHECKS]
    elif kind == "metric":
        cases += [replace(base, check=check) for check in METRIC_CHECKS]
    return cases


def conformance_cases(
    registry: Registry,
    *,
    distribution: str | None = None,
    plugins: Iterable[str] | None = None,
    kinds: Iterable[str] = CHECKED_KINDS,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    budget: Budget = Budget(),
) -> list[pytest.ParameterSet]:
    """pytest parameters, one per (component, check), for the components of ``distribution`` or ``plugins``.

    ``params`` and ``options`` are keyed by ``"kind:name"`` (for example ``"model:vae"``): parameters
    that make a component tiny, and extra arguments of its checks. A component whose requirements
    are missing is skipped with its install hint.
    """
    if pytest is None:
        raise RuntimeError("conformance_cases builds pytest parameters: pip install pytest")
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"conformance_cases: unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
    wanted = set(plugins) if plugins is not None else None
    out = []
    for entry in registry:
        dist = registry.plugins.get(entry.plugin, ("?", "?"))[0]
        if entry.kind not in kinds:
            continue
        if distribution is not None and dist != distribution:
            continue
        if wanted is not None and entry.plugin not in wanted:
            continue
        key = f"{entry.kind}:{entry.name}"
        reason = entry.unavailable_reason()
        marks = [pytest.mark.skip(reason=f"{key} unavailable: {reason}")] if reason else []
        for case in component_cases(
            entry.kind,
            entry.component,
            params=(params or {}).get(key),
            budget=budget,
            registry=registry,
            options=(options or {}).get(key),
        ):
            out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# ---------------------------------------------------------------- the pytest plugin (entry point pytest11)

MARKER = "retrainbench_conformance"


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(distribution=None, plugins=None, modules=(), autoload=None, kinds=..., params=None, options=None, "
        "budget=None): "
        "parametrize the `conformance_case` fixture over the retrainbench components of a distribution or plugins",
    )


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize ``conformance_case`` from the ``retrainbench_conformance`` marker."""
    if "conformance_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        raise ValueError(
            f"{metafunc.definition.nodeid}: the conformance_case fixture needs "
            f"@pytest.mark.{MARKER}(distribution=...) or (plugins=[...]) to know which components to check"
        )
    from benchmark.api.plugins import build_registry

    kw = dict(marker.kwargs)
    modules = list(kw.pop("modules", ()))
    registry = build_registry(modules, autoload=kw.pop("autoload", None))
    if modules and "plugins" not in kw and "distribution" not in kw:
        kw["plugins"] = [m if isinstance(m, str) else m.__name__ for m in modules]
    kw["budget"] = kw.get("budget") or Budget()
    cases = conformance_cases(registry, **kw)
    if not cases:
        loaded = ", ".join(f"{p} ({d})" for p, (d, _) in sorted(registry.plugins.items()))
        failed = "; ".join(f"{p}: {r}" for p, r in registry.failures) or "none"
        raise ValueError(
            f"{metafunc.definition.nodeid}: no components match {marker.kwargs}; plugins loaded: {loaded}; "
            f"failed: {failed}. Is the package installed (pip install -e .)?"
        )
    metafunc.parametrize("conformance_case", cases)


if pytest is not None:  # the fixtures exist only where pytest does; the checks work without it

    @pytest.fixture(scope="session")
    def retrainbench_registry() -> Registry:
        """The registry of this environment: every installed plugin, loaded through its entry point."""
        from benchmark.api.plugins import build_registry

        return build_registry()

    @pytest.fixture
    def conformance_budget() -> Budget:
        """The sizes behind the reference-data fixtures (conformance cases take the marker's ``budget=``)."""
        return Budget()

    @pytest.fixture
    def reference_vectors(conformance_budget: Budget) -> DataSplits:
        """2-D mixture data (train, test) of the kit, for a plugin's own tests."""
        return reference_data("vector", conformance_budget)[1]

    @pytest.fixture
    def reference_images(conformance_budget: Budget) -> DataSplits:
        """1x8x8 image data (train, test) in [0, 1] of the kit, for a plugin's own tests."""
        return reference_data("image", conformance_budget)[1]
