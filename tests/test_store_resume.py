"""The store: determinism, resume after SIGKILL, two processes on one store, longer grids, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import grid_doc, run_benchmark, write_resume_grid

from benchmark.api.plugins import build_registry
from benchmark.errors import StoreError
from benchmark.report.leaderboard import results_frame
from benchmark.run.harness import RunBusy, RunTask, execute_run, run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import RunStatus, Store

VALUES = ["run_id", "generation", "metric", "value"]


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """The CLI in a child process left running: to kill it mid-grid, or to run two at once."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def values(store: Path) -> pd.DataFrame:
    return results_frame(Store(store))[VALUES].sort_values(VALUES[:3], ignore_index=True)


def stored_generations(store: Path) -> int:
    return len(list((store / "runs").glob("*/gen-*"))) if (store / "runs").exists() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """An uninterrupted run of the grid, in-process."""
    tmp = tmp_path_factory.mktemp("reference")
    grid = write_resume_grid(tmp / "grid.toml", generations=8)
    done = run_benchmark(["run", grid, "--store", tmp / "store", "--executor", "inline", "--no-progress"], cwd=tmp)
    assert done.code == 0, done.err
    return grid, values(tmp / "store")


def test_same_grid_and_seed_give_the_same_numbers(run_cli, tmp_path, reference):
    grid, expected = reference
    done = run_cli(["run", grid, "--store", tmp_path / "again", "--workers", "2", "--no-progress"])
    assert done.code == 0, done.err
    pd.testing.assert_frame_equal(values(tmp_path / "again"), expected)


@pytest.mark.slow
def test_sigkill_mid_grid_then_resume_matches_uninterrupted(tmp_path, reference):
    grid, expected = reference
    store = tmp_path / "store"
    total = len(expected[["run_id", "generation"]].drop_duplicates())
    proc = cli("run", str(grid), "--store", str(store), "--executor", "inline", "--no-progress")
    deadline = time.monotonic() + 120
    while stored_generations(store) < total // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = stored_generations(store)
    assert 0 < killed_at < total, "the kill must land mid-grid"
    partial = [
        run for run in (store / "runs").iterdir() if not (run / "status.json").exists() and any(run.glob("gen-*"))
    ]
    assert partial, "some run must have been interrupted between generations"

    resumed = cli("run", str(grid), "--store", str(store), "--executor", "inline", "--no-progress")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "already in the store" in out  # finished runs were skipped, not recomputed
    assert not list(store.glob("runs/*/.tmp-*")), "half-written generations must be cleaned up"
    pd.testing.assert_frame_equal(values(store), expected)


OBSERVER = """
import fcntl, os
from benchmark import hookimpl

@hookimpl
def on_generation_end(run, record):
    with open(os.environ["GENERATION_LOG"], "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(f"{os.getpid()} {run['run_id']} {record['generation']}\\n")
"""


