"""The run-time check that plugins leave numpy's and torch's global random states alone.

A plugin drawing from ``np.random.*`` or ``torch.randn`` without a generator gives different
numbers on two identical runs, each exiting 0. The loop wraps every call into a plugin in
``untouched_global_random_state``: it compares the global states before and after (about
70 microseconds a call) and raises ContractViolation naming the call. Torch's states are looked at only
when torch was imported before the call (importing torch and the libraries built on it can draw from
its generator, so the call that first imports it cannot be judged); this module never imports it.

The one sanctioned change: a torch plugin seeding torch's global generators from the rng it is
given (``benchmark.torch_support.devices.seed_torch`` announces it through ``note_torch_seeded``),
after which torch's global state is a function of the run's seed. The states are per process: runs
sharing a process in threads (a Dask worker with several threads) would see each other's draws, as
their numbers already would; the built-in executors give each run a process of one thread.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from benchmark.errors import ContractViolation

_torch_seedings = 0


def note_torch_seeded() -> None:
    """Record that torch's global generators were just seeded from a run's rng (see ``seed_torch``)."""
    global _torch_seedings
    _torch_seedings += 1


def _numpy_state() -> tuple[Any, ...]:
    """numpy's global state as ``np.random.get_state`` gives it (cached Gaussian included), comparable with ``==``."""
    _, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    return np.asarray(keys).tobytes(), position, has_gauss, gauss


def _torch_states() -> list[Any] | None:
    """Torch's CPU generator state, and CUDA's when initialised; None when torch is not imported."""
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "random"):
        return None
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_initialized():
        states.extend(torch.cuda.get_rng_state_all())
    return states


def _same_torch_states(before: list[Any] | None, after: list[Any] | None) -> bool:
    if after is None or before is None:  # torch not imported, or imported by this very call: nothing to compare
        return True
    return len(before) == len(after) and all(map(sys.modules["torch"].equal, before, after))


@contextlib.contextmanager
def untouched_global_random_state(who: str) -> Iterator[None]:
    """Raise ContractViolation when the block changes numpy's or torch's global random state.

    ``who`` names the call ("model 'kde' fit() at generation 2"). Torch's state may change when
    the block seeded it through ``seed_torch``.
    """
    numpy_before, torch_before, seedings = _numpy_state(), _torch_states(), _torch_seedings
    yield
    if numpy_before != _numpy_state():
        library = "numpy's"
    elif seedings == _torch_seedings and not _same_torch_states(torch_before, _torch_states()):
        library = "torch's"
    else:
        return
    raise ContractViolation(f"{who} used {library} global random state; draw from the rng it is given")
