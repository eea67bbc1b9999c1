"""Shared fixtures and helpers: the first-party registry, small grids, the CLI in a subprocess, throwaway plugins."""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

# One torch (OpenMP) thread per test process, as the harness gives each worker: pytest-xdist runs a process per core,
# and each process's default of a thread per core oversubscribed the cores (spinning threads slowed tests 5 to 10x).
os.environ.setdefault("OMP_NUM_THREADS", "1")
if "torch" in sys.modules:  # a plugin imported it before this file: its thread pool is set already
    sys.modules["torch"].set_num_threads(1)

from benchmark.api.plugins import build_registry
from benchmark.api.registry import Registry


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any RETRAINBENCH_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAINBENCH_")}
    env.update(extra or {})
    return env


#: One small grid of analytic components (a fraction of a second a run); each test overrides what it is about.
SMALL_GRID: dict[str, Any] = {
    "name": "test",
    "generations": 1,
    "seeds": [0],
    "n_real": 20,
    "n_test": 20,
    "n_eval": 20,
    "datasets": [{"name": "gaussian"}],
    "models": [{"name": "gaussian"}],
    "policies": [{"name": "replace"}],
    "metrics": [{"name": "variance"}],
}


def grid_doc(**overrides: Any) -> dict[str, Any]:
    """``SMALL_GRID`` with top-level keys replaced (``models=[{"name": "kde"}]``): a document for ``parse_grid``."""
    return {**copy.deepcopy(SMALL_GRID), **overrides}


def write_grid(path: Path, **overrides: Any) -> Path:
    """Write ``grid_doc(**overrides)`` to ``path`` as a TOML grid file, for the CLI; returns ``path``."""
    doc = grid_doc(**overrides)
    tables = {
        key: value for key, value in doc.items() if isinstance(value, list) and value and isinstance(value[0], dict)
    }
    lines = [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in doc.items() if key not in tables]
    for key, items in tables.items():
        for item in items:
            lines += ["", f"[[{key}]]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_resume_grid(path: Path, generations: int) -> Path:
    """8 runs (2 models x 2 policies x 2 seeds) on eight gaussians: long enough to be killed mid-grid."""
    return write_grid(
        path,
        name="resume",
        generations=generations,
        seeds=[0, 1],
        n_real=200,
        n_test=200,
        n_eval=200,
        datasets=[{"name": "eight-gaussians"}],
        models=[{"name": "gmm", "params": {"components": 4, "max_iter": 30}}, {"name": "kde"}],
        policies=[{"name": "mix", "params": {"lambda": 0.5}}, {"name": "accumulate"}],
        metrics=[{"name": "w2"}, {"name": "nll"}],
    )


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, Mapping):
        pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return f"{{ {pairs} }}" if pairs else "{}"
    raise TypeError(f"no TOML for {value!r}")


def environment_registry() -> Registry:
    """The installed plugins (through their entry points) and built-in executors, without RETRAINBENCH_* settings."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("RETRAINBENCH_")}
    try:
        return build_registry(autoload=True)
    finally:
        os.environ.update(saved)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The installed first-party plugins (through their entry points) and the built-in executors."""
    return environment_registry()


