"""Plugin loading and registration: duplicates, unknown names, broken plugins, environment switches, observers."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import grid_doc, write_grid

import benchmark
from benchmark import Dataset, Metric, Param, hookimpl
from benchmark.api.plugins import BUILTIN_PLUGINS, DISABLE_AUTOLOAD_ENV, ENTRY_POINT_GROUP, PLUGINS_ENV, build_registry
from benchmark.errors import PluginLoadError, RegistryError
from benchmark.executors.inline import InlineExecutor
from benchmark.run.harness import run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store

FIRST_PARTY = {"toy-datasets", "analytic-families", "policies", "basic-metrics"}


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(PLUGINS_ENV, raising=False)


def dataset_class(name: str) -> type[Dataset]:
    class Data(Dataset):
        def draw(self, n, rng):
            return rng.standard_normal((n, 1))

    Data.name = name
    return Data


def plugin(module_name: str, **hooks) -> types.ModuleType:
    """A plugin module whose hooks are the given functions (named after the hook they implement)."""
    module = types.ModuleType(module_name)
    for hook, function in hooks.items():
        setattr(module, hook, hookimpl(function))
    return module


def registers_datasets(module_name: str, *classes) -> types.ModuleType:
    def register_datasets(register):
        for cls in classes:
            register(cls)

    return plugin(module_name, register_datasets=register_datasets)


# ---------------------------------------------------------------- registration


def test_components_are_registered_with_their_plugin():
    first, second = dataset_class("alpha"), dataset_class("beta")
    registry = build_registry([registers_datasets("plug_one", first, second)], autoload=False)
    assert registry.failures == []
    assert registry.get("dataset", "alpha").component is first
    assert registry.get("dataset", "beta").plugin == "plug_one"
    assert registry.plugins["plug_one"] == ("plug_one", "local")


def test_a_duplicate_name_is_refused_naming_both_plugins():
    original, clash = dataset_class("twin"), dataset_class("twin")
    modules = [registers_datasets("plug_first", original), registers_datasets("plug_second", clash)]
    registry = build_registry(modules, autoload=False)
    entry = registry.get("dataset", "twin")
    assert entry.component is original and entry.plugin == "plug_first"
    [(failed, reason)] = registry.failures
    assert failed == "plug_second"
    assert "'twin'" in reason and "plug_first" in reason and "plug_second" in reason

    with pytest.raises(PluginLoadError, match=r"plug_second.*plug_first"):
        build_registry(modules, autoload=False, strict=True)


def test_a_name_taken_by_a_first_party_plugin_is_refused():
    registry = build_registry([registers_datasets("plug_moons", dataset_class("moons"))], autoload=True)
    assert registry.get("dataset", "moons").plugin == "toy-datasets"
    # other installed plugins may fail for their own reasons; this one must fail for the clash
    [reason] = [reason for failed, reason in registry.failures if failed == "plug_moons"]
    assert "'moons'" in reason and "toy-datasets" in reason


def test_the_same_name_in_two_kinds_is_allowed():
    class Twin(Metric):
        name = "twin"

        def compute(self, evaluation):
            return 0.0

    module = plugin(
        "plug_kinds",
        register_datasets=lambda register: register(dataset_class("twin")),
        register_metrics=lambda register: register(Twin),
    )
    registry = build_registry([module], autoload=False)
    assert registry.failures == []
    assert registry.get("metric", "twin").component is Twin
    assert registry.get("dataset", "twin").kind == "dataset"


def test_an_unknown_name_suggests_the_closest():
    registry = build_registry(
        [registers_datasets("plug_names", dataset_class("spiral"), dataset_class("blobs"))], autoload=False
    )
    expected = r"unknown dataset 'spirall' \(did you mean 'spiral'\?\); known: blobs, spiral"
    with pytest.raises(RegistryError, match=expected):
        registry.get("dataset", "spirall")
    with pytest.raises(RegistryError) as info:
        registry.get("dataset", "zzz")
    assert "did you mean" not in str(info.value) and "known: blobs, spiral" in str(info.value)


@pytest.mark.parametrize(
    ("registered", "message"),
    [
        (type("NotAData", (Metric,), {"name": "wrong", "compute": lambda self, e: 0.0}), "not a subclass of Dataset"),
        (object, "not a subclass of Dataset"),
        ("a string", "not a subclass of Dataset"),
        (type("Nameless", (Dataset,), {}), "without a name"),
    ],
    ids=["metric-as-dataset", "plain-class", "not-a-class", "no-name"],
)
def test_registering_the_wrong_thing_is_refused(registered, message):
    good = dataset_class("fine")
    registry = build_registry(
        [registers_datasets("plug_wrong", registered), registers_datasets("plug_good", good)], autoload=False
    )
    [(failed, reason)] = registry.failures
    assert failed == "plug_wrong" and message in reason
    assert registry.entries["dataset"] == {"fine": registry.get("dataset", "fine")}
    assert registry.get("dataset", "fine").component is good


# ---------------------------------------------------------------- broken plugins


def test_a_plugin_whose_import_raises_is_reported_and_skipped(plugin_dir):
    plugin_dir(
        "plug_working",
        """
        from benchmark import Dataset, hookimpl

        class Working(Dataset):
            name = "working"

        @hookimpl
        def register_datasets(register):
            register(Working)
        """,
    )
    folder = plugin_dir("plug_broken", 'raise RuntimeError("no GPU driver 42")\n')
    registry = build_registry(["plug_broken", "plug_working", "plug_not_there"], autoload=True)
    failures = [(name, reason) for name, reason in registry.failures if name.startswith("plug_")]
    assert failures == [
        ("plug_broken", f"RuntimeError: no GPU driver 42 (at {folder / 'plug_broken.py'}:1)"),
        ("plug_not_there", "ModuleNotFoundError: No module named 'plug_not_there'"),
    ]
    assert registry.get("dataset", "working").plugin == "plug_working"
    assert registry.get("dataset", "moons").plugin == "toy-datasets"  # the entry points still load
    assert "plug_broken" not in registry.plugins

    with pytest.raises(PluginLoadError, match=r"'plug_broken' failed: RuntimeError: no GPU driver 42"):
        build_registry(["plug_broken", "plug_working"], autoload=False, strict=True)


def test_a_plugin_whose_hook_raises_is_reported():
    def register_datasets(register):
        raise KeyError("oops")

    registry = build_registry(
        [
            plugin("plug_raises", register_datasets=register_datasets),
            registers_datasets("plug_ok", dataset_class("ok")),
        ],
        autoload=False,
    )
    assert registry.failures == [
        ("plug_raises", "register_datasets raised KeyError: 'oops'; nothing of it was registered")
    ]
    assert registry.get("dataset", "ok").plugin == "plug_ok"


# ---------------------------------------------------------------- environment and entry points


def test_disabling_autoload_leaves_only_the_builtin_executors(monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    registry = build_registry()
    assert set(registry.plugins) == set(BUILTIN_PLUGINS)
    assert registry.failures == []
    assert {e.kind for e in registry} == {"executor"}
    assert set(registry.entries["executor"]) >= {"inline", "local"}


def test_plugins_named_in_the_environment_are_loaded(monkeypatch, plugin_dir):
    for name in ("plug_env_a", "plug_env_b"):
        plugin_dir(
            name,
            f"""
            from benchmark import Dataset, hookimpl

            class Data(Dataset):
                name = "{name}-data"

            @hookimpl
            def register_datasets(register):
                register(Data)
            """,
        )
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    monkeypatch.setenv(PLUGINS_ENV, " plug_env_a, plug_env_b ,")
    registry = build_registry()
    assert set(registry.plugins) == {*BUILTIN_PLUGINS, "plug_env_a", "plug_env_b"}
    assert registry.get("dataset", "plug_env_a-data").plugin == "plug_env_a"
    assert registry.get("dataset", "plug_env_b-data").plugin == "plug_env_b"
    assert registry.failures == []


def test_first_party_plugins_come_through_the_entry_point_group(registry):
    points = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert set(points) >= FIRST_PARTY
    for name in FIRST_PARTY:
        assert points[name].value.startswith("plugins.")
        assert points[name].dist.name == "retrainbench"
        assert registry.plugins[name] == ("retrainbench", benchmark.__version__)
    assert registry.get("policy", "mix").plugin == "policies"
    assert registry.get("metric", "nll").plugin == "basic-metrics"
    assert registry.get("model", "kde").plugin == "analytic-families"


def test_the_version_of_a_component_names_its_distribution(registry):
    entry = registry.get("model", "gaussian")
    assert registry.version_of(entry) == f"retrainbench=={benchmark.__version__}/{entry.component.version}"


def test_the_version_of_a_module_loaded_by_name_follows_its_source(plugin_dir):
    """Stored runs of a local plugin are not reused once its code changes: its source is in the run ids."""
    source = """
        from benchmark import Dataset, hookimpl

        class Local(Dataset):
            name = "local-data"
            scale = {scale}

        @hookimpl
        def register_datasets(register):
            register(Local)
        """

    def version(scale: float) -> str:
        plugin_dir("plug_edited", source.format(scale=scale))
        sys.modules.pop("plug_edited", None)
        registry = build_registry(["plug_edited"], autoload=False, strict=True)
        return registry.version_of(registry.get("dataset", "local-data"))

    first = version(1.0)
    assert first.startswith("plug_edited==local+") and first == version(1.0)
    assert version(2.0) != first


# ---------------------------------------------------------------- CLI


def test_cli_plugins_shows_a_broken_plugin_and_strict_exits_2(run_cli):
    env = {PLUGINS_ENV: "some_missing_module"}
    reason = "ModuleNotFoundError: No module named 'some_missing_module'"
    code, out, err = run_cli(["plugins"], env=env)
    assert code == 0, err
    assert f"some_missing_module  FAILED: {reason}" in out
    assert "toy-datasets  (retrainbench" in out
    assert f"plugin 'some_missing_module' skipped: {reason}" in err

    code, out, err = run_cli(["plugins", "--strict-plugins"], env=env)
    assert code == 2
    assert err.strip() == f"retrainbench: error: plugin 'some_missing_module' failed: {reason}"
    assert out == ""


def test_cli_strict_plugins_refuses_a_run_before_writing(run_cli, tmp_path: Path):
    grid = write_grid(tmp_path / "grid.toml")
    code, _, err = run_cli(
        ["run", grid, "--store", tmp_path / "store", "--strict-plugins"], env={PLUGINS_ENV: "some_missing_module"}
    )
    assert code == 2 and "some_missing_module" in err
    assert not (tmp_path / "store").exists()


# ---------------------------------------------------------------- observers


def test_on_generation_end_is_called_once_per_generation_with_the_record(tmp_path: Path):
    calls: list[tuple[dict, dict]] = []

    def on_generation_end(run, record):
        calls.append((run, record))

    module = plugin("plug_observer", on_generation_end=on_generation_end)
    registry = build_registry([module], autoload=True)
    grid = parse_grid(
        grid_doc(generations=3, seeds=[0, 1], policies=[{"name": "mix", "params": {"lambda": 0.5}}]), registry
    )
    store = Store(tmp_path / "store")
    summary = run_grid(grid, store, InlineExecutor(), registry, progress=False)
    assert summary.counts["done"] == 2

    assert len(calls) == 2 * (3 + 1)
    for run in grid.runs:
        mine = [(r, rec) for r, rec in calls if r["run_id"] == run.run_id]
        assert [rec["generation"] for _, rec in mine] == [0, 1, 2, 3]
        assert [rec for _, rec in mine] == store.records(run.run_id)
        assert all(r == run.describe() for r, _ in mine)
        assert all(np.isfinite(rec["metrics"]["variance"]["value"]) for _, rec in mine)

    # finished runs are skipped: no generation is computed, so nothing is observed again
    again = run_grid(grid, store, InlineExecutor(), registry, progress=False)
    assert [o.computed for o in again.outcomes] == [False, False]
    assert len(calls) == 8


def test_a_hook_with_wrong_arguments_or_a_misspelt_hook_is_reported_not_fatal():
    import types

    from benchmark import hookimpl
    from benchmark.api.plugins import build_registry

    wrong = types.ModuleType("wrong_arguments")

    @hookimpl
    def register_datasets(reg):  # the spec's argument is `register`
        pass

    wrong.register_datasets = register_datasets
    misspelt = types.ModuleType("misspelt_hook")

    @hookimpl
    def register_dataset(register):
        pass

    misspelt.register_dataset = register_dataset
    registry = build_registry([wrong, misspelt, "plugins.policies"], autoload=False)
    reasons = dict(registry.failures)
    assert "'reg'" in reasons["wrong_arguments"] and "\n" not in reasons["wrong_arguments"]
    assert "'register_dataset', which is not a retrainbench hook" in reasons["misspelt_hook"]
    assert "mix" in registry.entries["policy"]  # the others still load


# ---------------------------------------------------------------- all or nothing, first party first


def _install_distribution(folder: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution in ``folder`` (on sys.path) declaring ``retrainbench`` entry points."""
    info = folder / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {module}" for name, module in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    importlib.invalidate_caches()


