"""Synthetic chains with known answers: results frames for the tests of the verdicts and for
``scripts/verdict_rates.py``, which measures their false-positive and detection rates over many seeds.

A chain's value at generation t is ``base + shape(t) x (1 + spread z) + noise e_t``: ``shape`` is its true
worsening (lower is better), ``spread`` how much seeds differ in it (z one standard normal per seed), and
``noise`` the standard deviation of the evaluation (e_t independent per generation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.report.stats.control import CONTROL_PARAMS, CONTROL_POLICY

Shape = Callable[[np.ndarray], np.ndarray]
#: The control's policy label in synthetic frames.
CONTROL = f"{CONTROL_POLICY}[{', '.join(f'{k}={v}' for k, v in CONTROL_PARAMS.items())}]"


def constant(t: np.ndarray) -> np.ndarray:
    """No change at all."""
    return np.zeros(len(t))


def drift(per_generation: float) -> Shape:
    """A steady worsening: ``per_generation`` more every generation, never settling."""
    return lambda t: per_generation * np.asarray(t, dtype=float)


def settling(total: float, time: float) -> Shape:
    """A worsening that converges to ``total``, within 5% of it after 3 ``time`` generations."""
    return lambda t: total * (1 - np.exp(-np.asarray(t, dtype=float) / time))


@dataclass(frozen=True)
class Case:
    """One configuration of a synthetic report: its labels and the chain of each of its seeds."""

    policy: str
    shape: Shape
    base: float = 1.0
    noise: float = 0.02
    spread: float = 0.1
    model: str = "m"
    metric: str = "loss"
    dataset: str = "d"
    params: dict[str, float] = field(default_factory=dict)


def control_case(shape: Shape = constant, **kwargs: object) -> Case:
    """The real-only control (its policy and parameters as a grid writes them)."""
    return Case(CONTROL, shape, params=dict(CONTROL_PARAMS), **kwargs)  # type: ignore[arg-type]


def frame(cases: Sequence[Case], seeds: int, generations: int, rng: np.random.Generator) -> pd.DataFrame:
    """A results frame (the columns the statistics read) of every case over ``seeds`` seeds."""
    t = np.arange(generations + 1)
    params = sorted({k for c in cases for k in c.params})
    blocks = []
    for case in cases:
        for seed in range(seeds):
            values = case.base + case.shape(t) * (1 + case.spread * rng.standard_normal())
            values = values + case.noise * rng.standard_normal(len(t))
            block = {
                "run_id": f"{case.dataset}-{case.model}-{case.policy}-{case.metric}-{seed}",
                "dataset": case.dataset,
                "model": case.model,
                "policy": case.policy,
                "seed": seed,
                "generation": t,
                "metric": case.metric,
                "value": values,
                "detail": "",
                "status": "done",
                "config": f"{case.dataset}-{case.model}-{case.policy}",
            }
            block.update({f"policy.{k}": case.params.get(k, np.nan) for k in params})
            blocks.append(pd.DataFrame(block))
    return pd.concat(blocks, ignore_index=True)
