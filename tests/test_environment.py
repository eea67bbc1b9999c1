"""The package versions recorded with a grid and shown in its report name every distribution that registered a
plugin, with the version its run ids carry (``local+DIGEST`` for a module loaded by name)."""

from __future__ import annotations

from conftest import grid_doc
from test_registry import _install_distribution

from benchmark.api.plugins import PLUGINS_ENV, build_registry, local_version
from benchmark.executors.inline import InlineExecutor
from benchmark.report.html import _grids
from benchmark.run.environment import describe_environment
from benchmark.run.harness import run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store

PLUGIN = """
from benchmark import Metric, hookimpl


class Spread(Metric):
    \"\"\"Standard deviation of the samples (tests only).\"\"\"

    name = "{name}"
    higher_is_better = None

    def compute(self, evaluation):
        return float(evaluation.samples.std())


@hookimpl
def register_metrics(register):
    register(Spread)
"""


def test_the_report_shows_the_versions_of_third_party_plugins(plugin_dir, monkeypatch, tmp_path):
    folder = plugin_dir("plug_env_dist", PLUGIN.format(name="env-spread"))
    _install_distribution(folder, "env-dist", {"env-plugin": "plug_env_dist"})
    plugin_dir("plug_env_local", PLUGIN.format(name="env-local-spread"))
    monkeypatch.setenv(PLUGINS_ENV, "plug_env_local")
    registry = build_registry(autoload=True)
    assert "env-plugin" in registry.plugins and "plug_env_local" in registry.plugins, registry.failures

    import plug_env_local

    local = local_version(plug_env_local)
    assert local.startswith("local+")
    packages = describe_environment(None, registry)["packages"]
    assert packages["env-dist"] == "0.1" and packages["plug_env_local"] == local
    assert "numpy" in packages  # the libraries behind the numbers are still there

    metrics = [{"name": "env-spread"}, {"name": "env-local-spread"}]
    grid = parse_grid(grid_doc(metrics=metrics), registry)
    # the versions the report shows are the ones the run ids hash
    assert dict(grid.runs[0].versions)["metric:env-local-spread"] == f"plug_env_local=={local}/1"
    store = Store(tmp_path / "store")
    run_grid(grid, store, InlineExecutor(), registry, progress=False)
    [shown] = _grids(store, None)
    assert ("env-dist", "0.1") in shown.packages and ("plug_env_local", local) in shown.packages
