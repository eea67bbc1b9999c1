"""Saving and loading state dicts: numpy archives for numpy state, torch files for torch state.

numpy state (analytic families, policies) goes to ``.npz`` without pickles; state holding torch
tensors goes to ``.pt`` and is read back with ``torch.load(weights_only=True)``. torch is imported
only when a state needs it. Nested dicts are kept; keys may not contain '/'.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _holds_torch(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_holds_torch(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_torch(v) for v in value)
    return type(value).__module__.split(".")[0] == "torch"


def _flatten(state: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if "/" in str(key):
            raise ValueError(f"state key {key!r} may not contain '/'")
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "/") if value else {path + "/": np.zeros(0)})
        else:
            array = np.asarray(value)
            if array.dtype == object:  # would be pickled by savez and refused by load(allow_pickle=False)
                raise TypeError(
                    f"state entry {path!r} is not numeric ({type(value).__name__}): store arrays or numbers"
                )
            flat[path] = array
    return flat


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = state
        for part in parents:
            node = node.setdefault(part, {})
        if leaf:
            node[leaf] = value[()] if value.ndim == 0 else value
    return state


def save(state: Mapping[str, Any], directory: Path, stem: str) -> Path:
    """Write ``state`` as ``stem.pt`` or ``stem.npz`` in ``directory``; return the path."""
    if _holds_torch(state):
        import torch

        path = directory / f"{stem}.pt"
        torch.save(dict(state), path)
    else:
        path = directory / f"{stem}.npz"
        with open(path, "wb") as fh:
            arrays: dict[str, Any] = _flatten(state)  # savez takes them as keyword arguments
            np.savez(fh, **arrays)
    return path


def load(directory: Path, stem: str) -> dict[str, Any]:
    """Read what ``save`` wrote; torch files load on the CPU (the family moves them)."""
    pt = directory / f"{stem}.pt"
    if pt.exists():
        import torch

        return torch.load(pt, weights_only=True, map_location="cpu")
    with np.load(directory / f"{stem}.npz", allow_pickle=False) as archive:
        return _unflatten({key: archive[key] for key in archive.files})
