"""What a sound store file looks like: checksums of a generation's files, and the shape of each JSON file.

Every read of the store goes through these checks, so a damaged, truncated, edited or swapped file is
reported by name (``retrainbench status``, ``report``) or set aside and recomputed (``run``,
``verify --repair``), never read as if it were sound. Each check returns a problem as text (naming
the file) or None; the store decides what to do with it.

A generation's ``manifest.json`` holds the sha256 of each of its other files; it is written inside the
generation's temporary directory, so it is committed with the files in one rename. Generations stored
before manifests existed carry none: they are *unverified*, checked only for being readable.
"""

from __future__ import annotations

import hashlib
import numbers
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.files import read_json

#: The file of a generation that lists the sha256 of every other file in it.
MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def manifest(files: Iterable[Path]) -> dict[str, Any]:
    """The manifest of a generation's ``files`` (all in one directory)."""
    return {"sha256": {path.name: sha256(path) for path in sorted(files)}}


def read_json_or_problem(path: Path) -> tuple[Any, str | None]:
    """The parsed file and None, or None and the problem (unreadable, not JSON)."""
    try:
        return read_json(path), None
    except FileNotFoundError:
        return None, f"{path}: missing"
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({type(exc).__name__}: {exc})"


def _shape_problem(data: Any, shape: Mapping[str, type | tuple[type, ...]]) -> str | None:
    """'not a JSON object', 'missing key', 'key must be ...' for ``data`` against ``shape`` (key -> types)."""
    if not isinstance(data, dict):
        return f"holds a {type(data).__name__}, not a JSON object"
    for key, types in shape.items():
        if key not in data:
            return f"missing key {key!r}"
        value = data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            names = " or ".join(t.__name__ for t in _tuple(types))
            return f"key {key!r} must be {names}, not {type(value).__name__}"
    return None


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def json_problem(path: Path, shape: Mapping[str, type | tuple[type, ...]]) -> tuple[Any, str | None]:
    """Read a JSON object with at least the keys of ``shape``: (data, None) or (None, problem naming ``path``)."""
    data, problem = read_json_or_problem(path)
    if problem is None:
        shape_problem = _shape_problem(data, shape)
        if shape_problem is not None:
            return None, f"{path}: {shape_problem}"
    return data, problem


#: The keys ``store.record_grid`` writes to grids/NAME.json.
GRID_SHAPE: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "path": str,
    "source": str,
    "runs": list,
    "generations": int,
    "environment": dict,
}
#: The keys ``store.finish`` writes to status.json (``status`` is checked against RunStatus by the store).
STATUS_SHAPE: dict[str, type | tuple[type, ...]] = {"status": str, "generations": int, "reason": str, "traceback": str}
#: The keys every run.json has (``RunSpec.describe()``); the rest is checked by rebuilding the spec.
RUN_SHAPE: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "schema": int,
    "dataset": dict,
    "model": dict,
    "policy": dict,
    "metrics": list,
    "seed": int,
    "versions": dict,
}
RECORD_SHAPE: dict[str, type | tuple[type, ...]] = {"generation": int, "metrics": dict}


def record_problem(record: Any, generation: int) -> str | None:
    """What is wrong with a generation's record, or None."""
    problem = _shape_problem(record, RECORD_SHAPE)
    if problem is not None:
        return problem
    if record["generation"] != generation:
        return f"is the record of generation {record['generation']}, not {generation}"
    for metric, measured in record["metrics"].items():
        value = measured.get("value") if isinstance(measured, dict) else None
        if not isinstance(measured, dict) or not (value is None or isinstance(value, numbers.Real)):
            return f"metric {metric!r} is not {{'value': number or null, 'detail': text}}"
    return None


def _readable(path: Path) -> str | None:
    """For a file without a checksum: can it be read whole? (npz and torch files are zip archives with CRCs.)"""
    try:
        if path.suffix in (".npz", ".pt"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return None if bad is None else f"{path}: member {bad!r} fails its CRC"
        if path.suffix == ".npy":
            with open(path, "rb") as fh:
                np.load(fh, allow_pickle=False)
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        return f"{path}: unreadable ({type(exc).__name__}: {exc})"


def generation_problem(directory: Path, generation: int) -> tuple[str | None, bool]:
    """(the first problem of a stored generation or None, whether its files were checked against checksums)."""
    # Hidden files are the filesystem's or the desktop's (.nfsXXXX on a shared store, .DS_Store), never ours
    files = sorted(p for p in directory.iterdir() if p.name != MANIFEST and not p.name.startswith("."))
    listed, problem = json_problem(directory / MANIFEST, {"sha256": dict})
    verified = (directory / MANIFEST).exists()
    if verified:
        if problem is not None:
            return problem, True
        sums = listed["sha256"]
        for path in files:
            if path.name not in sums:
                return f"{path}: not in the generation's {MANIFEST}", True
        for name, expected in sorted(sums.items()):
            path = directory / name
            if not path.is_file():
                return f"{path}: missing (listed in {MANIFEST})", True
            if sha256(path) != expected:
                return f"{path}: checksum mismatch (edited, swapped or damaged)", True
    else:
        for path in files:
            problem = _readable(path)
            if problem is not None:
                return problem, False
    if not any(p.stem == "model" for p in files):
        return f"{directory / 'model.npz'}: missing (no model file in the generation)", verified
    record, problem = read_json_or_problem(directory / "record.json")
    if problem is None:
        shape = record_problem(record, generation)
        problem = None if shape is None else f"{directory / 'record.json'}: {shape}"
    return problem, verified
