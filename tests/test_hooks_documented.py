"""Meta-tests: every hook is documented in CONTRIBUTING.md and exercised by a real run; the JSON-lines observer."""

from __future__ import annotations

import inspect
import json
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import grid_doc, write_grid

from benchmark import (
    Dataset,
    Executor,
    FeatureExtractor,
    Metric,
    Model,
    ModelFamily,
    Policy,
    TrainingSet,
    hookimpl,
)
from benchmark.api import hookspecs
from benchmark.api.kinds import REGISTRATION_HOOKS
from benchmark.api.plugins import build_registry
from benchmark.run.harness import run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store

REPO = Path(__file__).resolve().parents[1]
CONTRIBUTING = REPO / "CONTRIBUTING.md"


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hook declared in benchmark/api/hookspecs.py, with its signature."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, marker)
    }


def test_the_hooks_are_found():
    assert set(REGISTRATION_HOOKS) < set(hook_specs())
    assert "on_generation_end" in hook_specs()


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_every_hook_is_documented_with_its_signature(hook):
    text = CONTRIBUTING.read_text(encoding="utf-8")
    call = f"{hook}({', '.join(hook_specs()[hook].parameters)})"
    assert call in text, f"CONTRIBUTING.md does not document the hook as `{call}`"
    assert f"### `{call}`" in text, f"CONTRIBUTING.md has no section headed ### `{call}`"


# ---------------------------------------------------------------- one plugin implementing every hook, in a real run

CALLS: dict[str, list] = {}


def _note(what: str, *details) -> None:
    CALLS.setdefault(what, []).append(details)


class HookData(Dataset):
    """Standard normal points in 2-D."""

    name = "hooks-data"

    def draw(self, n, rng):
        _note("dataset", n)
        return rng.standard_normal((n, 2))


class HookModel(Model):
    def __init__(self):
        self.mean, self.std = np.zeros(2), np.ones(2)

    def fit(self, data, *, warm_start, rng):
        _note("fit", len(data), warm_start)
        self.mean, self.std = data.mean(axis=0), data.std(axis=0)
        return {"points": float(len(data))}

    def sample(self, n, rng):
        return self.mean + self.std * rng.standard_normal((n, 2))

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self.mean, self.std = np.array(state["mean"]), np.array(state["std"])


class HookFamily(ModelFamily):
    """Diagonal Gaussian."""

    name = "hooks-family"

    def create(self, data, context):
        return HookModel()


class HookPolicy(Policy):
    """Real set plus ten samples."""

    name = "hooks-policy"

    def build(self, step):
        _note("policy", step.generation)
        return TrainingSet(np.concatenate([step.real, step.sample(10)]), {"real": len(step.real), "synthetic": 10})


class HookExtractor(FeatureExtractor):
    """Squares of the coordinates."""

    name = "hooks-features"

    def extract(self, images, context):
        _note("extract", len(images))
        return np.asarray(images) ** 2


class HookMetric(Metric):
    """Gap between the mean squared coordinates of samples and test set, through the extractor."""

    name = "hooks-metric"
    needs = frozenset({"samples", "features"})
    optimum = 0.0

    def compute(self, evaluation):
        a, b = evaluation.features("hooks-features", "samples"), evaluation.features("hooks-features", "test")
        return float(np.abs(a.mean() - b.mean()))


class HookExecutor(Executor):
    """Runs tasks in this process and counts them."""

    name = "hooks-executor"
    in_process = True

    def map(self, fn, tasks):
        for task in tasks:
            _note("executor", task.run["run_id"])
            yield fn(task)


def _all_hooks_plugin() -> types.ModuleType:
    module = types.ModuleType("all_hooks_plugin")
    implementations: dict[str, Callable] = {
        "register_datasets": lambda register: register(HookData),
        "register_model_families": lambda register: register(HookFamily),
        "register_policies": lambda register: register(HookPolicy),
        "register_metrics": lambda register: register(HookMetric),
        "register_executors": lambda register: register(HookExecutor),
        "register_feature_extractors": lambda register: register(HookExtractor),
        "on_generation_end": lambda run, record: _note("observed", run["run_id"], record["generation"]),
    }
    for name, function in implementations.items():  # pluggy passes arguments by name: the lambdas use the hooks' names
        setattr(module, name, hookimpl(function))
    return module


