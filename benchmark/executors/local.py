"""The ``local`` executor: a pool of worker processes on this machine (the default).

Workers are started with "spawn", so they import what they need afresh, and each limits its
math libraries to its share of the cores so that parallel runs do not oversubscribe them.
A task whose worker dies (killed, out of memory) is retried in a new pool a bounded number of
times, then reported lost.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from benchmark.components import Executor, R, T, TaskLost
from benchmark.hookspecs import hookimpl
from benchmark.params import Param

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _limit_threads(threads: int) -> None:
    # Runs first in each worker, before numpy or torch load, so their thread pools size from these.
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LocalExecutor(Executor):
    """A pool of worker processes on this machine; workers default to the number of cores."""

    name = "local"
    parameters = {
        "workers": Param(None, int, "worker processes (default: one per core)", low=1, optional=True),
        "retries": Param(2, int, "times a task whose worker died is tried again", low=0),
    }

    @property
    def workers(self) -> int:
        return self.params["workers"] or _cores()

    @property
    def threads_per_run(self) -> int:
        return max(1, _cores() // self.workers)

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R | TaskLost]:
        pending = list(tasks)
        attempts = {id(task): 0 for task in pending}
        context = multiprocessing.get_context("spawn")
        while pending:
            lost: list[T] = []
            workers = min(self.workers, len(pending))
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads, initargs=(self.threads_per_run,)) as pool:
                futures = {pool.submit(fn, task): task for task in pending}
                while futures:
                    finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in finished:
                        task = futures.pop(future)
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            lost.append(task)
            pending = []
            for task in lost:
                attempts[id(task)] += 1
                if attempts[id(task)] > self.params["retries"]:
                    yield TaskLost(task, f"worker process died {attempts[id(task)]} times")
                else:
                    pending.append(task)


@hookimpl
def register_executors(register):
    register(LocalExecutor)
