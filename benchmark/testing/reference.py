"""The kit's own reference data and budget (the core never imports a plugin, so not the first-party datasets).

``Budget`` says how small the checks run; ``reference_data(kind)`` gives a dataset with known
modes and density (vectors), small images, or token sequences of a known Markov chain, drawn from the
budget's seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from benchmark.api.components import Dataset, DataSplits, Model, RunContext
from benchmark.run.loop import read_only
from benchmark.run.seeding import stream


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
        for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
            images[i, 0, r : r + 3, c : c + 3] += 0.8
        return np.clip(images, 0.0, 1.0)


class ReferenceChain:
    """An order-1 Markov chain over ``size`` tokens with Zipf-like rows, raised to the power 1 / ``temperature`` and
    renormalised (below 1: sharper, the frequent tokens crowd out the rare ones): a sequence source with exact
    log-probabilities, for the reference sequences and the metric checks' true and degraded models."""

    def __init__(self, size: int, temperature: float = 1.0) -> None:
        ranks = (np.arange(size)[None, :] - 2 * np.arange(size)[:, None]) % size + 1.0  # each row's own favourites
        logits = -1.5 * np.log(ranks) / temperature
        self.log_first = logits[0] - np.log(np.sum(np.exp(logits[0])))
        self.log_next = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))

    def draw(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        x = np.zeros((n, length), dtype=np.int64)
        cumulative = np.cumsum(np.exp(self.log_next), axis=1)
        x[:, 0] = np.searchsorted(np.cumsum(np.exp(self.log_first)), rng.random(n) * (1 - 1e-12))
        for i in range(1, length):
            x[:, i] = np.sum(cumulative[x[:, i - 1]] < rng.random((n, 1)) * (1 - 1e-12), axis=1)
        return x

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return self.log_first[x[:, 0]] + np.sum(self.log_next[x[:, :-1], x[:, 1:]], axis=1)


class ReferenceSequences(Dataset):
    """Sequences of 12 tokens ("a" to "p") from an order-1 Markov chain: the kit's sequence data, with exact
    log-probabilities."""

    name = "conformance-sequences"
    kind = "sequence"
    provides = frozenset({"source"})
    length = 12
    chain = ReferenceChain(16)

    def vocabulary(self) -> tuple[str, ...]:
        return tuple("abcdefghijklmnop")

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.chain.draw(n, self.length, rng)

    def log_density(self, x: np.ndarray) -> np.ndarray:
        return self.chain.log_prob(x)


REFERENCE_DATASETS: dict[str, type[Dataset]] = {
    "vector": ReferenceMixture,
    "image": ReferenceImages,
    "sequence": ReferenceSequences,
}


def reference_data(kind: str, budget: Budget = Budget(), *, n_pool: int = 0) -> tuple[Dataset, DataSplits]:
    """The reference dataset of ``kind`` ("vector", "image" or "sequence") and its splits, drawn from
    ``budget.seed``, read-only as the loop hands them to components."""
    if kind not in REFERENCE_DATASETS:
        raise AssertionError(f"no reference data of kind {kind!r}: the kit knows {', '.join(REFERENCE_DATASETS)}")
    dataset = REFERENCE_DATASETS[kind]()
    splits = dataset.load(budget.n_train, budget.n_test, n_pool, stream(budget.seed, "conformance", "data"))
    return dataset, replace(
        splits, train=read_only(splits.train), test=read_only(splits.test), pool=read_only(splits.pool)
    )


class NoModel(Model):
    """The model of an evaluation that has none (feature metrics read samples and features only): any use raises."""

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        raise NotImplementedError(self.__doc__)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(self.__doc__)

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError(self.__doc__)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError(self.__doc__)


class NoDataset(Dataset):
    """The dataset of an evaluation that has none: it draws nothing and knows no density or modes."""

    name = "none"
