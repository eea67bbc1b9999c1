"""The example third-party package, pip-installed as a user would: listed, run in a grid with first-party parts, conforming."""

from __future__ import annotations

import csv
import importlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark import PolicyStep
from benchmark.api.plugins import PLUGINS_ENV, build_registry
from benchmark.executors.inline import InlineExecutor
from benchmark.run.harness import run_grid
from benchmark.run.seeding import stream
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store
from benchmark.testing import Budget, component_cases

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "retrainbench-example"
DIST, PLUGIN = "retrainbench-example", "retrainbench-example"
#: What the example registers, by kind.
COMPONENTS = [("model", "vae"), ("policy", "curated"), ("metric", "reward-shift")]


def _installed_is_current() -> bool:
    """The installed distribution has this checkout's modules and entry point (then reinstalling changes nothing)."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    points = {(ep.group, ep.name, ep.value) for ep in dist.entry_points}
    if ("retrainbench", PLUGIN, "retrainbench_example") not in points:
        return False
    for source in (EXAMPLE / "src" / "retrainbench_example").glob("*.py"):
        installed = Path(dist.locate_file(f"retrainbench_example/{source.name}"))
        if not installed.is_file() or installed.read_bytes() != source.read_bytes():
            return False
    return True


@pytest.fixture(scope="session")
def example_installed(tmp_path_factory) -> importlib.metadata.Distribution:
    """pip-install the example into this environment, as a user would, unless this very version is installed.

    The copy keeps pip's build files out of the repo; --no-index and --no-build-isolation keep it offline.
    """
    if not _installed_is_current():
        copy = tmp_path_factory.mktemp("example") / "retrainbench-example"
        shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--quiet",
                str(copy),
            ],
            capture_output=True,
            text=True,
            timeout=600,  # a guard against a hung install, not a measurement
        )
        assert done.returncode == 0, done.stdout + done.stderr
        importlib.invalidate_caches()
    assert _installed_is_current()
    return importlib.metadata.distribution(DIST)


@pytest.fixture(scope="session")
def installed_registry(example_installed):
    """The registry of this environment after the install: first-party and example, all through entry points."""
    import os

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("RETRAINBENCH_")}
    try:
        return build_registry(autoload=True)
    finally:
        os.environ.update(saved)


def test_the_example_is_a_distribution_of_its_own(example_installed):
    assert example_installed.metadata["Name"] == DIST
    assert example_installed.version == "0.1.0"
    module = importlib.import_module("retrainbench_example")
    # imported from site-packages, not from the source tree
    assert not Path(module.__file__).resolve().is_relative_to(EXAMPLE.resolve())
    # torch is an extra: installing the plugin does not pull it in
    assert [r for r in example_installed.requires if r.startswith("torch")] == ['torch>=2.1; extra == "vae"']


def test_the_example_registers_through_its_entry_point(installed_registry):
    assert installed_registry.plugins[PLUGIN] == (DIST, "0.1.0")
    assert installed_registry.failures == []
    for kind, name in COMPONENTS:
        assert installed_registry.get(kind, name).plugin == PLUGIN


def test_list_and_plugins_show_the_example(example_installed, run_cli):
    code, out, err = run_cli(["list", "--json"])
    assert code == 0, err
    listed = {(e["kind"], e["name"]): e for e in json.loads(out)}
    for kind, name in COMPONENTS:
        assert listed[(kind, name)]["plugin"] == PLUGIN
        assert listed[(kind, name)]["available"] is True
    assert set(listed[("policy", "curated")]["parameters"]) == {
        "reward",
        "target",
        "keep",
        "lambda",
        "temperature",
        "real",
    }
    assert ("model", "gaussian") in listed  # first-party ones beside it

    code, out, err = run_cli(["list", "model"])
    assert code == 0, err
    assert "vae " in out and f"(plugin {PLUGIN})" in out


def test_plugins_lists_distribution_version_registrations_observers_and_failures(example_installed, run_cli):
    code, out, err = run_cli(["plugins"], env={PLUGINS_ENV: "no_such_plugin_module"})
    assert code == 0, err
    blocks = {}
    for line in out.splitlines():
        if line.startswith("    "):
            blocks[head].append(line.strip())
        else:
            head = line
            blocks[head] = []
    assert blocks[f"{PLUGIN}  ({DIST} 0.1.0)"] == ["model vae", "policy curated", "metric reward-shift"]
    assert blocks["jsonl-logger  (retrainbench 0.1.0)"] == ["observer on_generation_end"]
    assert "dataset gaussian" in blocks["toy-datasets  (retrainbench 0.1.0)"]
    failed = "no_such_plugin_module  FAILED: ModuleNotFoundError: No module named 'no_such_plugin_module'"
    assert blocks[failed] == [f"from module named in {PLUGINS_ENV} or passed by the caller"]
    assert "plugin 'no_such_plugin_module' skipped" in err


GRID = """\
name = "example-mix"
generations = 1
seeds = [0]
n_real = 120
n_test = 120
n_eval = 120
train_steps = 30