def test_a_third_party_plugin_cannot_take_a_first_party_name(plugin_dir, registry):
    folder = plugin_dir(
        "plug_impostor",
        """
        from benchmark import Metric, hookimpl

        class Extra(Metric):
            name = "impostor-extra"

            def compute(self, evaluation):
                return 0.0

        class FakeW2(Metric):
            name = "w2"

            def compute(self, evaluation):
                return -1.0

        @hookimpl
        def register_metrics(register):
            register(Extra)
            register(FakeW2)
        """,
    )
    _install_distribution(folder, "impostor", {"aaa-impostor": "plug_impostor"})  # sorts before every first party
    with_impostor = build_registry(autoload=True)

    first_party_w2 = registry.get("metric", "w2")
    assert with_impostor.get("metric", "w2").plugin == first_party_w2.plugin
    assert with_impostor.get("metric", "w2").component is first_party_w2.component
    assert set(with_impostor.entries["metric"]) == set(registry.entries["metric"])  # no first-party metric lost
    [reason] = [reason for failed, reason in with_impostor.failures if failed == "aaa-impostor"]
    assert "'w2'" in reason and "aaa-impostor" in reason and first_party_w2.plugin in reason
    assert first_party_w2.plugin not in dict(with_impostor.failures)
    assert "aaa-impostor" not in with_impostor.plugins

    with pytest.raises(PluginLoadError, match="aaa-impostor"):
        build_registry(autoload=True, strict=True)


