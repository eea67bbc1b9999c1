"""One run: the retraining loop.

Generation 0 fits the real training set D. Generation t >= 1 asks the policy for a training set
(built from D, the pool, its own state and fresh samples of the model of generation t-1), refits,
then draws ``n_eval`` samples and computes every metric against the held-out test set.
The loop knows nothing about storage: it yields one GenerationResult per generation and can
start from a stored one (``Resume``). It checks what it receives from plugins where it receives it
(shapes and dtypes of samples and training sets, metric values, the previous model's log_prob that a
policy may call; ContractViolation names the plugin) and hands them the real data read-only, so a
plugin's bug fails at its own line. Every call into a plugin must leave numpy's and torch's global
random states as it found them (``untouched_global_random_state``): a plugin drawing from them would
make identical runs differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from benchmark.api.components import (
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
from benchmark.api.kinds import DATA_KINDS, decode, expected_values, values_problem
from benchmark.api.registry import Registry
from benchmark.errors import ContractViolation, Diverged
from benchmark.run.features import FeatureSpace
from benchmark.run.global_random import untouched_global_random_state
from benchmark.run.seeding import stream
from benchmark.run.spec import ComponentSpec, RunSpec

#: Evaluation samples kept per generation for galleries: images, and points of vector data.
GALLERY_IMAGES, GALLERY_POINTS = DATA_KINDS["image"].gallery, DATA_KINDS["vector"].gallery


@dataclass(frozen=True)
class GenerationResult:
    """What one generation produced: a JSON-able record and the state to resume from."""

    generation: int
    record: dict[str, Any]
    model_state: Mapping[str, Any]
    policy_state: Mapping[str, np.ndarray]
    #: The first evaluation samples, kept for sample galleries in reports.
    gallery: np.ndarray | None = None


@dataclass(frozen=True)
class Resume:
    """State after the last finished generation of an interrupted run."""

    generation: int
    model_state: Mapping[str, Any]
    policy_state: Mapping[str, np.ndarray]


@dataclass
class RunParts:
    """A run's components, instantiated from its spec."""

    dataset: Dataset
    family: ModelFamily
    policy: Policy
    metrics: dict[str, Metric]
    context: RunContext

    @classmethod
    def build(cls, run: RunSpec, registry: Registry, threads: int | None = None) -> RunParts:
        def make(kind: str, spec: ComponentSpec) -> Any:
            return registry.get(kind, spec.name).component(spec.kwargs)

        return cls(
            dataset=make("dataset", run.dataset),
            family=make("model", run.model),
            policy=make("policy", run.policy),
            metrics={spec.label: make("metric", spec) for spec in run.metrics},
            context=RunContext(seed=run.seed, threads=threads, **run.context_settings()),
        )


