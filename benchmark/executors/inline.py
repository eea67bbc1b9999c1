"""The ``inline`` executor: every run in this process, one after the other (for debugging and tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from benchmark.api.components import Executor, R, T
from benchmark.api.hookspecs import hookimpl


class InlineExecutor(Executor):
    """Runs in this process, one at a time: simplest to debug (pdb, prints, profilers work)."""

    name = "inline"
    in_process = True

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        for task in tasks:
            yield fn(task)


@hookimpl
def register_executors(register):
    register(InlineExecutor)