@pytest.mark.slow
def test_two_processes_on_one_store_compute_each_generation_once(tmp_path, reference):
    grid, expected = reference
    (tmp_path / "generation_log_plugin.py").write_text(textwrap.dedent(OBSERVER))
    log = tmp_path / "generations.log"
    env = {
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "RETRAINBENCH_PLUGINS": "generation_log_plugin",
        "GENERATION_LOG": str(log),
    }
    store = tmp_path / "store"
    procs = [
        cli("run", str(grid), "--store", str(store), "--executor", "inline", "--no-progress", env=env) for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    lines = [line.split() for line in log.read_text().splitlines()]
    computed = [(run_id, gen) for _, run_id, gen in lines]
    assert len(computed) == len(set(computed)), "a generation was computed twice"
    assert len(computed) == len(expected[["run_id", "generation"]].drop_duplicates())
    assert len({pid for pid, _, _ in lines}) == 2, "both processes should have taken work"
    pd.testing.assert_frame_equal(values(store), expected)


def test_a_longer_grid_continues_a_shorter_one(run_cli, tmp_path, reference):
    _, expected = reference
    store = tmp_path / "store"
    for generations in (3, 8):
        grid = write_resume_grid(tmp_path / f"g{generations}.toml", generations)
        done = run_cli(["run", grid, "--store", store, "--executor", "inline", "--no-progress"])
        assert done.code == 0, done.err
    pd.testing.assert_frame_equal(values(store), expected)


def test_store_of_another_schema_is_refused(run_cli, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "store.json").write_text('{"schema": 999}')
    grid = write_resume_grid(tmp_path / "grid.toml", generations=1)
    code, _, err = run_cli(["run", grid, "--store", store, "--executor", "inline"])
    assert code == 2
    assert "schema 999" in err and str(store) in err
    assert sorted(p.name for p in store.iterdir()) == ["store.json"]


FAILING = '''
import numpy as np
from benchmark import hookimpl, ModelFamily
from plugins.families.analytic import GaussianFamily, GaussianModel

class Fragile(GaussianModel):
    def fit(self, data, *, warm_start, rng):
        if self.fails_at is not None and len(self.fits) == self.fails_at:
            raise RuntimeError("injected failure")
        self.fits.append(1)
        return super().fit(data, warm_start=warm_start, rng=rng)

class FragileFamily(GaussianFamily):
    """Gaussian that raises at the generation named by FAIL_AT (tests only)."""
    name = "fragile"
    def create(self, data, context):
        import os
        model = Fragile(data.sample_shape[0], 0, None)
        model.fits = []
        model.fails_at = int(os.environ["FAIL_AT"]) if os.environ.get("FAIL_AT") else None
        return model

@hookimpl
def register_model_families(register):
    register(FragileFamily)
'''


def test_failed_run_is_recorded_and_retried_on_request(tmp_path, monkeypatch):
    (tmp_path / "fragile_plugin.py").write_text(FAILING)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry(["fragile_plugin"])
    grid = parse_grid(
        grid_doc(
            name="fragile",
            generations=3,
            n_real=50,
            n_test=50,
            n_eval=50,
            models=[{"name": "fragile"}, {"name": "gaussian"}],
            metrics=[{"name": "mean-distance"}],
        ),
        registry,
    )
    store = Store(tmp_path / "store")
    executor = registry.get("executor", "inline").component()
    monkeypatch.setenv("FAIL_AT", "2")
    summary = run_grid(grid, store, executor, registry, progress=False)
    assert summary.counts == {RunStatus.FAILED: 1, RunStatus.DONE: 1}
    (failed,) = summary.failed
    assert failed.reason == "RuntimeError: injected failure" and failed.generations == 2
    status = store.status(failed.run_id)
    assert status["status"] is RunStatus.FAILED and "injected failure" in status["traceback"]
    assert store.finished_generations(failed.run_id) == [0, 1]

    # a rerun keeps the recorded failure; --retry-failed resumes it from generation 2
    again = run_grid(grid, store, executor, registry, progress=False)
    assert again.counts == {RunStatus.FAILED: 1, RunStatus.DONE: 1} and not any(o.computed for o in again.outcomes)
    monkeypatch.delenv("FAIL_AT")
    retried = run_grid(grid, store, executor, registry, retry_failed=True, progress=False)
    assert retried.counts == {RunStatus.DONE: 2}
    assert store.finished_generations(failed.run_id) == [0, 1, 2, 3]


def test_run_resumes_from_the_last_stored_generation_in_process(tmp_path):
    """Interrupt a run after two generations (as a crash would) and check the resumed chain is identical."""
    registry = build_registry()
    doc = grid_doc(
        name="chain",
        generations=6,
        seeds=[3],
        n_real=100,
        n_test=100,
        n_eval=100,
        datasets=[{"name": "moons"}],
        models=[{"name": "gmm", "params": {"components": 3}}],
        policies=[{"name": "accumulate"}],
        metrics=[{"name": "w2"}],
    )
    (run,) = parse_grid(doc, registry).runs
    whole, cut = Store(tmp_path / "whole"), Store(tmp_path / "cut")
    for store in (whole, cut):
        store.check(create=True)
    execute_run(RunTask(str(whole.root), run.describe()), registry)

    from benchmark.run.loop import generations

    with cut.claim(run.run_id):
        cut.begin(run.describe())
        for result in generations(run, registry):
            cut.commit(run.run_id, result)
            if result.generation == 2:
                break
    assert cut.finished_generations(run.run_id) == [0, 1, 2]
    execute_run(RunTask(str(cut.root), run.describe()), registry)
    assert cut.records(run.run_id)[3:] != []
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert strip(cut.records(run.run_id)) == strip(whole.records(run.run_id))


def test_run_statuses_are_stored_as_the_same_plain_strings(tmp_path):
    assert [s.value for s in RunStatus] == ["done", "failed", "diverged", "timed-out"]
    store = Store(tmp_path / "store")
    store.check(create=True)
    store.finish("run", RunStatus.TIMED_OUT, generations=3, reason="slow")
    path = store.run_dir("run") / "status.json"
    assert json.loads(path.read_text())["status"] == "timed-out"
    assert store.status("run")["status"] is RunStatus.TIMED_OUT
    path.write_text(json.dumps({"status": "busy", "generations": 3, "reason": "", "traceback": ""}))
    with pytest.raises(StoreError, match=r"status\.json: unknown status 'busy'"):
        store.status("run")  # damage, not an ending: readers name it ...
    store.repair("run")  # ... and a repair sets it aside, so the run is computed again
    assert store.status("run") is None


def test_a_run_another_process_holds_is_answered_busy_and_left_alone(tmp_path):
    registry = build_registry()
    doc = grid_doc(name="held", n_real=50, n_test=50, n_eval=50, metrics=[{"name": "mean-distance"}])
    (run,) = parse_grid(doc, registry).runs
    store = Store(tmp_path / "store")
    store.check(create=True)
    with store.claim(run.run_id) as claimed:  # a lock on another open file: as another process would hold it
        assert claimed
        assert execute_run(RunTask(str(store.root), run.describe()), registry) == RunBusy(run.run_id)
    assert store.finished_generations(run.run_id) == [] and store.status(run.run_id) is None
    assert execute_run(RunTask(str(store.root), run.describe()), registry).status is RunStatus.DONE


def test_report_of_a_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="not a retrainbench store"):
        results_frame(Store(tmp_path / "nothing"))