[[datasets]]
name = "moons"

[[models]]
name = "vae"
params = { hidden = 16 }

[[models]]
name = "gaussian"

[[policies]]
name = "curated"
params = { keep = 0.5, lambda = 0.5 }

[[policies]]
name = "mix"
params = { lambda = 0.5 }

[[metrics]]
name = "reward-shift"

[[metrics]]
name = "frechet"

[[metrics]]
name = "variance"
"""


@pytest.mark.slow  # two CLI processes, one importing torch: over 5 s on a loaded machine
def test_the_example_runs_in_a_grid_with_first_party_components(example_installed, run_cli, tmp_path: Path):
    (tmp_path / "grid.toml").write_text(GRID)
    # one math thread: tiny networks gain nothing from more, and busy-waiting threads crawl on a shared machine
    code, out, err = run_cli(
        ["run", "grid.toml", "--store", "store", "--executor", "inline", "--no-progress"], env={"OMP_NUM_THREADS": "1"}
    )
    assert code == 0, out + err
    assert "4 runs: 4 done" in out
    code, out, err = run_cli(["report", "--store", "store", "--out", "report"])
    assert code == 0, err
    with open(tmp_path / "report" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    combos = {(r["model"], r["policy"]) for r in rows}
    assert combos == {
        ("vae[hidden=16]", "curated[keep=0.5,lambda=0.5]"),
        ("vae[hidden=16]", "mix[lambda=0.5]"),
        ("gaussian", "curated[keep=0.5,lambda=0.5]"),
        ("gaussian", "mix[lambda=0.5]"),
    }
    for model, policy in combos:
        mine = [r for r in rows if (r["model"], r["policy"]) == (model, policy)]
        assert {r["metric"] for r in mine} == {"reward-shift", "frechet", "variance"}
        assert sorted({int(r["generation"]) for r in mine}) == [0, 1]
        assert all(np.isfinite(float(r["value"])) for r in mine)
    store = Store(tmp_path / "store")
    for run_id in store.run_ids():
        if store.spec(run_id)["policy"]["name"] == "curated":
            # lambda = 0.5 of 120 real points: 60 kept samples beside the real set
            assert [r["composition"] for r in store.records(run_id)] == [{"real": 120}, {"real": 120, "synthetic": 60}]


@pytest.mark.parametrize(
    ("kind", "name"), [pytest.param(*c, marks=[pytest.mark.slow] if c[0] == "model" else []) for c in COMPONENTS]
)
def test_the_installed_example_passes_the_conformance_suite(installed_registry, kind, name):
    entry = installed_registry.get(kind, name)
    assert installed_registry.plugins[entry.plugin][0] == DIST
    options = {"expected": lambda t, n: {"real": n, "synthetic": n}} if name == "curated" else {}
    cases = component_cases(
        kind, entry.component, budget=Budget(train_steps=5), registry=installed_registry, options=options
    )
    assert len(cases) == {"model": 1 + 2 * 4, "policy": 3, "metric": 3}[kind]  # vae: two data kinds, no log_prob
    for case in cases:
        case.run()


# ---------------------------------------------------------------- what the components do


def _step(real, candidates, seed=0):
    return PolicyStep(1, real, real[:0], lambda n: candidates[:n], {}, stream(seed, 1, "policy"))


def test_curated_keeps_the_highest_rewards(installed_registry):
    Curated = installed_registry.get("policy", "curated").component
    rng = np.random.default_rng(3)
    real, candidates = rng.standard_normal((10, 2)), 3 * rng.standard_normal((40, 2))
    built = Curated({"keep": 0.25, "lambda": 1.0}).build(_step(real, candidates))
    # 10 kept of ceil(10 / 0.25) = 40 candidates: those closest to the origin (reward -||x||)
    closest = candidates[np.sort(np.argsort(np.linalg.norm(candidates, axis=1))[:10])]
    assert np.array_equal(built.data, np.concatenate([real, closest]))
    assert dict(built.composition) == {"real": 10, "synthetic": 10}

    only = Curated({"keep": 0.5, "lambda": 0.5, "real": False, "reward": "mean"}).build(_step(real, candidates))
    brightest = candidates[:10][np.sort(np.argsort(-candidates[:10].mean(axis=1))[:5])]
    assert np.array_equal(only.data, brightest) and dict(only.composition) == {"synthetic": 5}


def test_curated_with_a_temperature_draws_from_the_preferred_ones(installed_registry):
    Curated = installed_registry.get("policy", "curated").component
    rng = np.random.default_rng(4)
    real, candidates = rng.standard_normal((10, 2)), 3 * rng.standard_normal((40, 2))
    policy = Curated({"keep": 0.25, "temperature": 1.0})
    first = policy.build(_step(real, candidates, seed=0)).data
    assert np.array_equal(first, policy.build(_step(real, candidates, seed=0)).data)  # seeded by step.rng
    assert not np.array_equal(first, policy.build(_step(real, candidates, seed=1)).data)
    with pytest.raises(ValueError, match="curated policy with real = false and lambda \\* n < 0.5 keeps no data"):
        Curated({"lambda": 0.0, "real": False}).build(_step(real, candidates))


def test_curated_retraining_raises_the_reward(installed_registry, tmp_path: Path):
    """Fully curated retraining pushes the model towards the reward's maximum (Ferbach et al. 2024, Thm 2.1).

    Data N((2, 2), I); reward -||x||; each generation keeps the half of 2n samples closest to the origin.
    Keeping the inner half shifts the fitted mean towards the origin by about 0.8 per generation (the
    mean of a half-normal-like truncation), while the standard error of a mean over n = 200 points is
    1/sqrt(200) = 0.07 per coordinate, so after 3 generations the shift exceeds 30 standard errors:
    requiring the reward-shift to be positive and larger at generation 3 than at 1 cannot fail by chance.
    """
    doc = {
        "name": "curated",
        "generations": 3,
        "seeds": [0],
        "n_real": 200,
        "n_test": 200,
        "n_eval": 200,
        "datasets": [{"name": "gaussian", "params": {"dim": 2, "mean": 2.0}}],
        "models": [{"name": "gaussian"}],
        "policies": [{"name": "curated", "params": {"keep": 0.5, "real": False}}],
        "metrics": [{"name": "reward-shift"}, {"name": "mean-distance"}],
    }
    grid = parse_grid(doc, installed_registry)
    store = Store(tmp_path / "store")
    assert run_grid(grid, store, InlineExecutor(), installed_registry, progress=False).counts["done"] == 1
    shift = [r["metrics"]["reward-shift"]["value"] for r in store.records(grid.runs[0].run_id)]
    assert abs(shift[0]) < 0.5  # generation 0 fits the real data
    assert 0 < shift[1] < shift[3]