def test_a_plugin_implementing_every_hook_takes_part_in_a_run(tmp_path: Path):
    module = _all_hooks_plugin()
    implemented = {name for name in vars(module) if not name.startswith("_")}
    assert implemented == set(hook_specs()), "a hook was added to hookspecs.py: implement and exercise it here"

    CALLS.clear()
    registry = build_registry([module], autoload=False, strict=True)
    for hook, kind in REGISTRATION_HOOKS.items():
        assert "all_hooks_plugin" in {e.plugin for e in registry if e.kind == kind}, hook
    doc = grid_doc(
        generations=2,
        seeds=[0, 1],
        n_real=40,
        n_test=40,
        n_eval=40,
        datasets=[{"name": "hooks-data"}],
        models=[{"name": "hooks-family"}],
        policies=[{"name": "hooks-policy"}],
        metrics=[{"name": "hooks-metric"}],
    )
    grid = parse_grid(doc, registry)
    executor = registry.get("executor", "hooks-executor").component()
    summary = run_grid(grid, Store(tmp_path / "store"), executor, registry, progress=False)
    assert summary.counts["done"] == 2

    run_ids = [run.run_id for run in grid.runs]
    assert CALLS["executor"] == [(r,) for r in run_ids]  # register_executors
    assert CALLS["dataset"] == [(80,), (80,)]  # register_datasets: train + test per run
    assert CALLS["fit"] == [(40, False), (50, False), (50, False)] * 2  # register_model_families
    assert CALLS["policy"] == [(1,), (2,)] * 2  # register_policies
    # register_feature_extractors and register_metrics: real test features once per run (cached after),
    # samples each generation
    assert len(CALLS["extract"]) == 2 * (1 + 3)
    assert CALLS["observed"] == [(r, t) for r in run_ids for t in range(3)]  # on_generation_end
    records = Store(tmp_path / "store").records(run_ids[0])
    assert all(np.isfinite(r["metrics"]["hooks-metric"]["value"]) for r in records)


# ---------------------------------------------------------------- the JSON-lines observer (plugins/observers/jsonl.py)

ANALYTIC = ["plugins.datasets.toy", "plugins.families.analytic", "plugins.policies", "plugins.metrics.basic"]
#: Two lambdas x two seeds of the gaussian family on 2-D data (the variance metric).
GRID = grid_doc(
    generations=2,
    seeds=[0, 1],
    datasets=[{"name": "gaussian", "params": {"dim": 2}}],
    policies=[{"name": "mix", "params": {"lambda": [0.5, 1.0]}}],
)


def test_the_jsonl_logger_appends_one_line_per_generation(tmp_path: Path, monkeypatch):
    from benchmark.executors.inline import InlineExecutor
    from plugins.observers.jsonl import JSONL_ENV

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(JSONL_ENV, str(log))
    registry = build_registry([*ANALYTIC, "plugins.observers.jsonl"], autoload=False, strict=True)
    grid = parse_grid(GRID, registry)
    store = Store(tmp_path / "store")
    run_grid(grid, store, InlineExecutor(), registry, progress=False)

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 4 * 3  # 2 lambdas x 2 seeds, generations 0..2
    for run in grid.runs:
        mine = [entry for entry in lines if entry["run_id"] == run.run_id]
        assert [e["generation"] for e in mine] == [0, 1, 2]
        assert mine[0]["labels"] == {
            "dataset": "gaussian[dim=2]",
            "model": "gaussian",
            "policy": run.policy.label,
            "seed": run.seed,
        }
        for entry, record in zip(mine, store.records(run.run_id), strict=True):
            assert {k: entry[k] for k in record} == record
        assert mine[0]["spec"]["policy"] == run.policy.canonical()


def test_the_jsonl_logger_is_silent_without_its_variable(tmp_path: Path, monkeypatch):
    from benchmark.executors.inline import InlineExecutor
    from plugins.observers.jsonl import JSONL_ENV

    monkeypatch.delenv(JSONL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    registry = build_registry([*ANALYTIC, "plugins.observers.jsonl"], autoload=False, strict=True)
    run_grid(parse_grid(GRID, registry), Store(tmp_path / "store"), InlineExecutor(), registry, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


@pytest.mark.slow  # worker processes
def test_the_jsonl_logger_keeps_lines_whole_across_worker_processes(tmp_path: Path, run_cli):
    grid = write_grid(
        tmp_path / "grid.toml",
        generations=3,
        seeds=[0, 1, 2],
        n_real=200,
        n_test=200,
        n_eval=200,
        datasets=[{"name": "eight-gaussians"}],
        models=[{"name": "kde"}],
        policies=[{"name": "mix", "params": {"lambda": [0.5, 1.0]}}],
    )
    log = tmp_path / "log.jsonl"
    code, out, err = run_cli(
        ["run", grid, "--store", tmp_path / "store", "--workers", "2", "--no-progress"],
        env={"RETRAINBENCH_JSONL": str(log)},
    )
    assert code == 0, out + err
    lines = log.read_text().splitlines()
    assert len(lines) == 6 * 4
    entries = [json.loads(line) for line in lines]  # every line whole
    assert len({e["run_id"] for e in entries}) == 6
    assert len({(e["run_id"], e["generation"]) for e in entries}) == 24  # each generation of each run once
