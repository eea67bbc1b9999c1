"""The plugin manager: built-ins, entry points and named modules, all loaded the same way.

First-party plugins (the top-level ``plugins`` package) are declared in pyproject.toml under the
entry-point group ``retrainbench``, exactly like a third-party package's. A plugin that fails to
import or to register is recorded with its reason and skipped, unless ``strict``.

Environment:
  RETRAINBENCH_DISABLE_PLUGIN_AUTOLOAD=1  load no entry points (only built-ins and the next variable)
  RETRAINBENCH_PLUGINS=mod.a,mod.b        also load these modules as plugins
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Iterable
from types import ModuleType

import pluggy

from benchmark import __version__
from benchmark.api import hookspecs
from benchmark.api.kinds import REGISTRATION_HOOKS
from benchmark.api.registry import Registry
from benchmark.errors import PluginLoadError, RegistryError

ENTRY_POINT_GROUP = "retrainbench"
DISABLE_AUTOLOAD_ENV = "RETRAINBENCH_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "RETRAINBENCH_PLUGINS"

#: Modules of the core that are plugins themselves and always load (like llm's default plugins).
BUILTIN_PLUGINS = (
    "benchmark.executors.inline",
    "benchmark.executors.local",
    "benchmark.executors.dask_cluster",
    "benchmark.executors.slurm",
)

_default: Registry | None = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def build_registry(
    modules: Iterable[ModuleType | str] = (),
    *,
    autoload: bool | None = None,
    strict: bool = False,
) -> Registry:
    """Load plugins and collect what they register.

    ``modules`` are loaded in addition to the built-ins, the ``RETRAINBENCH_PLUGINS`` modules and
    (unless ``autoload`` is False or the environment disables it) every entry point of the group.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry()

    def fail(plugin: str, reason: str) -> None:
        if strict:
            raise PluginLoadError(f"plugin {plugin!r} failed: {reason}")
        registry.failures.append((plugin, reason))

    def add(plugin: str, load, dist: str, version: str) -> None:
        try:
            module = load()
        except Exception as exc:  # a broken plugin must not take the others down
            fail(plugin, _describe(exc))
            return
        if pm.is_registered(module):
            return
        if pm.has_plugin(plugin):
            fail(plugin, f"a plugin named {plugin!r} is already loaded (from {registry.plugins[plugin][0]})")
            return
        try:
            pm.register(module, name=plugin)
        except pluggy.PluginValidationError as exc:  # a hook implemented with the wrong arguments
            fail(plugin, " ".join(str(exc).split()))
            return
        registry.plugins[plugin] = (dist, version)

    for name in BUILTIN_PLUGINS:
        add(name, lambda name=name: importlib.import_module(name), "retrainbench", __version__)

    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "unknown"
            add(ep.name, ep.load, dist, version)

    extra = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for item in [*extra, *modules]:
        if isinstance(item, str):
            add(item, lambda item=item: importlib.import_module(item), item, "local")
        else:
            version = str(getattr(item, "__version__", "local"))
            add(item.__name__, lambda item=item: item, item.__name__, version)

    for plugin, name in _unknown_hooks(pm):
        fail(plugin, f"implements {name!r}, which is not a retrainbench hook (hooks: {', '.join(_HOOK_NAMES)})")

    for hook_name, kind in REGISTRATION_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            register = registry.registrar(kind, impl.plugin_name)
            try:
                impl.function(**dict.fromkeys(impl.argnames, register))
            except RegistryError as exc:
                fail(impl.plugin_name, str(exc))
            except Exception as exc:
                fail(impl.plugin_name, f"{hook_name} raised {_describe(exc)}")
    registry.hook = pm.hook
    return registry


_HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith(("register_", "on_")))


def _unknown_hooks(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(plugin, hook) for implementations whose name matches no specification: a misspelt hook never runs."""
    unknown: set[tuple[str, str]] = set()
    for name in dir(pm.hook):
        caller = getattr(pm.hook, name)
        if not name.startswith("_") and getattr(caller, "spec", True) is None:
            unknown.update((impl.plugin_name, name) for impl in caller.get_hookimpls())
    return sorted(unknown)


def default_registry(strict: bool = False) -> Registry:
    """The registry of this process, built once from the environment's plugins."""
    global _default
    if _default is None:
        _default = build_registry(strict=strict)
    elif strict and _default.failures:
        plugin, reason = _default.failures[0]
        raise PluginLoadError(f"plugin {plugin!r} failed: {reason}")
    return _default
