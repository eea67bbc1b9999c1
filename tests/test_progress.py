"""A grid's progress costs file operations linear in its runs, and a log without a terminal shows each generation.

Costs are counted (calls of ``Store.finished_generations``, listings of ``STORE/runs``), never timed. The
store is polled after every stored generation, the worst case for the poller, instead of by the clock.
"""

from __future__ import annotations

import io
import re

import pytest
from conftest import grid_doc

from benchmark.executors.inline import InlineExecutor
from benchmark.run import harness, progress
from benchmark.run.spec import parse_grid
from benchmark.run.store import RunStatus, Store

GENERATIONS = 3


def _grid(registry, seeds: int):
    return parse_grid(grid_doc(name="many", generations=GENERATIONS, seeds=list(range(seeds))), registry)


def _run_polled(registry, tmp_path, monkeypatch, seeds: int, *, bar: bool) -> tuple[dict[str, int], str]:
    """Run a grid of ``seeds`` tiny runs, polling the store after every stored generation and never by the clock.

    Returns the counted operations and what the progress printed."""
    counts = {"finished_generations": 0, "runs listings": 0}
    shown = io.StringIO()
    made: list[progress.Progress] = []
    with monkeypatch.context() as patch:  # undone before the next grid, so counters never stack
        patch.setattr(progress, "POLL_SECONDS", 1e9)  # the clock never triggers a poll

        def made_here(*args, **kwargs) -> progress.Progress:
            made.append(progress.Progress(*args, **kwargs, stream=shown))
            return made[-1]

        patch.setattr(harness, "Progress", made_here)
        finished_generations, commit, scandir = Store.finished_generations, Store.commit, progress._list

        def counted_finished(self, run_id):
            counts["finished_generations"] += 1
            return finished_generations(self, run_id)

        def commit_then_poll(self, run_id, result):
            commit(self, run_id, result)
            made[-1].poll()

        def counted_scandir(path):
            counts["runs listings"] += 1
            return scandir(path)

        patch.setattr(Store, "finished_generations", counted_finished)
        patch.setattr(Store, "commit", commit_then_poll)
        patch.setattr(progress, "_list", counted_scandir)
        grid = _grid(registry, seeds)
        summary = harness.run_grid(grid, Store(tmp_path / f"store-{seeds}"), InlineExecutor(), registry, progress=bar)
        assert summary.counts[RunStatus.DONE] == seeds
        assert made[-1].counter.finished == seeds * (GENERATIONS + 1)  # counted right, not just cheaply
    return counts, shown.getvalue()


@pytest.mark.parametrize("bar", [True, False], ids=["bar", "log"])
def test_progress_costs_grow_linearly_with_the_runs(registry, tmp_path, monkeypatch, bar):
    small, _ = _run_polled(registry, tmp_path, monkeypatch, 6, bar=bar)
    large, _ = _run_polled(registry, tmp_path, monkeypatch, 24, bar=bar)
    # One poll per stored generation, one listing of STORE/runs per poll: exactly linear.
    assert small["runs listings"] == 6 * (GENERATIONS + 1) and large["runs listings"] == 24 * (GENERATIONS + 1)
    # Per run, the same number of folder listings whatever the grid's size (a rescan of every run after each
    # finished run, as before, makes it grow with the number of runs: 4x the runs, about 4x per run).
    assert large["finished_generations"] / 24 <= small["finished_generations"] / 6, (small, large)
    # At most: a few by the worker per run, and one per poll by the progress (the run's own folder changed).
    assert large["finished_generations"] <= 24 * (4 + GENERATIONS + 1), large


def test_a_log_without_a_terminal_shows_each_run_s_generations_as_they_finish(registry, tmp_path, monkeypatch):
    _, shown = _run_polled(registry, tmp_path, monkeypatch, 3, bar=False)
    lines = shown.splitlines()
    grid = _grid(registry, 3)
    line = re.compile(r"  generation (\d+)/(\d+): (.+) \((\d+\.\d) s\)")
    for position, run in enumerate(grid.runs):
        ended = lines.index(f"[{position + 1}/3] done: {run.label}")
        seen = [line.fullmatch(text) for text in lines[:ended] if text.endswith(")") and f": {run.label} (" in text]
        assert seen and all(seen), lines
        generations = [int(m.group(1)) for m in seen if m]
        assert generations[0] == 0, lines  # its first generation shows before the run ends
        assert generations == sorted(set(generations)) and generations[-1] <= GENERATIONS
        assert all(m.group(2) == str(GENERATIONS) for m in seen if m)  # g/G as the grid file counts generations


def test_the_bar_prints_no_lines_per_generation(registry, tmp_path, monkeypatch):
    _, shown = _run_polled(registry, tmp_path, monkeypatch, 2, bar=True)
    assert "generation 0/" not in shown and "] done:" not in shown
    assert f"{2 * (GENERATIONS + 1)}/{2 * (GENERATIONS + 1)}" in shown  # the bar ends full
