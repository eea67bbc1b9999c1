"""Every random number of a run flows from its one seed, through named streams.

A stream is addressed by a path such as ``(generation, "fit")``; numpy's SeedSequence turns
(seed, path) into independent generators. Because generation t's streams depend only on the
seed and t, a resumed run draws exactly what an uninterrupted one would, with no RNG state to save.
"""

from __future__ import annotations

import zlib

import numpy as np


def _word(part: int | str) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if part < 0:
        raise ValueError(f"stream path parts must be non-negative, got {part}")
    return part


def stream(seed: int, *path: int | str) -> np.random.Generator:
    """The generator for ``path`` within the run seeded by ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=tuple(_word(p) for p in path)))


def derive_int(rng: np.random.Generator) -> int:
    """A 63-bit integer seed for libraries with their own RNG (torch, scikit-learn), drawn from ``rng``."""
    return int(rng.integers(0, 2**63 - 1))
