"""One run: the retraining loop.

Generation 0 fits the real training set D. Generation t >= 1 asks the policy for a training set
(built from D, the pool, its own state and fresh samples of the model of generation t-1), refits,
then draws ``n_eval`` samples and computes every metric against the held-out test set.
The loop knows nothing about storage: it yields one GenerationResult per generation and can
start from a stored one (``Resume``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.api.components import (
    Dataset,
    Evaluation,
    Measured,
    Metric,
    Model,
    ModelFamily,
    Policy,
    PolicyStep,
    RunContext,
)
from benchmark.api.registry import Registry
from benchmark.errors import Diverged
from benchmark.run.features import FeatureSpace
from benchmark.run.seeding import stream
from benchmark.run.spec import RunSpec

#: Evaluation samples kept per generation for galleries: images, and points of vector data.
GALLERY_IMAGES, GALLERY_POINTS = 64, 1000


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
        def make(kind: str, spec):
            return registry.get(kind, spec.name).component(spec.kwargs)

        return cls(
            dataset=make("dataset", run.dataset),
            family=make("model", run.model),
            policy=make("policy", run.policy),
            metrics={spec.label: make("metric", spec) for spec in run.metrics},
            context=RunContext(seed=run.seed, threads=threads, **run.context_settings()),
        )


def _require_finite(what: str, generation: int, array: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise Diverged(f"non-finite {what} at generation {generation}")
    return array


def _measure(metric: Metric, evaluation: Evaluation) -> dict[str, Any]:
    result = Measured.of(metric.compute(evaluation))
    return {"value": float(result.value), "detail": result.detail}


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
    the model's samples or training losses stop being finite.
    """
    parts = RunParts.build(run, registry, threads)
    seed = run.seed
    n_pool = parts.policy.pool_size(run.n_real, run.generations)
    data = parts.dataset.load(run.n_real, run.n_test, n_pool, stream(seed, "data"))
    data_key = {"dataset": run.dataset.canonical(), "seed": seed, "n_real": run.n_real, "n_test": run.n_test}
    space = FeatureSpace(registry, data, data_key, parts.context, cache_dir)
    model: Model = parts.family.create(data, parts.context)
    policy_state: Mapping[str, np.ndarray] = parts.policy.initial_state()
    start = 0
    if resume is not None:
        model.load_state_dict(resume.model_state)
        policy_state = resume.policy_state
        start = resume.generation + 1

    for t in range(start, run.generations + 1):
        seconds: dict[str, float] = {}
        clock = time.perf_counter()
        if t == 0:
            train, composition = data.train, {"real": len(data.train)}
        else:
            synthetic_rng = stream(seed, t, "synthetic")
            step = PolicyStep(
                generation=t,
                real=data.train,
                pool=data.pool,
                sample=lambda n: _require_finite("synthetic samples", t, model.sample(n, synthetic_rng)),
                state=policy_state,
                rng=stream(seed, t, "policy"),
            )
            built = parts.policy.build(step)
            train, composition, policy_state = built.data, dict(built.composition), built.state
            if sum(composition.values()) != len(train):
                raise ValueError(
                    f"policy {run.policy.name!r} reported composition {composition} for {len(train)} points"
                )
        seconds["policy"] = time.perf_counter() - clock

        clock = time.perf_counter()
        fit = {
            k: float(v)
            for k, v in model.fit(train, warm_start=t > 0 and run.warm_start, rng=stream(seed, t, "fit")).items()
        }
        if not all(math.isfinite(v) for v in fit.values()):
            raise Diverged(f"non-finite training loss at generation {t}: {fit}")
        seconds["fit"] = time.perf_counter() - clock

        clock = time.perf_counter()
        samples = _require_finite("samples", t, model.sample(run.n_eval, stream(seed, t, "eval")))
        seconds["sample"] = time.perf_counter() - clock

        clock = time.perf_counter()
        metrics = {}
        for label, metric in parts.metrics.items():
            evaluation = Evaluation(
                samples=samples,
                test=data.test,
                train=data.train,
                model=model,
                dataset=parts.dataset,
                rng=stream(seed, t, "metric", label),
                context=parts.context,
                features=lambda name, which: (
                    space.of_samples(name, samples, t) if which == "samples" else space.real(name, which)
                ),
            )
            metrics[label] = _measure(metric, evaluation)
        seconds["metrics"] = time.perf_counter() - clock

        record = {
            "generation": t,
            "metrics": metrics,
            "composition": composition,
            "training_size": len(train),
            "fit": fit,
            "seconds": seconds,
        }
        keep = GALLERY_IMAGES if data.kind == "image" else GALLERY_POINTS
        yield GenerationResult(t, record, model.state_dict(), dict(policy_state), samples[:keep].astype(np.float32))
