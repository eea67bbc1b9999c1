"""Devices and torch randomness for torch-based plugins; torch is imported only when called.

``device = "auto"`` in a grid picks CUDA when present, else the CPU. Torch plugins seed torch
from the run's numpy streams, so their numbers flow from the run's one seed too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmark.run.global_random import note_torch_seeded
from benchmark.run.seeding import derive_int

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """The torch device for a grid's ``device`` setting; a CUDA request without CUDA is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f'device {name!r} requested, but CUDA is not available here (use device = "auto" or "cpu")')
    return device


def torch_generator(rng: np.random.Generator, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded from ``rng``."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(derive_int(rng))
    return generator


def seed_torch(rng: np.random.Generator, threads: int | None = None) -> None:
    """Seed torch's global generators from ``rng`` (for libraries that draw from them) and cap its threads."""
    import torch

    torch.manual_seed(derive_int(rng))
    note_torch_seeded()  # the loop's global-state check accepts this change: it flows from the run's seed
    if threads is not None:
        torch.set_num_threads(threads)
