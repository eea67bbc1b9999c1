"""Runs a grid: hands each run to an executor, and each worker computes it against the store.

The unit of work is one run, or a group of runs that differ only by seed when their family trains
seeds together (``fit_together``; the grid's ``batch_seeds`` setting, on by default, and the device
decide how many per group): the group advances generation by generation in lock step, each run
computed and stored exactly as alone (benchmark/run/together.py). A worker claims the run's lock,
skips it when the store already holds its outcome, resumes from its last finished generation
otherwise, and records how it ended.
A run that raises is recorded as failed (with its traceback) and the grid goes on. An interrupted
grid (KeyboardInterrupt) stops its executor and raises ``Interrupted`` saying how much is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from benchmark.api.components import Executor, TaskLost
from benchmark.api.plugins import default_registry
from benchmark.api.registry import Registry
from benchmark.errors import Diverged, Interrupted, StoreError
from benchmark.run.environment import describe_environment, unchanged_since
from benchmark.run.loop import Resume, generations
from benchmark.run.progress import Progress
from benchmark.run.spec import GridSpec, RunSpec, run_spec_from_dict
from benchmark.run.store import RunStatus, Store
from benchmark.run.together import BatchedFitFailed, fits_together, lock_step, together_key

#: Outcomes ``--retry-failed`` runs again.
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.DIVERGED, RunStatus.TIMED_OUT})


@dataclass(frozen=True)
class RunTask:
    """A run as plain data, so it can cross process and machine boundaries."""

    store: str
    run: Mapping[str, Any]
    retry_failed: bool = False
    threads: int | None = None
    #: Seconds the run may take in this attempt before it is recorded as timed out.
    timeout: float | None = None


@dataclass(frozen=True)
class GroupTask:
    """Runs that differ only by seed, as plain data: computed in lock step as one batched model."""

    store: str
    runs: tuple[Mapping[str, Any], ...]
    retry_failed: bool = False
    threads: int | None = None
    #: Seconds each run may take in this attempt; the group may take that times its number of runs.
    timeout: float | None = None


class RunTimeout(BaseException):
    """The run exceeded its time limit (a BaseException, so a plugin's ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None, on_expiry: Callable[[], None]) -> Iterator[None]:
    """Interrupt the block after ``seconds``.

    In a process's main thread (inline, local, submitit) an alarm raises RunTimeout inside the
    run, which then ends like any failure. Elsewhere (dask worker threads) nothing can interrupt
    the thread, so a watchdog calls ``on_expiry``, which records the timeout and ends the process.
    """
    if seconds is None:
        yield
        return
    if threading.current_thread() is threading.main_thread():

        def alarm(signum, frame):
            raise RunTimeout(f"exceeded the {seconds:g} s timeout")

        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:
        watchdog = threading.Timer(seconds, on_expiry)
        watchdog.daemon = True
        watchdog.start()
        try:
            yield
        finally:
            watchdog.cancel()


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as ``execute_run`` reports it."""

    run_id: str
    label: str
    status: RunStatus
    #: Generations stored for the run when it ended.
    generations: int
    reason: str = ""
    #: False when the store already held the outcome and nothing was computed.
    computed: bool = True


@dataclass(frozen=True)
class RunBusy:
    """``execute_run``'s answer when another process holds the run's lock: nothing was done, ask again later."""

    run_id: str


def stored_outcome(store: Store, run: RunSpec, *, computed: bool = False) -> RunOutcome | None:
    """The stored outcome of ``run`` if it needs no more work, else None (pending: never run, interrupted,
    or done with fewer generations than ``run`` asks for)."""
    status = store.status(run.run_id)
    finished = store.finished_generations(run.run_id)
    if status is None:
        return None
    if status["status"] == RunStatus.DONE and len(finished) < run.generations + 1:
        return None  # the grid asks for more generations than were run: continue
    return RunOutcome(run.run_id, run.label, status["status"], len(finished), status.get("reason", ""), computed)


def execute_run(task: RunTask, registry: Registry | None = None) -> RunOutcome | RunBusy:
    """Compute one run to its end (or find it already done). Safe to call from any worker, any number of times."""
    registry = registry or default_registry()
    store = Store(task.store)
    store.check(create=False)  # a worker that cannot see the store must not start a new one of its own
    run = run_spec_from_dict(task.run)
    with store.claim(run.run_id) as claimed:
        if not claimed:
            return RunBusy(run.run_id)
        for problem in store.repair(run.run_id).problems:  # damaged files are set aside and computed again
            print(f"retrainbench: note: {problem}; set aside in {store.root / 'quarantine'}", file=sys.stderr)
        known = stored_outcome(store, run, computed=False)
        if known is not None and not (task.retry_failed and known.status in RETRYABLE):
            return known
        store.clear_status(run.run_id)
        description = run.describe()
        store.begin(description)
        status, reason, trace = RunStatus.DONE, "", ""

        def give_up() -> None:  # the watchdog's last resort: record, then end the stuck process
            store.finish(
                run.run_id,
                RunStatus.TIMED_OUT,
                generations=run.generations,
                reason=f"exceeded the {task.timeout:g} s timeout",
            )
            os._exit(70)

        try:
            with _deadline(task.timeout, give_up):
                _continue_alone(store, registry, run, description, threads=task.threads)
        except Diverged as exc:
            status, reason = RunStatus.DIVERGED, str(exc)
        except RunTimeout as exc:
            if len(store.finished_generations(run.run_id)) < run.generations + 1:  # else it fired after the end
                status, reason = RunStatus.TIMED_OUT, str(exc)
        except Exception as exc:  # a plugin's bug is a result of the run, not the end of the grid
            status, reason, trace = RunStatus.FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        done = len(store.finished_generations(run.run_id))
        store.finish(run.run_id, status, generations=run.generations, reason=reason, traceback=trace)
        return RunOutcome(run.run_id, run.label, status, done, reason)


def _continue_alone(
    store: Store, registry: Registry, run: RunSpec, description: Mapping[str, Any], *, threads: int | None
) -> None:
    """Compute ``run`` (claimed) from its last stored generation to its end, committing each generation."""
    resume = store.resume_point(run.run_id)
    for result in generations(run, registry, resume, threads=threads, cache_dir=store.cache_dir):
        store.commit(run.run_id, result)
        registry.hook.on_generation_end(run=description, record=result.record)


def execute_group(task: GroupTask, registry: Registry | None = None) -> list[RunOutcome | RunBusy]:
    """Compute runs of one ``together_key`` together (or find them done): each run's outcome, as ``execute_run``
    would give it alone. Runs stored up to different generations continue in sub-groups, one after the other."""
    registry = registry or default_registry()
    store = Store(task.store)
    store.check(create=False)
    runs = [run_spec_from_dict(r) for r in task.runs]
    answers: dict[str, RunOutcome | RunBusy] = {}
    with contextlib.ExitStack() as claims:
        todo: list[RunSpec] = []
        for run in runs:
            if not claims.enter_context(store.claim(run.run_id)):
                answers[run.run_id] = RunBusy(run.run_id)
                continue
            for problem in store.repair(run.run_id).problems:
                print(f"retrainbench: note: {problem}; set aside in {store.root / 'quarantine'}", file=sys.stderr)
            known = stored_outcome(store, run, computed=False)
            if known is not None and not (task.retry_failed and known.status in RETRYABLE):
                answers[run.run_id] = known
                continue
            store.clear_status(run.run_id)
            store.begin(run.describe())
            todo.append(run)
        resumes: dict[str, Resume | None] = {}
        for run in todo:
            try:
                resumes[run.run_id] = store.resume_point(run.run_id)
            except Exception as exc:  # a damaged stored generation: the run fails alone, as it would alone
                answers[run.run_id] = _finish(store, run, *_failure(exc))
        by_start: dict[int, list[RunSpec]] = {}
        for run in todo:
            if run.run_id in resumes:
                resume = resumes[run.run_id]
                by_start.setdefault(-1 if resume is None else resume.generation, []).append(run)
        for group in by_start.values():
            answers.update(_compute_group(store, registry, group, [resumes[r.run_id] for r in group], task))
    return [answers[run.run_id] for run in runs]


def _failure(exc: BaseException) -> tuple[RunStatus, str, str]:
    """(status, reason, traceback) of a run that raised ``exc``, as ``execute_run`` records them."""
    if isinstance(exc, Diverged):
        return RunStatus.DIVERGED, str(exc), ""
    return RunStatus.FAILED, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))


def _finish(store: Store, run: RunSpec, status: RunStatus, reason: str = "", trace: str = "") -> RunOutcome:
    store.finish(run.run_id, status, generations=run.generations, reason=reason, traceback=trace)
    return RunOutcome(run.run_id, run.label, status, len(store.finished_generations(run.run_id)), reason)


def _compute_group(
    store: Store, registry: Registry, runs: list[RunSpec], resumes: list[Resume | None], task: GroupTask
) -> dict[str, RunOutcome]:
    """Compute ``runs`` (claimed, resuming from one generation) in lock step; record each one's outcome."""
    ended: dict[str, tuple[RunStatus, str, str]] = {}
    descriptions = {run.run_id: run.describe() for run in runs}
    timeout = None if task.timeout is None else task.timeout * len(runs)

    def give_up() -> None:  # the watchdog's last resort (see execute_run)
        for run in runs:
            if run.run_id not in ended:
                store.finish(run.run_id, RunStatus.TIMED_OUT, generations=run.generations, reason=timed_out)
        os._exit(70)

    timed_out = f"exceeded the {timeout:g} s timeout of its group of {len(runs)} runs" if timeout else ""
    try:
        with _deadline(timeout, give_up):
            try:
                for i, result in lock_step(runs, registry, resumes, threads=task.threads, cache_dir=store.cache_dir):
                    run = runs[i]
                    if isinstance(result, Exception):
                        ended[run.run_id] = _failure(result)
                        continue
                    store.commit(run.run_id, result)
                    registry.hook.on_generation_end(run=descriptions[run.run_id], record=result.record)
            except BatchedFitFailed as split:
                # No one run is to blame: each goes on alone from its last stored generation, as it would alone.
                first = runs[0]
                same = len({r.config_id for r in runs}) == 1
                configuration = first.configuration_label if same else f"{first.dataset.label} / {first.model.label}"
                print(f"retrainbench: note: {configuration}: {split}; its runs go on one by one", file=sys.stderr)
                for run in runs:
                    if run.run_id not in ended:
                        try:
                            _continue_alone(store, registry, run, descriptions[run.run_id], threads=task.threads)
                        except Exception as exc:
                            ended[run.run_id] = _failure(exc)
    except RunTimeout as exc:
        for run in runs:
            if run.run_id not in ended and len(store.finished_generations(run.run_id)) < run.generations + 1:
                ended[run.run_id] = (RunStatus.TIMED_OUT, str(exc), "")
    except Exception as exc:  # the group's own machinery failed: every run still going fails with it
        for run in runs:
            ended.setdefault(run.run_id, _failure(exc))
    return {run.run_id: _finish(store, run, *ended.get(run.run_id, (RunStatus.DONE, "", ""))) for run in runs}


def execute_task(task: RunTask | GroupTask, registry: Registry | None = None) -> tuple[RunOutcome | RunBusy, ...]:
    """``execute_run`` or ``execute_group``: the outcomes of a task's runs (a tuple: the ``local`` executor
    reserves lists for its own signals)."""
    if isinstance(task, GroupTask):
        return tuple(execute_group(task, registry))
    return (execute_run(task, registry),)


#: Runs a group holds at most on a CPU. 8 seeds of the default 2-D DDPM, EDM and flow run 2.5x to 2.9x faster
#: together than one at a time, cfm's 1.3x; 32 or 64 gain little more per seed (scripts/bench_harness.py --only
#: seeds_together; README, Performance).
CPU_GROUP = 8


def seeds_per_task(device: str) -> int:
    """How many seeds of one configuration a task trains together on ``device`` (a grid's ``device`` setting).

    ``CPU_GROUP`` on a CPU. One on a GPU for now: bit-identity with the solo runs is tested on CPUs only
    (cuBLAS may round a batched product apart from the solo one, which ``batched_linear_form`` catches
    for linear layers, but other kernels are unchecked there); a GPU session sizes groups by memory once
    tests/test_batched_seeds.py passes with ``device = "cuda"``.
    """
    if device in ("cpu", "mps"):
        return CPU_GROUP if device == "cpu" else 1
    import torch  # only grids of families that train seeds together get here, and those need torch

    return 1 if torch.cuda.is_available() else CPU_GROUP


def plan_tasks(
    runs: list[RunSpec],
    registry: Registry,
    *,
    batch_seeds: bool,
    make_run: Callable[[RunSpec], RunTask],
    make_group: Callable[[list[RunSpec]], GroupTask],
    workers: int = 1,
) -> list[RunTask | GroupTask]:
    """One task per run, except that runs whose family trains them together share tasks (when ``batch_seeds``):
    the seeds of one configuration, and its policies too where the family declares ``trains_together_across``
    (``together_key``); up to ``seeds_per_task`` runs a task, and no more than leaves a task for each of the
    executor's ``workers``. Tasks keep the order of their first runs."""
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        family = registry.get("model", run.model.name).component
        together = batch_seeds and fits_together(family)
        groups.setdefault(together_key(run, family) if together else run.run_id, []).append(run)
    tasks: list[RunTask | GroupTask] = []
    for members in groups.values():
        size = min(seeds_per_task(members[0].device), -(-len(runs) // workers)) if len(members) > 1 else 1
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            tasks.append(make_group(chunk) if len(chunk) > 1 else make_run(chunk[0]))
    return tasks


@dataclass
class GridSummary:
    outcomes: list[RunOutcome] = field(default_factory=list)

    @property
    def counts(self) -> Counter[RunStatus]:
        return Counter(o.status for o in self.outcomes)

    #: Runs never started because --fail-fast stopped the grid.
    not_run: int = 0

    @property
    def failed(self) -> list[RunOutcome]:
        """Runs that did not produce their result: failed (exceptions, dead workers) or timed out."""
        return [o for o in self.outcomes if o.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)]

    def describe(self) -> str:
        counts = self.counts
        reused = sum(1 for o in self.outcomes if not o.computed)
        parts = [f"{len(self.outcomes)} runs: {counts.get(RunStatus.DONE, 0)} done"]
        for status in (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.TIMED_OUT):
            if counts.get(status):
                parts.append(f"{counts[status]} {status}")
        if reused:
            parts.append(f"{reused} already in the store")
        if self.not_run:
            parts.append(f"{self.not_run} not run (--fail-fast)")
        lines = [", ".join(parts)]
        for o in self.outcomes:
            if o.status in RETRYABLE:
                lines.append(f"  {o.status}: {o.label} ({o.run_id}): {o.reason}")
        return "\n".join(lines)


def run_grid(
    grid: GridSpec,
    store: Store,
    executor: Executor,
    registry: Registry,
    *,
    retry_failed: bool = False,
    timeout: float | None = None,
    fail_fast: bool = False,
    progress: bool | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> GridSummary:
    """Run every run of ``grid`` on ``executor``, storing results in ``store``.

    ``timeout`` limits each run's seconds per attempt; ``fail_fast`` stops at the first failed run.
    ``progress``: a bar (True), a line per generation and per run (False), or a bar only on a terminal (None).
    """
    store.check(create=True)
    recorded = None
    with contextlib.suppress(StoreError):  # a damaged record of the grid is simply written again
        recorded = store.grids().get(grid.name, {}).get("environment")
    store.record_grid(
        grid.name,
        grid.source,
        grid.path,
        [r.run_id for r in grid.runs],
        max(r.generations for r in grid.runs),
        unchanged_since(recorded, describe_environment(executor, registry)),
    )
    runs = list({r.run_id: r for r in grid.runs}.values())
    threads = getattr(executor, "threads_per_run", None)
    root = str(store.root.resolve())  # workers elsewhere (dask, SLURM) may start in another directory

    def run_task(run: RunSpec) -> RunTask:
        return RunTask(root, run.describe(), retry_failed, threads, timeout)

    def group_task(group: list[RunSpec]) -> GroupTask:
        return GroupTask(root, tuple(r.describe() for r in group), retry_failed, threads, timeout)

    tasks: list[RunTask | GroupTask] = plan_tasks(
        runs,
        registry,
        batch_seeds=getattr(grid, "batch_seeds", True),
        make_run=run_task,
        make_group=group_task,
        workers=getattr(executor, "workers", None) or 1,
    )
    if threads is not None and threads > 1 and any(isinstance(t, GroupTask) for t in tasks):
        print(
            f"retrainbench: note: each run gets {threads} torch threads, so the runs of a configuration fit one by "
            "one: they train together as one batched model only on one thread each (a worker per core)",
            file=sys.stderr,
        )
    fn = partial(execute_task, registry=registry) if getattr(executor, "in_process", False) else execute_task
    bar = Progress(store, runs, bar=sys.stderr.isatty() if progress is None else progress)
    summary = GridSummary()
    by_id = {r.run_id: r for r in runs}

    def finished(outcome: RunOutcome) -> None:
        summary.outcomes.append(outcome)
        said = f"{outcome.status}: {outcome.label}"
        bar.run_finished(outcome.run_id, outcome.generations, said=said, done=len(summary.outcomes), total=len(runs))
        if on_outcome is not None:
            on_outcome(outcome)

    outcomes: Iterator[tuple[RunOutcome | RunBusy, ...] | TaskLost] = iter(())
    try:
        todo = tasks
        while todo:
            outcomes = executor.map(fn, todo)
            busy = []
            for answer in outcomes:
                if isinstance(answer, TaskLost):
                    for lost in _task_runs(answer.task):
                        finished(_record_lost(store, by_id[lost["run_id"]], answer.reason))
                    answer = ()
                for outcome in answer:
                    if isinstance(outcome, RunBusy):
                        busy.append(by_id[outcome.run_id])  # another process holds it: come back at the end
                    else:
                        finished(outcome)
                if fail_fast and summary.failed:
                    _stop(outcomes)
                    summary.not_run = len(runs) - len(summary.outcomes)
                    return summary
            for waiting in busy:  # wait until the other process lets go, then hand the run to the executor again
                with store.claim(waiting.run_id, wait=True):
                    pass
            todo = [run_task(waiting) for waiting in busy]
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM / SIGHUP where the CLI turned them into Interrupted
        _stop(outcomes)
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        # Counted in the store once the workers are stopped: a worker can finish a run whose outcome never
        # reached this process, and what is stored is what a resume reuses.
        done = sum(1 for r in runs if store.status(r.run_id) is not None)
        detail = f"{done} runs finished, {len(runs) - done} unfinished; rerun the same command to resume"
        raise Interrupted(signum, detail) from None
    finally:
        bar.close()
    return summary


def _task_runs(task: Any) -> tuple[Mapping[str, Any], ...]:
    """The runs (as stored dicts) a task was computing."""
    return task.runs if isinstance(task, GroupTask) else (task.run,)


def _stop(outcomes: Iterator[Any]) -> None:
    """Stop an executor's map now: it cancels what has not started (``local`` also ends what is running)."""
    close = getattr(outcomes, "close", None)
    if callable(close):
        close()


def _record_lost(store: Store, run: RunSpec, reason: str) -> RunOutcome:
    """A task whose worker died: failed, unless the worker stored an outcome before it died."""
    with store.claim(run.run_id, wait=True):
        known = stored_outcome(store, run, computed=True)
        if known is not None and known.status != RunStatus.FAILED:
            return known
        store.finish(run.run_id, RunStatus.FAILED, generations=run.generations, reason=reason)
    return RunOutcome(run.run_id, run.label, RunStatus.FAILED, len(store.finished_generations(run.run_id)), reason)
