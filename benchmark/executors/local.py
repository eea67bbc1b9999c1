"""The ``local`` executor: a pool of worker processes on this machine (the default).

Workers are started with "spawn", so they import what they need afresh, and each limits its
math libraries to its share of the cores so that parallel runs do not oversubscribe them.
At most one task per worker is in flight, so when a worker dies (killed, out of memory) the
suspects are exactly the tasks that were running; each suspect is then retried alone in a
fresh one-worker pool, so a death is blamed on the task that causes it, and a task that keeps
killing its worker is reported lost after ``retries`` retries.

Workers never outlive the runner. Each asks the kernel to kill it when its parent dies (Linux's
parent-death signal; elsewhere a thread watches the parent), so a runner killed by SIGKILL leaves
no worker behind. A runner interrupted (SIGINT, SIGTERM: ``KeyboardInterrupt`` in the runner) or
whose map is closed early kills its workers at once: a generation in flight is never committed
(the store renames a generation into place whole), and its temporary folder is removed when the
run resumes. Workers ignore SIGINT, so Ctrl-C in a terminal stops the runner, which then ends them.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from benchmark.api.components import Executor, R, T, TaskLost
from benchmark.api.hookspecs import hookimpl
from benchmark.api.params import Param

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


#: prctl's option for the signal a process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the parent where the kernel cannot signal its death.
_PARENT_POLL_SECONDS = 0.5


def _start_worker(threads: int, parent: int) -> None:
    """Runs first in each worker: sizes the math libraries' thread pools (before numpy or torch load, so
    they read it), leaves SIGINT to the runner, and ties the worker's life to the runner's."""
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    # Ctrl-C, a closed terminal (SIGHUP) and `timeout` or a scheduler signalling the whole group reach every
    # process: the runner decides, and ends its workers itself.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    _end_with_parent(parent)


def _end_with_parent(parent: int) -> None:
    """Die when process ``parent`` (the runner that started this worker) dies, however it dies."""
    if not _parent_death_signal(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()
    if os.getppid() != parent:  # the runner died before the signal was armed: it will never come
        os._exit(1)


def _parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False where that is not possible.

    The kernel sends it when the thread that started this process ends: the thread iterating the
    executor's ``map``, which outlives the pool.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """The portable fallback: once this process has been handed to another parent, end it."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's workers now, runs in flight included (the pool has no public way to)."""
    for process in list((pool._processes or {}).values()):
        with contextlib.suppress(ProcessLookupError, ValueError):  # already gone, or already closed
            process.kill()


def cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LocalExecutor(Executor):
    """A pool of worker processes on this machine; workers default to the number of cores."""

    name = "local"
    parameters = {
        "workers": Param(None, int, "worker processes (default: one per core)", low=1, optional=True),
        "retries": Param(2, int, "times a task whose worker died is tried again, alone", low=0),
    }

    @property
    def workers(self) -> int:
        return self.params["workers"] or cores()

    @property
    def threads_per_run(self) -> int:
        return max(1, cores() // self.workers)

    def _pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.threads_per_run, os.getpid()),
        )

    def _run_window(self, fn: Callable[[T], R], pending: deque, workers: int) -> Generator[R | list[T], None, None]:
        """Run pending tasks, ``workers`` at a time, until done or the pool breaks; then yield the suspects.

        Stopped early (interrupted, or closed by the caller), it kills its workers rather than wait for them.
        """
        pool = self._pool(workers)
        in_flight: dict[Future, T] = {}
        try:
            while pending or in_flight:
                while pending and len(in_flight) < workers:
                    try:
                        future = pool.submit(fn, pending[0])
                    except BrokenProcessPool:  # a worker died since the last wait: the in-flight tasks are suspects
                        yield list(in_flight.values())
                        return
                    in_flight[future] = pending.popleft()
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                broken = False
                for future in finished:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    del in_flight[future]
                    yield result
                if broken:
                    yield list(in_flight.values())
                    return
        except BaseException:  # KeyboardInterrupt (SIGINT, SIGTERM) or GeneratorExit: stop now
            _kill_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R | TaskLost]:
        pending = deque(tasks)
        while pending:
            suspects: list[T] = []
            with contextlib.closing(self._run_window(fn, pending, min(self.workers, len(pending)))) as window:
                for item in window:  # closing: a caller that stops early stops the pool now, not when collected
                    if isinstance(item, list):
                        suspects = item
                    else:
                        yield item
            for task in suspects:
                yield from self._alone(fn, task)

    def _alone(self, fn: Callable[[T], R], task: T) -> Iterator[R | TaskLost]:
        """Run a suspect by itself (1 + retries times at most), so a death is blamed on the task that causes it."""
        attempts = self.params["retries"] + 1
        for _ in range(attempts):
            items = list(self._run_window(fn, deque([task]), 1))
            if not isinstance(items[0], list):
                yield items[0]
                return
        yield TaskLost(task, f"worker process died ({attempts} attempts alone)")


@hookimpl
def register_executors(register):
    register(LocalExecutor)
