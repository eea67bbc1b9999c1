"""The ``local`` executor: a pool of worker processes on this machine (the default).

Workers are started with "spawn", so they import what they need afresh, and each limits its
math libraries to its share of the cores so that parallel runs do not oversubscribe them.
At most one task per worker is in flight, so when a worker dies (killed, out of memory) the
suspects are exactly the tasks that were running; each suspect is then retried alone in a
fresh one-worker pool, so a death is blamed on the task that causes it, and a task that keeps
killing its worker is reported lost after ``retries`` retries.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from benchmark.api.components import Executor, R, T, TaskLost
from benchmark.api.hookspecs import hookimpl
from benchmark.api.params import Param

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _limit_threads(threads: int) -> None:
    # Runs first in each worker, before numpy or torch load, so their thread pools size from these.
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)


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
            initializer=_limit_threads,
            initargs=(self.threads_per_run,),
        )

    def _run_window(self, fn: Callable[[T], R], pending: deque, workers: int) -> Iterator[R | list[T]]:
        """Run pending tasks, ``workers`` at a time, until done or the pool breaks; then yield the suspects."""
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
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R | TaskLost]:
        pending = deque(tasks)
        while pending:
            suspects: list[T] = []
            for item in self._run_window(fn, pending, min(self.workers, len(pending))):
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
