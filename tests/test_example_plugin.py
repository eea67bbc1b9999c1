"""The example third-party package, pip-installed as a user would: listed, run in a grid with first-party parts,
conforming. It goes into a virtual environment of its own, so the environment running the tests is left as it was."""

from __future__ import annotations

import contextlib
import csv
import importlib
import importlib.metadata
import importlib.util
import json
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import environment_registry, grid_doc, write_grid

from benchmark import PolicyStep
from benchmark.api.plugins import PLUGINS_ENV
from benchmark.api.registry import Registry
from benchmark.executors.inline import InlineExecutor
from benchmark.run.harness import run_grid
from benchmark.run.seeding import stream
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store
from benchmark.testing import Budget, component_cases

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "retrainbench-example"
DIST, PLUGIN, MODULE = "retrainbench-example", "retrainbench-example", "retrainbench_example"
#: What the example registers, by kind.
COMPONENTS = [("model", "vae"), ("policy", "curated"), ("metric", "reward-shift")]


def _output(command: Sequence[str | Path]) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=600,  # a guard against a hung child, not a measurement
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@dataclass(frozen=True)
class ExampleEnvironment:
    """A virtual environment holding the example, which sees the running environment's packages."""

    python: Path
    site_packages: Path

    @property
    def cli(self) -> tuple[str, ...]:
        """``python -m benchmark`` of this environment, as ``run_cli``'s ``command``."""
        return (str(self.python), "-m", "benchmark")

    @contextlib.contextmanager
    def importable(self) -> Iterator[None]:
        """This copy importable in this process (entry points too) while the block runs, and no longer."""
        _forget_example()
        sys.path.insert(0, str(self.site_packages))
        try:
            yield
        finally:
            sys.path.remove(str(self.site_packages))
            _forget_example()


