"""What checks of several kinds share: how messages name a component, the loop's run-time rules (read-only inputs,
untouched global random state) applied to a whole check, and a state's trip through a checkpoint."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from benchmark.api.components import Component
from benchmark.errors import ContractViolation
from benchmark.run import checkpoint
from benchmark.run.global_random import untouched_global_random_state

Check = TypeVar("Check", bound=Callable[..., None])


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


def judged_as_in_the_loop(check: Check) -> Check:
    """``check(component, ...)`` failing, as the loop would, when the component uses numpy's or torch's global
    random state or writes into an input array (the kit hands components read-only arrays, as the loop does).

    Either is reported in preference to whatever else the check found: it is the cause of the rest.
    """

    @functools.wraps(check)
    def judged(component: Any, *args: Any, **kwargs: Any) -> None:
        who = f"{describe(component)} (in {check.__name__})"
        failure: AssertionError | None = None
        try:
            with untouched_global_random_state(who):
                try:
                    check(component, *args, **kwargs)
                except AssertionError as exc:
                    failure = exc
        except ContractViolation as exc:
            raise AssertionError(str(exc)) from failure
        except ValueError as exc:
            if "read-only" not in str(exc):
                raise
            raise AssertionError(
                f"{who} wrote into an input array ({exc}): the loop hands components read-only arrays; copy first"
            ) from exc
        if failure is not None:
            raise failure

    return judged  # type: ignore[return-value]
