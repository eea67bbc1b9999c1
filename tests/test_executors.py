"""Executors and faults: dask and submitit give the local executor's numbers; faults are recorded, not fatal."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_benchmark, write_grid

from benchmark.report.leaderboard import results_frame
from benchmark.run.store import RunStatus, Store


def write_engines_grid(
    path: Path, models: tuple[str, ...] = ("gaussian", "kde"), mix_lambda: float | tuple[float, ...] = (0.5, 2.0)
) -> Path:
    """12 runs (2 models x 3 policies x 2 seeds) of analytic families on moons, 4 generations each."""
    return write_grid(
        path,
        name="engines",
        generations=4,
        seeds=[0, 1],
        n_real=100,
        n_test=100,
        n_eval=100,
        datasets=[{"name": "moons"}],
        models=[{"name": model} for model in models],
        policies=[{"name": "mix", "params": {"lambda": mix_lambda}}, {"name": "replace"}],
        metrics=[{"name": "w2"}, {"name": "nll"}],
    )


FAULTY = '''
"""A model family that misbehaves on purpose at generation `at` (tests only)."""
import os, time
import numpy as np
from benchmark import hookimpl, Param
from plugins.families.analytic import GaussianFamily, GaussianModel

class FaultyModel(GaussianModel):
    def fit(self, data, *, warm_start, rng):
        self.generation = getattr(self, "generation", -1) + 1
        if self.generation == self.at:
            if self.fault == "raise":
                raise RuntimeError("injected fault")
            if self.fault == "sleep":
                while True:
                    time.sleep(1)
            if self.fault == "kill":
                os.kill(os.getpid(), 9)
        return super().fit(data, warm_start=warm_start, rng=rng)

    def sample(self, n, rng):
        x = super().sample(n, rng)
        return x * np.nan if self.fault == "nan" and self.generation >= self.at else x

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.generation = int(state["generation"])

    def state_dict(self):
        return {**super().state_dict(), "generation": np.int64(self.generation)}

class Faulty(GaussianFamily):
    """Gaussian that raises, returns NaN, hangs or kills its process at generation `at`."""
    name = "faulty"
    parameters = {
        "fault": Param("raise", str, choices=("raise", "nan", "sleep", "kill")),
        "at": Param(2, int, low=0),
    }
    def create(self, data, context):
        model = FaultyModel(data.sample_shape[0], 0, None)
        model.fault, model.at = self.params["fault"], self.params["at"]
        return model

@hookimpl
def register_model_families(register):
    register(Faulty)
'''


def write_fault_grid(path: Path, faults: str | tuple[str, ...] = ("raise", "nan", "sleep", "kill")) -> Path:
    """The faulty family failing at generation 2 in each way of ``faults``, next to two healthy gaussians."""
    return write_grid(
        path,
        name="faults",
        generations=3,
        n_real=50,
        n_test=50,
        n_eval=50,
        models=[
            {"name": "faulty", "params": {"fault": faults, "at": 2}},
            {"name": "gaussian", "params": {"ddof": [0, 1]}},
        ],
        metrics=[{"name": "mean-distance"}],
    )


KEY = ["run_id", "generation", "metric"]


def values(store: Path) -> pd.DataFrame:
    return results_frame(Store(store))[[*KEY, "value"]].sort_values(KEY, ignore_index=True)


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    return write_engines_grid(tmp_path_factory.mktemp("grid") / "engines.toml")


@pytest.fixture(scope="module")
def local_values(grid, tmp_path_factory) -> pd.DataFrame:
    store = tmp_path_factory.mktemp("local") / "store"
    done = run_benchmark(["run", grid, "--store", store, "--workers", "2", "--no-progress"], cwd=store.parent)
    assert done.code == 0, done.err
    return values(store)


@pytest.fixture
def faulty_env(tmp_path) -> dict:
    (tmp_path / "faulty_plugin.py").write_text(FAULTY)
    return {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "RETRAINBENCH_PLUGINS": "faulty_plugin",
    }


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    pytest.importorskip("distributed")
    bin_dir = Path(sys.executable).parent
    scheduler_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(bin_dir / "dask"),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


@pytest.mark.slow
def test_dask_cluster_gives_the_local_executors_results(run_cli, grid, local_values, dask_cluster, tmp_path):
    store = tmp_path / "store"
    done = run_cli(
        ["run", grid, "--store", store, "--executor", "dask", "-o", f"address={dask_cluster}", "--no-progress"]
    )
    assert done.code == 0, done.err
    pd.testing.assert_frame_equal(values(store), local_values)


@pytest.mark.slow
def test_submitit_local_executor_gives_the_same_results(run_cli, grid, local_values, tmp_path):
    pytest.importorskip("submitit")
    # a part of the grid (every job is a fresh Python process): its runs have the same ids as in the whole grid
    part = write_engines_grid(tmp_path / "part.toml", models=("gaussian",), mix_lambda=0.5)
    store = tmp_path / "store"
    done = run_cli(
        [
            "run",
            part,
            "--store",
            store,
            "--executor",
            "submitit",
            "-o",
            "cluster=local",
            "-o",
            f"folder={tmp_path / 'jobs'}",
            "-o",
            "poll_seconds=0.2",
            "--no-progress",
        ]
    )
    assert done.code == 0, done.err
    got = values(store)
    assert got["run_id"].nunique() == 4
    expected = local_values[local_values["run_id"].isin(got["run_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert any((tmp_path / "jobs").iterdir()), "jobs ran through submitit"


@pytest.mark.slow
def test_faults_are_recorded_with_status_and_reason_and_the_grid_goes_on(run_cli, tmp_path, faulty_env):
    grid = write_fault_grid(tmp_path / "faults.toml")
    store = tmp_path / "store"
    done = run_cli(
        ["run", grid, "--store", store, "--workers", "2", "-o", "retries=1", "--timeout", "8", "--no-progress"],
        env=faulty_env,
    )
    assert done.code == 1, done.err  # some runs failed
    summary = done.out
    assert "6 runs: 2 done, 1 diverged, 2 failed, 1 timed-out" in summary, summary

    status = {}
    s = Store(store)
    for run_id in s.run_ids():
        spec = s.spec(run_id)
        params = spec["model"]["params"]
        name = params["fault"] if spec["model"]["name"] == "faulty" else f"none:{params['ddof']}"
        status[name] = (s.status(run_id), s.finished_generations(run_id))
    assert status["raise"][0]["status"] == RunStatus.FAILED
    assert status["raise"][0]["reason"] == "RuntimeError: injected fault"
    assert "Traceback" in status["raise"][0]["traceback"]
    assert status["nan"][0]["status"] == RunStatus.DIVERGED
    assert status["nan"][0]["reason"] == "non-finite samples at generation 2"
    assert status["nan"][1] == [0, 1], "generations before the divergence are kept"
    assert status["sleep"][0]["status"] == RunStatus.TIMED_OUT and "8 s timeout" in status["sleep"][0]["reason"]
    assert status["kill"][0]["status"] == RunStatus.FAILED and "worker process died" in status["kill"][0]["reason"]
    for generations_kept in (status["raise"][1], status["sleep"][1], status["kill"][1]):
        assert generations_kept == [0, 1]
    for ddof in ("none:0", "none:1"):
        assert status[ddof][0]["status"] == RunStatus.DONE and status[ddof][1] == [0, 1, 2, 3]

    shown = run_cli(["status", "--store", store], env=faulty_env)
    assert shown.code == 0
    assert "2 done, 1 diverged, 2 failed, 1 timed-out" in shown.out
    assert "RuntimeError: injected fault" in shown.out and "worker process died" in shown.out


def test_fail_fast_stops_at_the_first_failure(run_cli, tmp_path, faulty_env):
    grid = write_fault_grid(tmp_path / "faults.toml", faults="raise")
    done = run_cli(
        ["run", grid, "--store", tmp_path / "store", "--executor", "inline", "--fail-fast", "--no-progress"],
        env=faulty_env,
    )
    assert done.code == 1
    assert "1 failed" in done.out and "2 not run (--fail-fast)" in done.out, done.out


@pytest.mark.slow
def test_driver_killed_mid_grid_resumes_under_another_executor(run_cli, grid, local_values, tmp_path):
    store = tmp_path / "store"
    driver = subprocess.Popen(
        [sys.executable, "-m", "benchmark", "run", str(grid), "--store", str(store), "--workers", "2", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(store.glob("runs/*/gen-*"))) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert len(list(store.glob("runs/*/status.json"))) < 12, "the kill must land mid-grid"
        done = run_cli(["run", grid, "--store", store, "--executor", "inline", "--no-progress"])
        assert done.code == 0, done.err
    finally:
        with contextlib.suppress(ProcessLookupError):  # orphaned pool workers, if any, go with the driver's session
            os.killpg(driver.pid, signal.SIGKILL)
    pd.testing.assert_frame_equal(values(store), local_values)


def test_bad_executor_options_are_input_errors(run_cli, grid, tmp_path):
    store = tmp_path / "store"
    for args, message in (
        (["--executor", "nope"], "--executor: unknown executor 'nope'"),
        (["-o", "wrokers=2"], "--option: wrokers: executor 'local': unknown parameter (did you mean 'workers'?)"),
        (["-o", "workers"], "--option: workers: must be KEY=VALUE"),
        (["--workers", "0"], "--workers: workers: executor 'local': must be >= 1 (got 0)"),
        (["--timeout", "0"], "--timeout: must be > 0 seconds (got 0.0)"),
    ):
        done = run_cli(["run", grid, "--store", store, *args])
        assert done.code == 2, (args, done.err)
        assert message in done.err, (args, done.err)
        assert not store.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--executor", "dask", "-o", "address=notaurl"],
            "--option: address: executor 'dask': is not a Dask scheduler address such as tcp://host:8786: "
            "missing port number in address 'notaurl'",
        ),
        (  # nothing listens on port 1 (only root may bind it): refused until the timeout, then given up
            ["--executor", "dask", "-o", "address=tcp://127.0.0.1:1", "-o", "connect_timeout=0.5"],
            "--option: address: executor 'dask': no Dask scheduler answers at 'tcp://127.0.0.1:1': "
            "Timed out trying to connect to tcp://127.0.0.1:1 after 0.5 s",
        ),
        (
            ["--executor", "submitit", "-o", "cluster=slurm"],
            "--option: cluster: executor 'submitit': is \"slurm\", but SLURM is not available here (no srun); "
            'cluster = "local" runs jobs locally',
        ),
    ],
    ids=["dask-malformed-address", "dask-unreachable-address", "submitit-slurm-without-slurm"],
)
def test_executor_set_up_errors_are_input_errors_before_the_store_exists(run_cli, grid, tmp_path, args, message):
    """Issue 15, item 5: these used to create the store, and two of them ended in a traceback with exit 1."""
    pytest.importorskip("distributed" if "dask" in args else "submitit")
    if "submitit" in args and shutil.which("srun"):
        pytest.skip("SLURM is available here")
    done = run_cli(["run", grid, "--store", tmp_path / "store", "--no-progress", *args])
    assert done.code == 2, done.err
    assert done.err.strip().splitlines() == [f"retrainbench: error: {message}"]
    assert list(tmp_path.iterdir()) == [], "the store (or submitit's folder) was created"


def test_an_executor_set_up_error_from_the_grid_file_names_the_file_and_key(run_cli, tmp_path):
    pytest.importorskip("distributed")
    grid = write_grid(
        tmp_path / "grid.toml",
        name="remote",
        generations=1,
        seeds=[0],
        n_real=50,
        n_test=50,
        n_eval=50,
        datasets=[{"name": "moons"}],
        models=[{"name": "gaussian"}],
        policies=[{"name": "replace"}],
        metrics=[{"name": "w2"}],
        executor={"name": "dask", "params": {"address": "notaurl"}},
    )
    done = run_cli(["run", grid, "--store", tmp_path / "store"])
    assert done.code == 2, done.err
    assert done.err.strip().splitlines() == [
        f"retrainbench: error: {grid}: executor.params.address: executor 'dask': is not a Dask scheduler address "
        "such as tcp://host:8786: missing port number in address 'notaurl'"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]
