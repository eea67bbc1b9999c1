"""Signals: a runner stopped by SIGTERM, SIGINT or SIGKILL (to its PID only) leaves no process behind,
says it was interrupted, and resumes to the results of a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import clean_env, run_benchmark, write_resume_grid

from benchmark.executors.local import LocalExecutor

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

#: A bound on how long the processes of a stopped run may linger (they otherwise live forever), not a measurement.
GONE_WITHIN_SECONDS = 15.0


def process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, session id) of process ``pid`` from /proc, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (command)": state, ppid, pgrp, session, ...
    return fields[0], int(fields[3])


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not run)."""
    state = process_state(pid)
    return state is not None and state[0] not in "ZX"


def session_processes(session: int) -> list[str]:
    """Pid and command line of every live process of ``session`` (the runner's own session: it and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        state = process_state(int(entry.name))
        if state is not None and state[1] == session and state[0] not in "ZX":
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append(f"{entry.name}: {command[:120]}")
    return found


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def committed_generations(store: Path) -> int:
    return len(list(store.glob("runs/*/gen-*")))


def results(store: Path, out: Path) -> pd.DataFrame:
    """results.csv as ``report`` writes it for ``store``."""
    done = run_benchmark(["report", "--store", store, "--out", out], cwd=out.parent)
    assert done.code == 0, done.err
    return pd.read_csv(out / "results.csv")


@pytest.fixture(scope="module")
def grid_and_clean_results(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """8 runs of 7 generations on analytic families (a few seconds on two workers), and a clean run's results."""
    tmp = tmp_path_factory.mktemp("clean")
    grid = write_resume_grid(tmp / "grid.toml", generations=6)
    done = run_benchmark(["run", grid, "--store", tmp / "store", "--executor", "inline", "--no-progress"], cwd=tmp)
    assert done.code == 0, done.err
    return grid, results(tmp / "store", tmp / "report")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)]
)
def test_a_signal_to_the_runner_alone_leaves_no_process_and_the_run_resumes(
    tmp_path, grid_and_clean_results, signum, exit_code
):
    grid, clean = grid_and_clean_results
    store = tmp_path / "store"
    command = [sys.executable, "-m", "benchmark", "run", str(grid), "--store", str(store)]
    command += ["--executor", "local", "--workers", "2", "--no-progress"]
    log = tmp_path / "runner.log"  # not a pipe: workers left behind would hold it open
    with open(log, "w") as out:
        runner = subprocess.Popen(
            command, cwd=tmp_path, env=clean_env(), stdout=out, stderr=out,
            start_new_session=True,  # its own session: its workers are found by it; a signal reaches the runner only
        )  # fmt: skip
    try:
        assert wait_until(lambda: committed_generations(store) > 0 or runner.poll() is not None, 120)
        os.kill(runner.pid, signum)
        runner.wait(timeout=60)
        err = log.read_text()
        assert wait_until(lambda: not session_processes(runner.pid), GONE_WITHIN_SECONDS), session_processes(runner.pid)
    finally:
        if session_processes(runner.pid):  # the code under test failed: do not leave its workers to the machine
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == exit_code, err
    runs = clean["run_id"].nunique()
    finished = len(list(store.glob("runs/*/status.json")))
    assert finished < runs, "the signal must land mid-grid"
    if signum != signal.SIGKILL:
        name = signal.Signals(signum).name
        assert err.strip().splitlines()[-1] == (
            f"retrainbench: interrupted by {name}: {finished} runs finished, {runs - finished} unfinished; "
            "rerun the same command to resume"
        ), err

    resumed = subprocess.run(command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(store.glob("runs/*/.tmp-*")), "what was in flight must be discarded, not left half-written"
    pd.testing.assert_frame_equal(results(store, tmp_path / "report"), clean)


def _write_pid_then_wait(task: tuple[Path, float]) -> int:
    """A task for the local executor: say which worker runs it, take ``seconds``, then leave a mark."""
    folder, seconds = task
    (folder / f"started-{seconds:g}").write_text(str(os.getpid()))
    time.sleep(seconds)
    (folder / f"finished-{seconds:g}").touch()
    return os.getpid()


def test_stopping_a_local_map_early_ends_the_runs_in_flight(tmp_path):
    """What the harness does on SIGTERM or --fail-fast: closing the map kills the workers instead of waiting."""
    slow = 30.0  # the run that must never finish; the pool used to wait for it on close
    outcomes = LocalExecutor({"workers": 2}).map(_write_pid_then_wait, [(tmp_path, 0.0), (tmp_path, slow)])
    next(outcomes)
    assert wait_until(lambda: (tmp_path / f"started-{slow:g}").exists(), 60)
    worker = int((tmp_path / f"started-{slow:g}").read_text())
    outcomes.close()  # type: ignore[attr-defined]
    assert not alive(worker)
    assert not (tmp_path / f"finished-{slow:g}").exists()


ORPHAN = """
import os, signal, sys
from benchmark.executors import local

if {fallback}:
    local._parent_death_signal = lambda signum: False  # as on a system without prctl
runner = os.getpid()
worker = os.fork()
if worker == 0:
    local._end_with_parent(runner)
    print(os.getpid(), flush=True)
    signal.pause()
os.waitpid(worker, 0)
"""


@pytest.mark.parametrize("fallback", [False, True], ids=["parent-death-signal", "watching-thread"])
def test_a_worker_ends_when_its_runner_is_killed(tmp_path, fallback):
    runner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(ORPHAN.format(fallback=fallback))],
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        worker = int(runner.stdout.readline())  # type: ignore[union-attr]
        runner.kill()
        runner.wait()
        assert wait_until(lambda: not alive(worker), GONE_WITHIN_SECONDS)
    finally:
        if session_processes(runner.pid):
            os.killpg(runner.pid, signal.SIGKILL)


def test_a_worker_whose_runner_died_before_it_armed_the_signal_ends_at_once():
    """The race prctl leaves: the runner may die between the fork and the prctl call."""
    not_the_parent = os.getpid() + 1  # the child's parent is this process
    done = subprocess.run(
        [sys.executable, "-c", f"from benchmark.executors import local; local._end_with_parent({not_the_parent}); "
         "print('still running')"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (1, "", ""), done.stderr  # ended by the check, not a crash
