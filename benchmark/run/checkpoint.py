"""Saving and loading state dicts: numpy archives for numpy state, torch files for torch state.

numpy state (analytic families, policies) goes to ``.npz`` without pickles; state holding torch
tensors goes to ``.pt`` and is read back with ``torch.load(weights_only=True)``. torch is imported
only when a state needs it. Nested dicts are kept; keys may not contain '/'.

A state that grows (``accumulate`` keeps every synthetic set so far) is saved against the state saved
before it (``save_extending``): an array whose leading rows are, bit for bit, the earlier state's array
of the same key is saved as only its new rows, in ``STEM.growth.npz`` (a name a reader that does not
follow references fails to find, rather than misreading it), and ``STEM.extends.json`` says which
earlier state holds the rest. A run then stores each synthetic set once, and its store grows linearly
with its generations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.files import read_json


def _holds_torch(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_holds_torch(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_torch(v) for v in value)
    return type(value).__module__.split(".")[0] == "torch"


def flatten(state: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """The state's arrays by path ('outer/inner'), as ``.npz`` members are named."""
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if "/" in str(key):
            raise ValueError(f"state key {key!r} may not contain '/'")
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "/") if value else {path + "/": np.zeros(0)})
        else:
            array = np.asarray(value)
            if array.dtype == object:  # would be pickled by savez and refused by load(allow_pickle=False)
                raise TypeError(
                    f"state entry {path!r} is not numeric ({type(value).__name__}): store arrays or numbers"
                )
            flat[path] = array
    return flat


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The nested state ``flatten`` came from (0-d arrays back to numpy scalars)."""
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
            arrays: dict[str, Any] = flatten(state)  # savez takes them as keyword arguments
            np.savez(fh, **arrays)
    return path


def load(directory: Path, stem: str) -> dict[str, Any]:
    """Read what ``save`` wrote; torch files load on the CPU (the family moves them)."""
    pt = directory / f"{stem}.pt"
    if pt.exists():
        import torch

        return torch.load(pt, weights_only=True, map_location="cpu")
    if extends_path(directory, stem).exists():  # only its new rows are here: the store follows the references
        raise ValueError(f"{directory / stem}: stored as growth over an earlier state; read it with Store.resume_point")
    return unflatten(load_arrays(directory, stem))


def extends_path(directory: Path, stem: str) -> Path:
    """Where ``save_extending`` records which arrays of ``stem.npz`` continue an earlier state's."""
    return directory / f"{stem}.extends.json"


def _continues(array: np.ndarray, earlier: np.ndarray) -> bool:
    """Are ``earlier``'s rows, bit for bit (so -0.0 and NaN payloads too), the leading rows of ``array``?"""
    return (
        earlier.ndim >= 1
        and len(earlier) > 0
        and array.dtype == earlier.dtype
        and array.shape[1:] == earlier.shape[1:]
        and len(array) >= len(earlier)
        and array[: len(earlier)].tobytes() == earlier.tobytes()
    )


def save_extending(
    state: Mapping[str, Any],
    directory: Path,
    stem: str,
    earlier: Mapping[str, np.ndarray],
    reference: Mapping[str, Any],
) -> list[Path]:
    """Save ``state`` like ``save``, keeping of each array that continues ``earlier``'s (flat, as ``flatten``
    gives) only its new rows; ``STEM.extends.json`` maps such a key to ``{**reference, "rows": n}``, n the
    rows ``earlier`` held, so a reader knows where the rest is. Return the paths written."""
    if not earlier or _holds_torch(state):
        return [save(state, directory, stem)]
    arrays: dict[str, Any] = flatten(state)
    extends: dict[str, Any] = {}
    for key, array in arrays.items():
        before = earlier.get(key)
        if before is not None and _continues(array, before):
            arrays[key] = array[len(before) :]
            extends[key] = {**reference, "rows": len(before)}
    path = directory / (f"{stem}.growth.npz" if extends else f"{stem}.npz")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    if not extends:
        return [path]
    with open(extends_path(directory, stem), "w", encoding="utf-8") as fh:
        json.dump(extends, fh, indent=1, sort_keys=True)
    return [path, extends_path(directory, stem)]


def extends(directory: Path, stem: str) -> dict[str, dict[str, Any]]:
    """What ``save_extending`` recorded: {key: {**reference, "rows": n}}; {} for a state saved whole."""
    path = extends_path(directory, stem)
    if not path.exists():
        return {}
    data = read_json(path)
    if not isinstance(data, dict) or not all(
        isinstance(ref, dict) and isinstance(ref.get("rows"), int) for ref in data.values()
    ):
        raise ValueError(f"{path}: not a map of array keys to {{..., 'rows': n}}")
    return data


def arrays_path(directory: Path, stem: str) -> Path | None:
    """The ``.npz`` of a numpy state: ``stem.npz`` saved whole, ``stem.growth.npz`` extending; None if neither."""
    for path in (directory / f"{stem}.npz", directory / f"{stem}.growth.npz"):
        if path.is_file():
            return path
    return None


def load_arrays(directory: Path, stem: str, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a numpy state as stored (new rows only, where they extend an earlier state), by key."""
    path = arrays_path(directory, stem)
    if path is None:
        raise FileNotFoundError(f"{directory / f'{stem}.npz'}: missing")
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in (archive.files if keys is None else keys)}
