"""What a grid has done so far, shown while it runs: a bar on a terminal, a line per generation in a log.

Any executor can run the grid (other processes, other machines), so progress is read from the store.
It is counted incrementally, so its cost grows linearly with the number of runs:

* a run that ended is counted from the outcome the harness receives (no file read);
* a run that has begun and not ended is counted by listing its folder, and only when the folder
  changed since the last look (its mtime: a generation is stored by a rename into it);
* a run that has not begun costs nothing beyond its name in the one listing of ``STORE/runs`` a poll makes.

The poller also spaces its polls so that it never takes more than 1/``_DUTY`` of the time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

from benchmark.files import read_json
from benchmark.run.spec import RunSpec
from benchmark.run.store import Store

#: How a poll lists STORE/runs (tests count its calls).
_list = os.scandir
#: Seconds between two looks at the store, at least.
POLL_SECONDS = 0.5
#: A poll that took d seconds is followed by a pause of at least _DUTY * d.
_DUTY = 50


@dataclass(frozen=True)
class GenerationEvent:
    """A run's newest finished generation, seen in the store while the run goes on."""

    run: RunSpec
    generation: int
    #: The generation's own seconds (policy, fit, sample, metrics), from its record; None if unreadable.
    seconds: float | None


class GenerationCounter:
    """Finished generations of a grid's runs, counted incrementally from outcomes and changed run folders."""

    def __init__(self, store: Store, runs: Iterable[RunSpec]) -> None:
        self.store = store
        self.runs = {r.run_id: r for r in runs}
        self.total = sum(r.generations + 1 for r in self.runs.values())
        self._counts = dict.fromkeys(self.runs, 0)
        self._ended: set[str] = set()
        self._seen: dict[str, int] = {}  # run id -> its folder's mtime when last listed
        self._lock = threading.Lock()

    @property
    def finished(self) -> int:
        """Finished generations of the grid's runs (each run counted up to what the grid asks of it)."""
        with self._lock:
            return sum(self._counts.values())

    def _raise(self, run_id: str, generations: int) -> bool:
        """Count ``generations`` finished for the run if that is more than known; True if it was."""
        count = min(generations, self.runs[run_id].generations + 1)
        if count <= self._counts[run_id]:
            return False
        self._counts[run_id] = count
        return True

    def run_ended(self, run_id: str, generations: int) -> None:
        """The harness received the run's outcome: count it from there and never list its folder again."""
        with self._lock:
            self._ended.add(run_id)
            self._raise(run_id, generations)

    def poll(self) -> list[GenerationEvent]:
        """Look at the store once; return the runs (begun, not ended) whose newest finished generation is new."""
        runs_dir = self.store.root / "runs"
        try:
            with _list(runs_dir) as entries:
                begun = [e.name for e in entries if e.name in self.runs]
        except FileNotFoundError:
            return []
        events = []
        for run_id in begun:
            if run_id in self._ended:
                continue
            try:
                changed = os.stat(runs_dir / run_id).st_mtime_ns
            except FileNotFoundError:
                continue
            if self._seen.get(run_id) == changed:
                continue
            self._seen[run_id] = changed
            stored = len(self.store.finished_generations(run_id))
            with self._lock:
                new = run_id not in self._ended and self._raise(run_id, stored)
            if new:
                events.append(GenerationEvent(self.runs[run_id], stored - 1, self._seconds(run_id, stored - 1)))
        return events

    def _seconds(self, run_id: str, generation: int) -> float | None:
        path = self.store.run_dir(run_id) / f"gen-{generation:04d}" / "record.json"
        try:
            return float(sum(read_json(path)["seconds"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


class Progress:
    """A grid's progress on stderr: a bar over generations on a terminal (``bar``), else one line per
    generation seen and one per finished run, so a log shows life."""

    def __init__(self, store: Store, runs: list[RunSpec], *, bar: bool, stream: IO[str] | None = None) -> None:
        self.counter = GenerationCounter(store, runs)
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._bar = None
        self._thread: threading.Thread | None = None
        if not self.counter.total:
            return
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.counter.total, unit="gen", desc="generations", file=self.stream, dynamic_ncols=True
            )
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self, clock: Callable[[], float] = time.perf_counter) -> None:
        pause = POLL_SECONDS
        while not self._stop.wait(pause):
            start = clock()
            self.poll()
            pause = max(POLL_SECONDS, _DUTY * (clock() - start))

    def poll(self) -> None:
        """One look at the store: the bar moves, or a line per run with a new generation."""
        events = self.counter.poll()
        if self._bar is not None:
            self._refresh()
            return
        for event in events:
            run = event.run
            took = "" if event.seconds is None else f" ({event.seconds:.1f} s)"
            print(f"  generation {event.generation}/{run.generations}: {run.label}{took}", file=self.stream, flush=True)

    def _refresh(self) -> None:
        """Move the bar to the count; tqdm redraws it at most every ``mininterval`` (0.1 s), not once per run."""
        if self._bar is not None:
            self._bar.update(self.counter.finished - self._bar.n)

    def run_finished(self, run_id: str, generations: int, *, said: str, done: int, total: int) -> None:
        """The harness received the ``done``-th of ``total`` outcomes: ``run_id`` ended with ``generations``
        stored, as ``said`` (its status and label)."""
        self.counter.run_ended(run_id, generations)
        if self._bar is not None:
            self._bar.set_postfix_str(f"runs {done}/{total}", refresh=False)
            self._refresh()
        else:
            print(f"[{done}/{total}] {said}", file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._refresh()
            self._bar.refresh()
            self._bar.close()