@contextlib.contextmanager
def stopwatch(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the block's wall-clock seconds as ``seconds[step]``."""
    start = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - start


def _require_finite(what: str, generation: int, array: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise Diverged(f"non-finite {what} at generation {generation}")
    return array


def _require_points(who: str, generation: int, x: Any, rows: int | None, data: DataSplits) -> np.ndarray:
    """``x`` when it holds ``rows`` points (None: at least one) shaped like the data, with the values of its data kind
    (floats; token ids within the vocabulary for sequences, ``benchmark.api.kinds.values_problem``).

    Otherwise ContractViolation naming ``who``, the component that broke the contract, rather than
    whichever later step would trip over its array.
    """
    sample_shape = data.sample_shape
    expected = str((rows, *sample_shape)) if rows is not None else f"(m, {', '.join(map(str, sample_shape))}), m >= 1"
    if not isinstance(x, np.ndarray):
        got = f"a {type(x).__name__}"
    elif x.ndim == 0 or x.shape[1:] != sample_shape or (len(x) == 0 if rows is None else len(x) != rows):
        got = f"shape {x.shape}"
    elif (problem := values_problem(data.kind, x, data.vocabulary_size)) is not None:
        got = problem
    else:
        return x
    raise ContractViolation(
        f"{who} at generation {generation} returned {got}, expected {expected_values(data.kind, data.vocabulary_size)}"
        f" {expected}"
    )


def kept_samples(samples: np.ndarray, data: DataSplits) -> np.ndarray:
    """The evaluation samples the store keeps for the report: the first few, as float32 points or images, or
    decoded to text for sequences (a string array, which numpy saves without pickles)."""
    kind = DATA_KINDS.get(data.kind)
    kept = samples[: kind.gallery if kind else GALLERY_POINTS]
    if kind is not None and kind.integer:
        return np.array(decode(kept, data.vocabulary), dtype=str)
    return kept.astype(np.float32)


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that refuses writes: a plugin writing into it fails at that line."""
    view = array.view()
    view.flags.writeable = False
    return view


class _CheckedModel:
    """The model as a metric sees it: its own methods, but ``log_prob`` checked (``_Generation.likelihood``)."""

    def __init__(self, model: Model, log_prob: Callable[[np.ndarray], np.ndarray]) -> None:
        self._model, self.log_prob = model, log_prob

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@dataclass
class _Generation:
    """One generation's work on a run: each step draws from its own named stream of the run's seed."""

    run: RunSpec
    parts: RunParts
    data: DataSplits
    space: FeatureSpace
    model: Model
    t: int

    def rng(self, *name: str) -> np.random.Generator:
        return stream(self.run.seed, self.t, *name)

    def training_set(self, policy_state: Mapping[str, np.ndarray]) -> TrainingSet:
        """Generation 0 fits the real data; later ones the policy's mix of real data and samples."""
        if self.t == 0:
            return TrainingSet(self.data.train, {"real": len(self.data.train)}, policy_state)
        sees_log_prob = "log_prob" in self.parts.policy.needs & self.parts.family.provides
        step = PolicyStep(
            generation=self.t,
            real=self.data.train,
            pool=self.data.pool,
            sample=self.synthetic_sampler(),
            state=policy_state,
            rng=self.rng("policy"),
            log_prob=self.likelihood(f"policy {self.run.policy.label!r}") if sees_log_prob else None,
        )
        who = f"policy {self.run.policy.label!r} build()"
        with untouched_global_random_state(f"{who} at generation {self.t}"):
            built = self.parts.policy.build(step)
        _require_points(who, self.t, built.data, None, self.data)
        if sum(built.composition.values()) != len(built.data):
            raise ContractViolation(
                f"{who} at generation {self.t} reported composition {dict(built.composition)} "
                f"for {len(built.data)} points"
            )
        return built

    def synthetic_sampler(self) -> Callable[[int], np.ndarray]:
        """What the policy calls to draw samples of the previous generation's model."""
        rng = self.rng("synthetic")

        def sample(n: int) -> np.ndarray:
            who = f"model {self.run.model.label!r} sample({n}), drawn by policy {self.run.policy.label!r},"
            with untouched_global_random_state(f"{who} at generation {self.t}"):
                drawn = self.model.sample(n, rng)
            samples = _require_points(who, self.t, drawn, n, self.data)
            return _require_finite("synthetic samples", self.t, samples)

        return sample

    def likelihood(self, caller: str) -> Callable[[np.ndarray], np.ndarray]:
        """The model's log-density as ``caller`` (a policy, ``PolicyStep.log_prob``, or a metric) sees it: checked
        on the way in and out, so a NaN is blamed on the model that returned it, not on its caller."""
        model = self.run.model.label

        def log_prob(x: np.ndarray) -> np.ndarray:
            if not isinstance(x, np.ndarray) or x.ndim == 0 or x.shape[1:] != self.data.sample_shape:
                got = f"shape {x.shape}" if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
                raise ContractViolation(
                    f"{caller} at generation {self.t} passed log_prob {got}, "
                    f"expected an array (n, {', '.join(map(str, self.data.sample_shape))})"
                )
            who = f"model {model!r} log_prob(), called by {caller}, at generation {self.t}"
            with untouched_global_random_state(who):
                values = self.model.log_prob(read_only(x))
            if not isinstance(values, np.ndarray) or values.shape != (len(x),):
                got = f"shape {values.shape}" if isinstance(values, np.ndarray) else f"a {type(values).__name__}"
                raise ContractViolation(f"{who} returned {got}, expected a float array ({len(x)},)")
            if not np.issubdtype(values.dtype, np.floating):
                raise ContractViolation(f"{who} returned dtype {values.dtype}, expected floats")
            if bad := int(np.sum(np.isnan(values) | (values == np.inf))):
                raise ContractViolation(f"{who} returned {bad} NaN or +inf values: a log-density is finite or -inf")
            return values

        return log_prob

    @property
    def warm_start(self) -> bool:
        return self.t > 0 and self.run.warm_start

    def fit(self, train: np.ndarray) -> dict[str, float]:
        with untouched_global_random_state(f"model {self.run.model.label!r} fit() at generation {self.t}"):
            losses = self.model.fit(train, warm_start=self.warm_start, rng=self.rng("fit"))
        return self.fitted(losses)

    def fitted(self, losses: Mapping[str, float]) -> dict[str, float]:
        """A fit's reported losses as floats; Diverged when one is not finite."""
        fit = {k: float(v) for k, v in losses.items()}
        if not all(math.isfinite(v) for v in fit.values()):
            raise Diverged(f"non-finite training loss at generation {self.t}: {fit}")
        return fit

    def sample(self) -> np.ndarray:
        """The evaluation samples, read-only: every metric sees the same ones."""
        n = self.run.n_eval
        who = f"model {self.run.model.label!r} sample({n})"
        with untouched_global_random_state(f"{who} at generation {self.t}"):
            drawn = self.model.sample(n, self.rng("eval"))
        samples = _require_points(who, self.t, drawn, n, self.data)
        return read_only(_require_finite("samples", self.t, samples))

    def measure(self, samples: np.ndarray) -> dict[str, dict[str, Any]]:
        """Every metric of the run on this generation's samples, in the order the grid lists them."""
        metrics = {}
        for label, metric in self.parts.metrics.items():
            evaluation = Evaluation(
                samples=samples,
                test=self.data.test,
                train=self.data.train,
                model=cast(Model, _CheckedModel(self.model, self.likelihood(f"metric {label!r}"))),
                dataset=self.parts.dataset,
                rng=self.rng("metric", label),
                context=self.parts.context,
                features=self.space.lookup(samples, self.t),
            )
            with untouched_global_random_state(f"metric {label!r} compute() at generation {self.t}"):
                computed = metric.compute(evaluation)
            result = Measured.of(computed)
            if violation := result.violation():
                raise ContractViolation(f"metric {label!r} at generation {self.t} {violation}")
            metrics[label] = {"value": float(result.value), "detail": result.detail}
        return metrics


@dataclass
class OpenRun:
    """A run ready for its next generation: components, data, model and policy state."""

    run: RunSpec
    parts: RunParts
    data: DataSplits
    space: FeatureSpace
    model: Model
    policy_state: Mapping[str, np.ndarray]
    #: The first generation still to compute.
    start: int

    def generation(self, t: int) -> _Generation:
        return _Generation(self.run, self.parts, self.data, self.space, self.model, t)

    def result(self, t: int, built: TrainingSet, fit: dict[str, float], samples: np.ndarray, metrics, seconds):
        """Generation ``t``'s result (the policy state moves on to ``built.state``)."""
        self.policy_state = built.state
        record = {
            "generation": t,
            "metrics": metrics,
            "composition": dict(built.composition),
            "training_size": len(built.data),
            "fit": fit,
            "seconds": seconds,
        }
        return GenerationResult(
            t, record, self.model.state_dict(), dict(self.policy_state), kept_samples(samples, self.data)
        )


def open_run(
    run: RunSpec, registry: Registry, resume: Resume | None, *, threads: int | None, cache_dir: Path | None
) -> OpenRun:
    """``run``'s components built, its data loaded and its model created (and restored from ``resume``)."""
    parts = RunParts.build(run, registry, threads)
    n_pool = parts.policy.pool_size(run.n_real, run.generations)
    with untouched_global_random_state(f"dataset {run.dataset.label!r} load()"):
        splits = parts.dataset.load(run.n_real, run.n_test, n_pool, stream(run.seed, "data"))
    data = dataclasses.replace(
        splits, train=read_only(splits.train), test=read_only(splits.test), pool=read_only(splits.pool)
    )
    data_key = {"dataset": run.dataset.canonical(), "seed": run.seed, "n_real": run.n_real, "n_test": run.n_test}
    space = FeatureSpace(registry, data, data_key, parts.context, cache_dir)
    with untouched_global_random_state(f"model {run.model.label!r} create()"):
        model: Model = parts.family.create(data, parts.context)
    policy_state: Mapping[str, np.ndarray] = parts.policy.initial_state()
    start = 0
    if resume is not None:
        model.load_state_dict(resume.model_state)
        policy_state = resume.policy_state
        start = resume.generation + 1
    return OpenRun(run, parts, data, space, model, policy_state, start)


def generations(
    run: RunSpec,
    registry: Registry,
    resume: Resume | None = None,
    *,
    threads: int | None = None,
    cache_dir: Path | None = None,
) -> Iterator[GenerationResult]:
    """Yield generations ``resume.generation + 1`` (or 0) .. ``run.generations`` of ``run``.

    ``cache_dir`` keeps what is reused across runs (real-data features). Raises Diverged when
    the model's samples or training losses stop being finite, ContractViolation when a plugin
    returns what its interface forbids.
    """
    opened = open_run(run, registry, resume, threads=threads, cache_dir=cache_dir)
    for t in range(opened.start, run.generations + 1):
        generation = opened.generation(t)
        seconds: dict[str, float] = {}
        with stopwatch(seconds, "policy"):
            built = generation.training_set(opened.policy_state)
        with stopwatch(seconds, "fit"):
            fit = generation.fit(built.data)
        with stopwatch(seconds, "sample"):
            samples = generation.sample()
        with stopwatch(seconds, "metrics"):
            metrics = generation.measure(samples)
        yield opened.result(t, built, fit, samples, metrics, seconds)