def test_an_unreadable_last_generation_is_recomputed(tmp_path):
    """A power cut on a non-durable store can leave empty files behind a completed rename: resume recomputes."""
    registry = build_registry()
    doc = grid_doc(
        name="torn",
        generations=4,
        seeds=[1],
        n_real=80,
        n_test=80,
        n_eval=80,
        datasets=[{"name": "moons"}],
        models=[{"name": "kde"}],
        policies=[{"name": "accumulate"}],
        metrics=[{"name": "nll"}],
    )
    (run,) = parse_grid(doc, registry).runs
    whole, torn = Store(tmp_path / "whole"), Store(tmp_path / "torn")
    for store in (whole, torn):
        store.check(create=True)
        execute_run(RunTask(str(store.root), run.describe()), registry)
    last = torn.run_dir(run.run_id) / "gen-0004"
    for name in ("model.npz", "record.json"):
        (last / name).write_bytes(b"")
    with pytest.raises(StoreError, match=r"gen-0004/model\.npz: checksum mismatch"):
        torn.records(run.run_id)
    torn.clear_status(run.run_id)  # as if the power cut came before the run was marked done
    execute_run(RunTask(str(torn.root), run.describe()), registry)
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert strip(torn.records(run.run_id)) == strip(whole.records(run.run_id))
    assert len(list(torn.root.glob(f"quarantine/runs/{run.run_id}/gen-0004.*"))) == 1  # set aside, kept


def test_extending_a_run_keeps_its_real_data_even_when_the_pool_grows(tmp_path):
    """`fresh` needs a pool that grows with the generations; train and test must not move with it."""
    registry = build_registry()

    def run_for(generations: int):
        doc = grid_doc(
            name="grow",
            generations=generations,
            seeds=[2],
            n_real=60,
            n_test=60,
            n_eval=60,
            datasets=[{"name": "moons"}],
            policies=[{"name": "fresh", "params": {"n_fresh": 20}}],
            metrics=[{"name": "w2"}],
        )
        (run,) = parse_grid(doc, registry).runs
        return run

    short, long = run_for(2), run_for(5)
    assert short.run_id == long.run_id
    extended, direct = Store(tmp_path / "extended"), Store(tmp_path / "direct")
    for store in (extended, direct):
        store.check(create=True)
    execute_run(RunTask(str(extended.root), short.describe()), registry)
    execute_run(RunTask(str(extended.root), long.describe()), registry)
    execute_run(RunTask(str(direct.root), long.describe()), registry)
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert strip(extended.records(long.run_id)) == strip(direct.records(long.run_id))


def test_a_grids_report_stops_at_its_own_generations_when_a_longer_grid_shares_its_runs(tmp_path):
    registry = build_registry()
    store = Store(tmp_path / "store")
    executor = registry.get("executor", "inline").component()
    doc = {"seeds": [0, 1], "n_real": 40, "n_test": 40, "n_eval": 40, "metrics": [{"name": "mean-distance"}]}
    short = parse_grid(grid_doc(**doc, name="short", generations=2), registry)
    long = parse_grid(grid_doc(**doc, name="long", generations=6), registry)
    assert [r.run_id for r in short.runs] == [r.run_id for r in long.runs]  # the same runs, continued
    for grid in (short, long):
        run_grid(grid, store, executor, registry, progress=False)
    assert results_frame(store, "short")["generation"].max() == 2
    assert results_frame(store, "long")["generation"].max() == 6
    assert results_frame(store)["generation"].max() == 6  # the whole store: everything stored