def test_a_plugin_that_fails_registers_none_of_its_components_or_hooks():
    def on_generation_end(run, record):
        pass

    def register_metrics(register):
        register(type("Lonely", (Metric,), {"name": "lonely", "compute": lambda self, e: 0.0}))

    half = plugin(
        "plug_half",
        register_datasets=lambda register: [register(dataset_class("solo")), register(dataset_class("twin"))],
        register_metrics=register_metrics,
        on_generation_end=on_generation_end,
    )
    registry = build_registry([registers_datasets("plug_whole", dataset_class("twin")), half], autoload=False)
    [(failed, reason)] = registry.failures
    assert failed == "plug_half" and "plug_whole" in reason and "'twin'" in reason
    assert set(registry.entries["dataset"]) == {"twin"} and registry.get("dataset", "twin").plugin == "plug_whole"
    assert "lonely" not in registry.entries["metric"]
    assert "plug_half" not in registry.plugins
    assert [impl.plugin_name for impl in registry.hook.on_generation_end.get_hookimpls()] == []


def test_a_misspelt_hook_suggests_the_right_name_and_its_plugin_registers_nothing():
    module = plugin(
        "plug_misspelt",
        register_datasets=lambda register: register(dataset_class("spelt")),
        register_metric=lambda register: None,
    )
    registry = build_registry([module], autoload=False)
    [(failed, reason)] = registry.failures
    assert failed == "plug_misspelt"
    assert "'register_metric'" in reason and "did you mean 'register_metrics'" in reason
    assert "spelt" not in registry.entries["dataset"]
    assert "plug_misspelt" not in registry.plugins