def _forget_example() -> None:
    """Drop imported example modules, so that the next import finds the copy on sys.path now."""
    for name in [m for m in sys.modules if m == MODULE or m.startswith(f"{MODULE}.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture(scope="session")
def example_env(tmp_path_factory) -> ExampleEnvironment:
    """A new virtual environment with the example pip-installed, as a user would; built once a session.

    ``venv --system-site-packages`` made from a virtual environment's python sees the base
    interpreter's packages, not that environment's; so a .pth file adds the running environment's site
    directories (retrainbench, its dependencies, pip, setuptools), and pip installs the example into
    the new environment alone. A copy of the example keeps pip's build files out of the repo;
    --no-index and --no-build-isolation keep it offline.
    """
    root = tmp_path_factory.mktemp("example-env")
    venv = root / "venv"
    _output([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site_packages = Path(_output([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    running = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    adds = "; ".join(f"site.addsitedir({directory!r})" for directory in running)
    (site_packages / "running-environment.pth").write_text(f"import site; {adds}\n", encoding="utf-8")
    copy = root / "retrainbench-example"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _output([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", copy])
    return ExampleEnvironment(python, site_packages)


@pytest.fixture
def installed_registry(example_env: ExampleEnvironment) -> Iterator[Registry]:
    """The registry with the example installed: first-party and example, all through entry points."""
    with example_env.importable():
        yield environment_registry()


def test_the_example_is_a_distribution_of_its_own(example_env):
    with example_env.importable():
        dist = importlib.metadata.distribution(DIST)
        module = importlib.import_module(MODULE)
    assert dist.metadata["Name"] == DIST
    assert dist.version == "0.1.0"
    # imported from the new environment's site-packages, not from the source tree
    assert Path(module.__file__).resolve().is_relative_to(example_env.site_packages.resolve())
    # torch is an extra: installing the plugin does not pull it in
    assert [r for r in dist.requires or [] if r.startswith("torch")] == ['torch>=2.1; extra == "vae"']


def test_the_running_environment_is_left_as_it_was(example_env, run_cli):
    probe = (
        "import importlib.metadata, importlib.util\n"
        f"print(importlib.util.find_spec({MODULE!r}) is None)\n"
        f"print(not [d for d in importlib.metadata.distributions() if d.metadata['Name'] == {DIST!r}])\n"
    )
    code, out, err = run_cli(["-c", probe], command=[sys.executable])
    assert code == 0, err
    assert out.split() == ["True", "True"], f"{DIST} is installed where the tests run: pip uninstall {DIST}"
    code, out, err = run_cli(["list", "--json"])
    assert code == 0, err
    assert not [e for e in json.loads(out) if e["plugin"] == PLUGIN]
    assert importlib.util.find_spec(MODULE) is None  # nor left importable in this process


def test_the_example_registers_through_its_entry_point(installed_registry):
    assert installed_registry.plugins[PLUGIN] == (DIST, "0.1.0")
    assert installed_registry.failures == []
    for kind, name in COMPONENTS:
        assert installed_registry.get(kind, name).plugin == PLUGIN


def test_list_and_plugins_show_the_example(example_env, run_cli):
    code, out, err = run_cli(["list", "--json"], command=example_env.cli)
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

    code, out, err = run_cli(["list", "model"], command=example_env.cli)
    assert code == 0, err
    assert "vae " in out and f"(plugin {PLUGIN})" in out


def test_plugins_lists_distribution_version_registrations_observers_and_failures(example_env, run_cli):
    code, out, err = run_cli(["plugins"], env={PLUGINS_ENV: "no_such_plugin_module"}, command=example_env.cli)
    assert code == 0, err
    blocks: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("    "):
            blocks[list(blocks)[-1]].append(line.strip())
        else:
            blocks[line] = []
    assert blocks[f"{PLUGIN}  ({DIST} 0.1.0)"] == ["model vae", "policy curated", "metric reward-shift"]
    assert blocks["jsonl-logger  (retrainbench 0.1.0)"] == ["observer on_generation_end"]
    assert "dataset gaussian" in blocks["toy-datasets  (retrainbench 0.1.0)"]
    failed = "no_such_plugin_module  FAILED: ModuleNotFoundError: No module named 'no_such_plugin_module'"
    assert blocks[failed] == [f"from module named in {PLUGINS_ENV} or passed by the caller"]
    assert "plugin 'no_such_plugin_module' skipped" in err


@pytest.mark.slow  # two CLI processes, one importing torch: over 5 s on a loaded machine
def test_the_example_runs_in_a_grid_with_first_party_components(example_env, run_cli, tmp_path: Path):
    write_grid(
        tmp_path / "grid.toml",
        n_real=120,
        n_test=120,
        n_eval=120,
        train_steps=30,
        datasets=[{"name": "moons"}],
        models=[{"name": "vae", "params": {"hidden": 16}}, {"name": "gaussian"}],
        policies=[
            {"name": "curated", "params": {"keep": 0.5, "lambda": 0.5}},
            {"name": "mix", "params": {"lambda": 0.5}},
        ],
        metrics=[{"name": "reward-shift"}, {"name": "frechet"}, {"name": "variance"}],
    )
    # one math thread: tiny networks gain nothing from more, and busy-waiting threads crawl on a shared machine
    code, out, err = run_cli(
        ["run", "grid.toml", "--store", "store", "--executor", "inline", "--no-progress"],
        env={"OMP_NUM_THREADS": "1"},
        command=example_env.cli,
    )
    assert code == 0, out + err
    assert "4 runs: 4 done" in out
    code, out, err = run_cli(["report", "--store", "store", "--out", "report"], command=example_env.cli)
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
    assert len(cases) == {"model": 1 + 2 * 4, "policy": 3, "metric": 4}[kind]  # vae: two data kinds, no log_prob
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
    with pytest.raises(ValueError, match=r"curated policy with real = false and lambda \* n < 0.5 keeps no data"):
        Curated({"lambda": 0.0, "real": False}).build(_step(real, candidates))


def test_curated_retraining_raises_the_reward(installed_registry, tmp_path: Path):
    """Fully curated retraining pushes the model towards the reward's maximum (Ferbach et al. 2024, Thm 2.1).

    Data N((2, 2), I); reward -||x||; each generation keeps the half of 2n samples closest to the origin.
    Keeping the inner half shifts the fitted mean towards the origin by about 0.8 per generation (the
    mean of a half-normal-like truncation), while the standard error of a mean over n = 200 points is
    1/sqrt(200) = 0.07 per coordinate, so after 3 generations the shift exceeds 30 standard errors:
    requiring the reward-shift to be positive and larger at generation 3 than at 1 cannot fail by chance.
    """
    doc = grid_doc(
        generations=3,
        n_real=200,
        n_test=200,
        n_eval=200,
        datasets=[{"name": "gaussian", "params": {"dim": 2, "mean": 2.0}}],
        policies=[{"name": "curated", "params": {"keep": 0.5, "real": False}}],
        metrics=[{"name": "reward-shift"}, {"name": "mean-distance"}],
    )
    grid = parse_grid(doc, installed_registry)
    store = Store(tmp_path / "store")
    assert run_grid(grid, store, InlineExecutor(), installed_registry, progress=False).counts["done"] == 1
    shift = [r["metrics"]["reward-shift"]["value"] for r in store.records(grid.runs[0].run_id)]
    assert abs(shift[0]) < 0.5  # generation 0 fits the real data
    assert 0 < shift[1] < shift[3]
