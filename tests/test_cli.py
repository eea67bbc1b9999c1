"""The command line: help, list, light imports, ``python -m benchmark``, and exit codes of real runs."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import write_grid

from benchmark.api.plugins import PLUGINS_ENV
from benchmark.cli import main
from benchmark.run.store import RunStatus, Store

COMMANDS = ["run", "list", "plugins", "status", "report"]
FIRST_PARTY = {"toy-datasets", "analytic-families", "policies", "basic-metrics"}


@pytest.mark.parametrize("argv", [["--help"], *[[c, "--help"] for c in COMMANDS]], ids=["top", *COMMANDS])
def test_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: retrainbench")
    if argv[0] != "--help":
        assert f"retrainbench {argv[0]}" in out


def test_top_level_help_names_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def _first_party(registry):
    return [e for e in registry if e.plugin in FIRST_PARTY]


def test_list_shows_every_component_with_its_parameters_and_plugin(run_cli, registry):
    code, out, err = run_cli(["list"])
    assert code == 0, err
    lines = out.splitlines()
    entries = _first_party(registry)
    assert {e.kind for e in entries} == {"dataset", "model", "policy", "metric"}
    for entry in entries:
        [at] = [
            i
            for i, line in enumerate(lines)
            if line.startswith(f"  {entry.name} ")
            and f"(plugin {entry.plugin})" in line
            and entry.component.summary() in line
            and _section(lines, i) == entry.kind
        ]
        for key, param in entry.component.parameters.items():
            assert f"      {key}: {param.describe()}" in _block(lines, at), (entry.name, key)
    for header in ("datasets:", "models:", "policies:", "metrics:", "executors:"):
        assert header in lines


def _section(lines: list[str], at: int) -> str:
    """The kind whose header precedes line ``at``."""
    header = next(line for line in reversed(lines[:at]) if line and not line.startswith(" "))
    return {"policies:": "policy"}.get(header, header.rstrip(":")[:-1])


def _block(lines: list[str], at: int) -> list[str]:
    """The parameter lines under the component listed at line ``at``."""
    block = []
    for line in lines[at + 1 :]:
        if not line.startswith("      "):
            break
        block.append(line)
    return block


def test_list_json_shows_every_component_with_its_parameters_and_plugin(run_cli, registry):
    code, out, err = run_cli(["list", "--json"])
    assert code == 0, err
    listed = {(item["kind"], item["name"]): item for item in json.loads(out)}
    for entry in _first_party(registry):
        item = listed[(entry.kind, entry.name)]
        assert item["plugin"] == entry.plugin
        assert item["summary"] == entry.component.summary()
        assert item["available"] is True and item["unavailable_reason"] == ""
        assert set(item["parameters"]) == set(entry.component.parameters)
        for key, param in entry.component.parameters.items():
            assert item["parameters"][key] == {"default": param.default, "help": param.describe()}

    code, out, _ = run_cli(["list", "policy", "--json"])
    assert code == 0
    policies = {item["name"] for item in json.loads(out)}
    assert policies >= {"mix", "replace", "accumulate", "fresh", "accumulate-subsample"}  # others may add more


@pytest.mark.parametrize(
    ("kind", "hint"),
    [("nonsense", ""), ("metrik", " (did you mean 'metric'?)"), ("policies", " (did you mean 'policy'?)")],
)
def test_list_of_an_unknown_kind_exits_2(run_cli, kind, hint):
    code, out, err = run_cli(["list", kind])
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"retrainbench: error: unknown kind {kind!r}{hint}; kinds: dataset, model, policy, metric, executor, "
        "feature-extractor"
    )


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["list"], ["list", "--json"], ["plugins"]])
def test_light_commands_import_no_heavy_library(argv, run_cli):
    script = textwrap.dedent(
        f"""
        import sys
        from benchmark.cli import main
        try:
            code = main({argv!r})
        except SystemExit as exc:
            code = exc.code
        assert code == 0, code
        heavy = sorted(m for m in ("torch", "pandas", "sklearn", "torchvision") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    code, _, err = run_cli([], command=[sys.executable, "-c", script])
    assert code == 0, err


def test_python_m_benchmark_works_like_the_console_script(run_cli):
    script = Path(sys.executable).with_name("retrainbench")
    assert script.exists(), "the console script is not installed next to this interpreter"
    for argv in (["plugins"], ["--version"], ["list", "nonsense"]):
        assert run_cli(argv) == run_cli(argv, command=[script]), argv


# ---------------------------------------------------------------- real runs


def write_tiny_grid(path: Path, models: tuple[str, ...] = ("gaussian",)) -> Path:
    """Two runs a model (``mix`` at lambda 0.0 and 0.5) of two generations each."""
    return write_grid(
        path,
        name="tiny",
        generations=2,
        n_real=40,
        n_test=40,
        n_eval=40,
        datasets=[{"name": "gaussian", "params": {"dim": 2}}],
        models=[{"name": model} for model in models],
        policies=[{"name": "mix", "params": {"lambda": [0.0, 0.5]}}],
    )


BROKEN_FAMILY = """
from benchmark import ModelFamily, Model, hookimpl


class ExplodingModel(Model):
    def fit(self, data, *, warm_start, rng):
        raise RuntimeError("fit exploded on purpose")

    def sample(self, n, rng):
        raise AssertionError("never fitted")

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Exploding(ModelFamily):
    \"\"\"A family whose fit always raises.\"\"\"

    name = "exploding"

    def create(self, data, context):
        return ExplodingModel()


@hookimpl
def register_model_families(register):
    register(Exploding)
"""


def test_a_successful_smoke_run_exits_0_into_its_own_store(run_cli, tmp_path):
    grid = write_tiny_grid(tmp_path / "tiny.toml")
    code, out, err = run_cli(["run", grid, "--smoke", "--executor", "inline"])
    assert code == 0, err
    assert out.strip() == "2 runs: 2 done"
    store = Store(tmp_path / "results" / "tiny-smoke")  # smoke results are kept apart from full runs
    assert len(store.run_ids()) == 2
    for run_id in store.run_ids():
        assert (store.status(run_id) or {}).get("status") == RunStatus.DONE
        assert store.spec(run_id)["smoke"] is True
    assert not (tmp_path / "results" / "tiny").exists()

    code, out, err = run_cli(["run", grid, "--smoke", "--executor", "inline"])  # already done: nothing to do
    assert code == 0, err
    assert out.strip() == "2 runs: 2 done, 2 already in the store"


def test_a_failing_run_exits_1_and_the_others_finish(run_cli, plugin_dir, tmp_path):
    folder = plugin_dir("plug_exploding", BROKEN_FAMILY)
    grid = write_tiny_grid(tmp_path / "tiny.toml", models=("gaussian", "exploding"))
    store_dir = tmp_path / "store"
    # the default (local) executor: its worker processes load the plugin from the environment too
    code, out, err = run_cli(
        ["run", grid, "--store", store_dir, "--workers", "2"],
        env={PLUGINS_ENV: "plug_exploding", "PYTHONPATH": str(folder)},
    )
    assert code == 1, err
    lines = out.strip().splitlines()
    assert lines[0] == "4 runs: 2 done, 2 failed"
    failures = [line for line in lines[1:] if line.startswith("  failed: ")]
    assert len(failures) == 2 and len(lines) == 3
    for line in failures:
        assert "/ exploding / mix[lambda=" in line and line.endswith("RuntimeError: fit exploded on purpose")
    store = Store(store_dir)
    statuses = {}
    for run_id in store.run_ids():
        spec, status = store.spec(run_id), store.status(run_id)
        assert status is not None
        statuses[spec["model"]["name"], spec["policy"]["params"]["lambda"]] = status["status"]
        if status["status"] == RunStatus.DONE:
            assert store.finished_generations(run_id) == [0, 1, 2]
        else:
            assert "fit exploded on purpose" in status["traceback"]
            assert store.finished_generations(run_id) == []
    assert statuses == {
        ("gaussian", 0.0): RunStatus.DONE,
        ("gaussian", 0.5): RunStatus.DONE,
        ("exploding", 0.0): RunStatus.FAILED,
        ("exploding", 0.5): RunStatus.FAILED,
    }


def test_status_and_report_take_the_grid_file_as_run_does(run_cli, tmp_path):
    one_seed = write_grid(
        tmp_path / "one.toml",
        name="tiny",
        generations=2,
        seeds=[0],
        policies=[{"name": "mix", "params": {"lambda": [0.0, 0.5]}}],
    )
    two_seeds = write_grid(
        tmp_path / "two.toml",
        name="tiny",
        generations=2,
        seeds=[0, 1],
        policies=[{"name": "mix", "params": {"lambda": [0.0, 0.5]}}],
    )
    code, _, err = run_cli(["run", one_seed, "--executor", "inline"])  # into results/tiny, the grid's default store
    assert code == 0, err

    code, out, err = run_cli(["status", two_seeds])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{Path('results') / 'tiny'}: grid 'tiny': 4 runs: 2 done, 2 not started"
    configurations = lines[1:]
    assert len(configurations) == 2  # the seeds of a configuration are counted together, no line per run
    for line in configurations:
        assert re.fullmatch(
            r"  [0-9a-f]{10}  gaussian / gaussian / mix\[lambda=0\.[05]\]: 2 seeds: 1 done, "
            r"1 not started; generation 2/2",
            line,
        ), line
    assert "3/" not in out  # generations are counted as the grid file counts them: 0..2 is generation 2/2

    code, every, err = run_cli(["status", two_seeds, "--runs"])
    assert code == 0, err
    runs = [re.fullmatch(r"    (.+?) +[0-9a-f]{16}  seed (\d)  \((.+)\)", line) for line in every.splitlines()[1:]]
    shown = sorted(m.groups() for m in runs if m)
    assert len(shown) == 4 and len(every.splitlines()) == 1 + 2 + 4, every
    assert shown == [("done", "0", "generation 2/2")] * 2 + [("not started", "1", "no generation stored")] * 2

    code, out, err = run_cli(["report", one_seed])
    assert code == 0, err
    report = tmp_path / "report" / "tiny"
    assert out.split() and all(Path(path).parent == Path("report") / "tiny" for path in out.split())
    assert (report / "results.csv").read_text().count("\n") > 1

    code, out, err = run_cli(["status"])
    assert code == 2 and out == ""
    assert err.strip() == "retrainbench: error: status: give a grid file or --store DIR"


def test_a_report_changes_no_byte_when_made_again_or_after_the_grid_runs_again(
    run_cli, registry, tmp_path, monkeypatch
):
    import datetime

    from benchmark.executors.inline import InlineExecutor
    from benchmark.run import environment
    from benchmark.run.harness import run_grid
    from benchmark.run.spec import load_grid

    grid = load_grid(write_tiny_grid(tmp_path / "tiny.toml"), registry)
    store = Store(tmp_path / "store")
    reports = []
    for hour in (1, 2):  # the grid runs again an hour later (nothing left to compute), then is reported again
        clock = datetime.datetime(2030, 1, 1, hour, tzinfo=datetime.UTC)
        monkeypatch.setattr(environment, "datetime", type("At", (), {"now": staticmethod(lambda tz, at=clock: at)}))
        run_grid(grid, store, InlineExecutor(), registry, progress=False)
        for hash_seed in ("1", "2"):  # in another process, with another order of sets and dicts of strings
            out = tmp_path / f"report-{hour}-{hash_seed}"
            code, _, err = run_cli(
                ["report", "--store", store.root, "--out", out, "--grid", "tiny"], env={"PYTHONHASHSEED": hash_seed}
            )
            assert code == 0, err
            reports.append({path.name: path.read_bytes() for path in sorted(out.iterdir())})
    assert len(reports[0]) >= 5
    for report in reports[1:]:
        assert report.keys() == reports[0].keys()
        for name in report:
            assert report[name] == reports[0][name], name