def run_benchmark(
    args: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = (sys.executable, "-m", "benchmark"),
) -> CliResult:
    """Run ``python -m benchmark ARGS`` in ``cwd`` and return (exit code, stdout, stderr); see ``run_cli``.

    For module-scoped fixtures, which cannot use the ``run_cli`` fixture.
    """
    done = subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hung child, not a measurement
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``python -m benchmark ARGS`` (in ``tmp_path`` unless ``cwd``) and return (exit code, stdout, stderr).

    The child gets this environment minus RETRAINBENCH_* variables, plus ``env``. ``command`` launches
    something else instead of ``python -m benchmark`` (the console script, ``python -c``).
    """

    def run(
        args: Sequence[str | Path],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "benchmark"),
    ) -> CliResult:
        return run_benchmark(args, cwd or tmp_path, env, command)

    return run


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """A factory writing importable plugin modules into a fresh directory on ``sys.path``.

    ``write(name, source)`` returns the directory (put it on PYTHONPATH for a child process).
    Modules imported from it are removed from ``sys.modules`` afterwards.
    """
    folder = tmp_path / "plugin_modules"
    folder.mkdir()
    written: list[str] = []
    sys.path.insert(0, str(folder))

    def write(name: str, source: str) -> Path:
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        importlib.invalidate_caches()
        return folder

    yield write
    sys.path.remove(str(folder))
    for name in written:
        sys.modules.pop(name, None)


# ---------------------------------------------------------------- shared checks of the torch model families


def resume_grid(name: str, model: Mapping[str, Any], generations: int, metrics: Sequence[str]) -> dict[str, Any]:
    """A one-run grid of ``model`` (mix, lambda 1, on 200 eight-gaussians points, 20 steps a generation)."""
    return grid_doc(
        name=f"{name}-resume",
        generations=generations,
        n_real=200,
        n_test=200,
        n_eval=200,
        train_steps=20,
        datasets=[{"name": "eight-gaussians"}],
        models=[dict(model)],
        policies=[{"name": "mix", "params": {"lambda": 1.0}}],
        metrics=[{"name": m} for m in metrics],
    )


def assert_resume_equals_uninterrupted(
    registry: Registry, tmp_path: Path, model: Mapping[str, Any], network: str, metrics: Sequence[str]
) -> None:
    """A run stopped after generation 1 and continued from its stored checkpoint gives the same numbers, and the
    same final weights (the checkpoint's ``network`` entry), as the run made in one go."""
    from benchmark.run.harness import RunOutcome, RunTask, execute_run
    from benchmark.run.spec import parse_grid
    from benchmark.run.store import Store

    (run,) = parse_grid(resume_grid(model["name"], model, 2, metrics), registry).runs
    (shorter,) = parse_grid(resume_grid(model["name"], model, 1, metrics), registry).runs
    assert shorter.run_id == run.run_id

    whole, resumed = Store(tmp_path / "whole"), Store(tmp_path / "resumed")
    for store in (whole, resumed):
        store.check(create=True)
    first, part = (
        execute_run(RunTask(str(s.root), r.describe()), registry) for s, r in ((whole, run), (resumed, shorter))
    )
    assert isinstance(first, RunOutcome) and first.status == "done"
    assert isinstance(part, RunOutcome) and part.generations == 2
    outcome = execute_run(RunTask(str(resumed.root), run.describe()), registry)  # continues from generation 1
    assert isinstance(outcome, RunOutcome) and (outcome.status, outcome.generations) == ("done", 3)

    def numbers(store: Store) -> list:
        return [(r["metrics"], r["fit"], r["composition"]) for r in store.records(run.run_id)]

    assert numbers(resumed) == numbers(whole)
    points = [s.resume_point(run.run_id) for s in (whole, resumed)]
    assert points[0] is not None and points[1] is not None
    last_whole, last_resumed = points[0].model_state[network], points[1].model_state[network]
    assert last_whole.keys() == last_resumed.keys()
    for key, value in last_whole.items():
        assert value.equal(last_resumed[key]), key


def assert_training_reaches_the_modes(fit_and_sample: Callable[[int], Any]) -> None:
    """Each sample's distance to its nearest eight-gaussians mode falls from 1 training step to 600, by more than
    4 standard errors of the difference of the two means. ``fit_and_sample(steps)`` trains a fresh model on the
    data and returns 500 of its samples."""
    import math

    import numpy as np

    from plugins.datasets.toy import EightGaussians

    modes = EightGaussians().modes()
    gaps = []
    for steps in (1, 600):
        samples = fit_and_sample(steps)
        gaps.append(np.min(np.linalg.norm(samples[:, None, :] - modes[None], axis=2), axis=1))
    untrained, trained = gaps
    se = math.sqrt(untrained.var(ddof=1) / len(untrained) + trained.var(ddof=1) / len(trained))
    assert untrained.mean() - trained.mean() > 4 * se, (untrained.mean(), trained.mean(), se)
