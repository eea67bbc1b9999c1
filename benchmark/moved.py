"""Old import paths of modules that moved when the layout was grouped by concept.

Plugin packages written against the first release import ``benchmark.components``,
``benchmark.seeding``, ``plugins.flows`` and so on. ``alias`` keeps each such path working as the
very module at its new place (the same object, so classes and ``isinstance`` checks agree).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Mapping
from importlib.machinery import ModuleSpec
from types import CodeType, ModuleType

#: Old module path -> new module path, for the core.
MOVED = {
    "benchmark.components": "benchmark.api.components",
    "benchmark.params": "benchmark.api.params",
    "benchmark.hookspecs": "benchmark.api.hookspecs",
    "benchmark.registry": "benchmark.api.registry",
    "benchmark.plugins": "benchmark.api.plugins",
    "benchmark.spec": "benchmark.run.spec",
    "benchmark.seeding": "benchmark.run.seeding",
    "benchmark.loop": "benchmark.run.loop",
    "benchmark.features": "benchmark.run.features",
    "benchmark.checkpoint": "benchmark.run.checkpoint",
    "benchmark.store": "benchmark.run.store",
    "benchmark.harness": "benchmark.run.harness",
    "benchmark.status": "benchmark.run.status",
    "benchmark.environment": "benchmark.run.environment",
    "benchmark.devices": "benchmark.torch_support.devices",
    "benchmark.leaderboard": "benchmark.report.leaderboard",
}


class _Aliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path and answers with the module imported from its new one."""

    def __init__(self, moved: Mapping[str, str]) -> None:
        self.moved = dict(moved)
        self._specs: dict[str, ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in self.moved else None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.moved[spec.name])
        self._specs[spec.name] = module.__spec__  # the import system overwrites it with the alias's spec
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module was executed under its new name): give it back its own spec."""
        module.__spec__ = self._specs.pop(module.__spec__.name if module.__spec__ else "", module.__spec__)

    def get_code(self, fullname: str) -> CodeType | None:
        """``python -m OLD.PATH`` runs the module at its new path."""
        spec = importlib.util.find_spec(self.moved[fullname])
        loader = spec.loader if spec is not None else None
        return loader.get_code(spec.name) if isinstance(loader, importlib.abc.InspectLoader) and spec else None


def alias(moved: Mapping[str, str]) -> None:
    """Make every old path in ``moved`` import the module at its new path (ahead of any stale file there)."""
    sys.meta_path.insert(0, _Aliases(moved))


alias(MOVED)
