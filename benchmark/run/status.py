"""``retrainbench status``: what a store holds of a grid, configuration by configuration (or run by run).

A configuration is a run spec without its seed: its seeds are counted together. Generations are counted
as a grid file counts them: a run of ``generations = 3`` is complete at generation 3 (0 is the fit to the
real data), so it shows as ``generation 3/3``. Given the grid, the runs it asks for and the store lacks
are counted as not started. The store is read once, run by run: one listing of each run's folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from benchmark.run.harness import stored_outcome
from benchmark.run.spec import RunSpec, run_spec_from_dict
from benchmark.run.store import RunStatus, Store, Unfinished


class NotStarted(StrEnum):
    """A run of the grid that the store has never begun (shown only when the grid is given)."""

    NOT_STARTED = "not started"


State = RunStatus | Unfinished | NotStarted

#: The order of the summary line: results first, then what is left to do, then what went wrong.
_ORDER: list[State] = [
    RunStatus.DONE,
    Unfinished.RUNNING,
    Unfinished.PENDING,
    NotStarted.NOT_STARTED,
    RunStatus.DIVERGED,
    RunStatus.FAILED,
    RunStatus.TIMED_OUT,
]
#: States whose reason is shown even in the summary.
_WRONG = (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.TIMED_OUT)


@dataclass(frozen=True)
class RunState:
    """One run as the store holds it."""

    run: RunSpec
    state: State
    #: Generations stored whole (0..stored-1).
    stored: int
    reason: str = ""

    @property
    def configuration(self) -> tuple[str, str]:
        """(configuration id, label): what the run computes apart from its seed."""
        return self.run.config_id, self.run.configuration_label


def run_state(store: Store, run: RunSpec, begun: bool) -> RunState:
    """The state of ``run`` in ``store``; ``begun``: the store holds its spec or generations."""
    if not begun:
        running = store.run_dir(run.run_id).exists() and _held(store, run.run_id)
        return RunState(run, Unfinished.RUNNING if running else NotStarted.NOT_STARTED, 0)
    running = _held(store, run.run_id)
    if not running:  # a run being computed changes under the reader; its writer checks it
        store.verified(run.run_id)
    outcome = None if running else stored_outcome(store, run)
    if outcome is not None:
        return RunState(run, outcome.status, outcome.generations, outcome.reason)
    stored = len(store.finished_generations(run.run_id))
    return RunState(run, Unfinished.RUNNING if running else Unfinished.PENDING, stored)


def _held(store: Store, run_id: str) -> bool:
    with store.claim(run_id) as free:
        return not free


def run_states(store: Store, runs: Iterable[RunSpec] | None = None) -> list[RunState]:
    """The state of each of ``runs`` (default: every run the store has begun, as its run.json describes it)."""
    begun = store.run_ids()
    if runs is None:
        return [run_state(store, run_spec_from_dict(store.spec(run_id)), True) for run_id in begun]
    started = set(begun)
    unique = {run.run_id: run for run in runs}
    return [run_state(store, run, run.run_id in started) for run in unique.values()]


def _counts(states: Iterable[RunState]) -> str:
    counts = Counter(s.state for s in states)
    return ", ".join(f"{counts[state]} {state}" for state in _ORDER if counts[state])


def generations_shown(states: list[RunState]) -> str:
    """The last stored generation of the runs, against what the grid asks: ``generation 3/3``, ``generations 1-3/3``."""
    asked = max(s.run.generations for s in states)
    last = [min(s.stored, s.run.generations + 1) - 1 for s in states if s.stored]
    if not last:
        return "no generation stored"
    shown = (
        f"generation {last[0]}/{asked}" if min(last) == max(last) else f"generations {min(last)}-{max(last)}/{asked}"
    )
    begun = sum(1 for s in states if s.state != NotStarted.NOT_STARTED and not s.stored)
    return f"{shown}, {begun} begun without one" if begun else shown


def _run_line(s: RunState) -> str:
    reason = f": {s.reason}" if s.reason else ""
    return f"    {s.state:<11} {s.run.run_id}  seed {s.run.seed}  ({generations_shown([s])}){reason}"


def describe_store(store: Store, grid: tuple[str, list[RunSpec]] | None = None, *, every_run: bool = False) -> str:
    """The summary ``retrainbench status`` prints: a line for the whole, then one per configuration with its
    seeds' states and generations; runs that went wrong with their reason (``every_run``: every run)."""
    if grid is None or store.root.exists():  # a grid not yet run has no store: all its runs are not started
        store.check(create=False)
    states = run_states(store, None if grid is None else grid[1])
    whole = f"{store.root}: grid {grid[0]!r}: " if grid is not None else f"{store.root}: "
    lines = [f"{whole}{len(states)} runs: {_counts(states) or 'none'}"]
    if grid is not None:
        others = len(set(store.run_ids()) - {s.run.run_id for s in states})
        if others:
            lines[0] += f" (and {others} runs of other grids)"
    configurations: dict[tuple[str, str], list[RunState]] = {}
    for s in states:
        configurations.setdefault(s.configuration, []).append(s)
    for (config, label), seeds in sorted(configurations.items(), key=lambda item: item[0][1]):
        count = f"{len(seeds)} seed{'' if len(seeds) == 1 else 's'}"
        lines.append(f"  {config}  {label}: {count}: {_counts(seeds)}; {generations_shown(seeds)}")
        lines += [_run_line(s) for s in sorted(seeds, key=lambda s: s.run.seed) if every_run or s.state in _WRONG]
    return "\n".join(lines)
