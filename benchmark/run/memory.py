"""Runs of one combination kept in memory: the real retraining loop with no store, for tests over many seeds.

Not conformance (a component can pass every check and still behave unexpectedly under retraining),
but plugin authors test that too: ``benchmark.testing`` re-exports both functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmark.api.registry import Registry
from benchmark.run.harness import seeds_per_task
from benchmark.run.loop import GenerationResult
from benchmark.run.loop import generations as run_generations
from benchmark.run.spec import parse_grid
from benchmark.run.together import fits_together, lock_step


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
) -> list[list[GenerationResult]]:
    """Generations 0..``generations`` of one combination (components as grid tables), one list per seed.

    The real retraining loop with no store: for statistical tests over many seeds of a plugin's
    behaviour under retraining (the analytic and reproduction tests use it). ``metric`` is one grid
    table or a list of them, all measured on the same chain. Seeds of a family that trains seeds
    together do so here too (their numbers are those they get alone), as the harness groups them.
    """
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
    runs = list(grid.runs)
    size = seeds_per_task(runs[0].device) if fits_together(registry.get("model", runs[0].model.name).component) else 1
    if size == 1:
        return [list(run_generations(run, registry)) for run in runs]
    chains: list[list[GenerationResult]] = [[] for _ in runs]
    for start in range(0, len(runs), size):  # the seeds train together, each chain exactly as alone
        group = runs[start : start + size]
        for i, result in lock_step(group, registry, [None] * len(group)):
            if isinstance(result, Exception):
                raise result
            chains[start + i].append(result)
    return chains


def model_states(runs: Sequence[Sequence[GenerationResult]], key: str) -> np.ndarray:
    """``model_state[key]`` of every generation of every run, shape (runs, generations + 1, ...)."""
    return np.array([[np.asarray(r.model_state[key], dtype=float) for r in chain] for chain in runs])
