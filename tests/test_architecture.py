"""The layout's rules, checked on the source: no import cycles, the core never imports a plugin, the kinds
table matches the hooks, and code written against the first release still imports and declares as it did."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from benchmark import Dataset, ModelFamily
from benchmark.api import hookspecs
from benchmark.api.kinds import GRID_SECTIONS, KINDS, REGISTRATION_HOOKS
from benchmark.moved import MOVED
from plugins import MOVED as PLUGINS_MOVED

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "plugins")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports anywhere in its source (in functions too: a hidden cycle is a cycle)."""
    modules = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    aliases = {**MOVED, **PLUGINS_MOVED}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` imports the module; `from module import name` the module itself
                found = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            else:
                continue
            for target in found:
                target = aliases.get(target, target)
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from the module where it closes)."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_core_never_imports_a_plugin():
    offenders = {
        (name, target)
        for name, targets in import_graph().items()
        if name.startswith("benchmark")
        for target in targets
        if target.startswith("plugins")
    }
    assert offenders == set()


#: Inside the core, what each layer must never import: the API knows no run, report, executor or kit; a run
#: is computed without knowing how it will be reported (reports read the store, never the reverse).
FORBIDDEN = {
    "benchmark.api": ("benchmark.run", "benchmark.report", "benchmark.executors", "benchmark.testing"),
    "benchmark.run": ("benchmark.report", "benchmark.testing"),
}


def test_the_core_layers_import_one_way():
    offenders = {
        (name, target)
        for name, targets in import_graph().items()
        for layer, forbidden in FORBIDDEN.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if target.startswith(forbidden)
    }
    assert offenders == set()


def test_every_kind_has_its_hook_and_every_registration_hook_its_kind():
    specs = {name for name in vars(hookspecs) if name.startswith("register_")}
    assert set(REGISTRATION_HOOKS) == specs
    assert set(GRID_SECTIONS.values()) <= set(KINDS)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_are_the_new_modules(old: str):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


@pytest.mark.parametrize("old", sorted(PLUGINS_MOVED))
def test_old_plugin_paths_are_the_new_modules(old: str):
    if old in ("plugins.flows", "plugins.diffusion", "plugins.torch_support"):
        pytest.importorskip("torch")
    assert importlib.import_module(old) is importlib.import_module(PLUGINS_MOVED[old])


def test_first_release_declarations_still_mean_what_they_meant():
    class OldFamily(ModelFamily):
        """Declares its likelihood the 0.1 way."""

        name = "old-family"
        has_log_prob = True

        def create(self, data, context):
            raise NotImplementedError

    class OldDataset(Dataset):
        """Declares its density and modes the 0.1 way."""

        name = "old-dataset"
        has_density = True

        def modes(self):
            return None

    class OldDatasetWithoutDensity(OldDataset):
        """Turns its parent's density off the 0.1 way."""

        name = "old-dataset-without-density"
        has_density = False

    assert OldFamily.provides == {"log_prob"} and OldFamily.has_log_prob
    assert OldDataset.provides == {"density", "modes"} and OldDataset.has_density
    assert OldDatasetWithoutDensity.provides == {"modes"} and not OldDatasetWithoutDensity.has_density
    assert not ModelFamily.has_log_prob and not Dataset.has_density
    assert ModelFamily.provides == frozenset() and Dataset.provides == frozenset()


#: Names plugins written for retrainbench 0.1 import, at their 0.1 paths.
FIRST_RELEASE_NAMES = [
    ("benchmark.components", "ModelFamily"),
    ("benchmark.params", "Param"),
    ("benchmark.seeding", "stream"),
    ("benchmark.seeding", "derive_int"),
    ("benchmark.checkpoint", "save"),
    ("benchmark.harness", "RunTask"),
    ("benchmark.testing", "conformance_cases"),
    ("benchmark.testing", "run_in_memory"),
    ("plugins.policies", "Mix"),
    ("plugins.basic_metrics", "flatten"),
    ("plugins.sample_metrics", "frechet_distance"),
    ("plugins.sample_metrics", "wasserstein"),
    ("plugins.sample_metrics", "prdc"),
    ("plugins.toy_datasets", "EightGaussians"),
]


@pytest.mark.parametrize(("module", "name"), FIRST_RELEASE_NAMES)
def test_names_of_the_first_release_still_import(module: str, name: str):
    assert hasattr(importlib.import_module(module), name)
