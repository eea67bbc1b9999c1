"""What checks of several kinds share: how messages name a component, and a state's trip through a checkpoint."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.api.components import Component
from benchmark.run import checkpoint


def describe(component: Component | type[Component]) -> str:
    """``ClassName 'name'``: how every message names the component (a class or an instance) it is about."""
    cls = component if isinstance(component, type) else type(component)
    return f"{cls.__name__} {getattr(component, 'name', '?')!r}"


def round_trip(state: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``state`` saved and loaded through benchmark.run.checkpoint, as the store does between generations."""
    with tempfile.TemporaryDirectory(prefix="retrainbench-conformance-") as folder:
        try:
            checkpoint.save(state, Path(folder), "state")
        except Exception as exc:
            raise AssertionError(
                f"{what} cannot be saved by benchmark.run.checkpoint: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return checkpoint.load(Path(folder), "state")
        except Exception as exc:
            raise AssertionError(
                f"{what} was saved but cannot be loaded back (numpy state loads without pickles, torch state with "
                f"weights_only=True: keep to arrays, tensors and dicts of them): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