def test_a_plugin_that_registers_nothing_is_warned_about(plugin_dir, run_cli):
    folder = plugin_dir(
        "plug_unmarked",
        """
        from benchmark import Dataset

        class Unmarked(Dataset):
            name = "unmarked"

        def register_datasets(register):  # no @hookimpl: pluggy never calls it
            register(Unmarked)
        """,
    )
    plugin_dir(
        "plug_no_arguments",
        """
        from benchmark import hookimpl

        @hookimpl
        def register_datasets():  # no `register` argument: nothing can be registered
            pass
        """,
    )
    registry = build_registry(["plug_unmarked", "plug_no_arguments"], autoload=False)
    assert registry.failures == []
    warnings = dict(registry.warnings)
    assert "registered nothing" in warnings["plug_unmarked"] and "@hookimpl" in warnings["plug_unmarked"]
    assert "registered nothing" in warnings["plug_no_arguments"] and "'register'" in warnings["plug_no_arguments"]

    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    code, out, err = run_cli(["plugins"], env={PLUGINS_ENV: "plug_unmarked", "PYTHONPATH": path})
    assert code == 0, err
    version = registry.plugins["plug_unmarked"][1]
    assert version.startswith("local+")
    assert f"plug_unmarked  (plug_unmarked {version})\n    ({warnings['plug_unmarked']})\n" in out
    assert "FAILED" not in out
    assert f"retrainbench: warning: plugin 'plug_unmarked' {warnings['plug_unmarked']}" in err


def test_an_import_error_names_the_file_and_line_of_the_plugin(plugin_dir):
    folder = plugin_dir("plug_bad_import", "import math\nimport no_such_dependency_42\n")
    registry = build_registry(["plug_bad_import"], autoload=False)
    [(failed, reason)] = registry.failures
    assert failed == "plug_bad_import"
    expected = f"ModuleNotFoundError: No module named 'no_such_dependency_42' (at {folder / 'plug_bad_import.py'}:2)"
    assert reason == expected


def test_a_parameter_default_that_breaks_its_own_declaration_is_refused():
    class Skewed(Metric):
        name = "skewed"
        parameters = {"k": Param(0, int, low=1, help="neighbours")}

        def compute(self, evaluation):
            return 0.0

    module = plugin("plug_skewed", register_metrics=lambda register: register(Skewed))
    registry = build_registry([module], autoload=False)
    [(failed, reason)] = registry.failures
    assert failed == "plug_skewed"
    assert "plug_skewed" in reason and "'skewed'" in reason and "'k'" in reason and ">= 1" in reason
    assert "skewed" not in registry.entries["metric"]
