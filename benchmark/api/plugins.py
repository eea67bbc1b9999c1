"""The plugin manager: built-ins, entry points and named modules, all loaded the same way.

First-party plugins (the top-level ``plugins`` package) are declared in pyproject.toml under the
entry-point group ``retrainbench``, exactly like a third-party package's. A plugin that fails to
import or to register is recorded with its reason and skipped, unless ``strict``.

Environment:
  RETRAINBENCH_DISABLE_PLUGIN_AUTOLOAD=1  load no entry points (only built-ins and the next variable)
  RETRAINBENCH_PLUGINS=mod.a,mod.b        also load these modules as plugins

A module loaded by name (or passed without a ``__version__``) has no distribution version; its
version is ``local+`` and a digest of its source files, so a change to its code changes the run
ids of its components and no stored run of the old code is reused.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pluggy

from benchmark import __version__
from benchmark.api import hookspecs
from benchmark.api.kinds import REGISTRATION_HOOKS
from benchmark.api.registry import Entry, Registry
from benchmark.errors import PluginLoadError, RegistryError, suggestion
from benchmark.hashing import digest

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
    First-party plugins load and register first, so a name they register cannot be taken; each
    plugin's registration is all or nothing (see ``_register``).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    loaded: list[tuple[str, ModuleType]] = []

    def fail(plugin: str, reason: str) -> None:
        if strict:
            raise PluginLoadError(f"plugin {plugin!r} failed: {reason}")
        registry.failures.append((plugin, reason))

    def add(plugin: str, load, dist: str, version: str | None, module_name: str) -> None:
        """Load and register one plugin; ``version`` None: the digest of its source (``local_version``)."""
        try:
            module = load()
        except Exception as exc:  # a broken plugin must not take the others down
            fail(plugin, _describe(exc) + _import_site(exc, module_name))
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
        registry.plugins[plugin] = (dist, local_version(module) if version is None else version)
        loaded.append((plugin, module))

    for name in BUILTIN_PLUGINS:
        add(name, lambda name=name: importlib.import_module(name), FIRST_PARTY, __version__, name)

    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        for ep in _entry_points_first_party_first():
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "unknown"
            add(ep.name, ep.load, dist, version, ep.module)

    extra = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for item in [*extra, *modules]:
        if isinstance(item, str):
            add(item, lambda item=item: importlib.import_module(item), item, None, item)
        else:
            declared = getattr(item, "__version__", None)
            add(
                item.__name__,
                lambda item=item: item,
                item.__name__,
                None if declared is None else str(declared),
                item.__name__,
            )

    for plugin, module in loaded:
        try:
            warning = _register(pm, registry, plugin, module)
        except RegistryError as exc:
            pm.unregister(module)
            del registry.plugins[plugin]
            fail(plugin, f"{exc}; nothing of it was registered")
            continue
        if warning:
            registry.warnings.append((plugin, warning))
    registry.hook = pm.hook
    return registry


def local_version(module: ModuleType) -> str:
    """``local+DIGEST`` of a module's source (a package's: every .py file under it); ``local`` without a file.

    The version of a plugin that no distribution names: editing its code changes it, so runs of
    the old code are not taken for runs of the new one.
    """
    file = getattr(module, "__file__", None)
    if not file:
        return "local"
    folders = [Path(folder) for folder in getattr(module, "__path__", ())]  # a package's folders
    files = [(path.relative_to(folder), path) for folder in folders for path in folder.rglob("*.py")]
    try:
        sources = {
            str(name): hashlib.sha256(path.read_bytes()).hexdigest()
            for name, path in (files if folders else [(Path(Path(file).name), Path(file))])
        }
    except OSError:
        return "local"
    return "local+" + digest(sources, 12)


#: The distribution of the first-party plugins and of the built-in executors.
FIRST_PARTY = "retrainbench"

_HOOK_NAMES = sorted(name for name in dir(hookspecs) if name.startswith(("register_", "on_")))


def _entry_points_first_party_first() -> list[importlib.metadata.EntryPoint]:
    """The group's entry points, first party first, then by name: whatever a third party calls its entry point."""
    points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(points, key=lambda ep: (not (ep.dist and ep.dist.name == FIRST_PARTY), ep.name))


def _register(pm: pluggy.PluginManager, registry: Registry, plugin: str, module: ModuleType) -> str:
    """Run one plugin's registration hooks and add what they registered all together; return a warning or ''.

    Raises RegistryError, registering nothing, when a hook is misspelt, raises, or registers a
    component the registry refuses (a taken name, the wrong kind, a default breaking its declaration).
    """
    for caller in pm.get_hookcallers(module) or []:
        if caller.spec is None:  # pluggy accepts any marked function; one whose name matches no hook never runs
            hint = suggestion(caller.name, _HOOK_NAMES) or f" (hooks: {', '.join(_HOOK_NAMES)})"
            raise RegistryError(f"implements {caller.name!r}, which is not a retrainbench hook{hint}")
    staged: list[Entry] = []
    notes: list[str] = []
    observes = False
    for hook_name in _HOOK_NAMES:
        kind = REGISTRATION_HOOKS.get(hook_name)
        impls = [impl for impl in getattr(pm.hook, hook_name).get_hookimpls() if impl.plugin is module]
        if pm.parse_hookimpl_opts(module, hook_name) is None and callable(getattr(module, hook_name, None)):
            notes.append(f"{hook_name} is not marked @hookimpl, so it never runs")
        if kind is None:
            observes = observes or bool(impls)
            continue
        for impl in impls:
            if not impl.argnames:
                notes.append(f"{hook_name} takes no 'register' argument, so it cannot register anything")

            def register(component, kind=kind):
                staged.append(registry.entry(kind, component, plugin))
                return component

            try:
                impl.function(**dict.fromkeys(impl.argnames, register))
            except RegistryError:
                raise
            except Exception as exc:
                raise RegistryError(f"{hook_name} raised {_describe(exc)}") from exc
    registry.add_all(staged)
    if staged or observes:
        return "; ".join(notes)
    return "registered nothing: " + ("; ".join(notes) or "it implements no retrainbench hook")


def _import_site(exc: BaseException, module_name: str) -> str:
    """' (at FILE:LINE)' of the last traceback frame in the plugin's own files, or '' when there is none."""
    roots = _source_roots(module_name)
    if not roots:
        return ""
    sites = [(frame.filename, frame.lineno) for frame in traceback.extract_tb(exc.__traceback__)]
    if isinstance(exc, SyntaxError) and exc.filename:  # the failing line is in no frame
        sites.append((exc.filename, exc.lineno))
    own = [(filename, line) for filename, line in sites if filename.startswith(roots)]
    return f" (at {own[-1][0]}:{own[-1][1]})" if own else ""


def _source_roots(module_name: str) -> tuple[str, ...]:
    """The file, or the package folders, holding the top-level module of ``module_name``."""
    try:
        spec = importlib.util.find_spec(module_name.partition(".")[0])
    except (ImportError, ValueError):
        return ()
    if spec is None:
        return ()
    if spec.submodule_search_locations:
        return tuple(os.path.join(folder, "") for folder in spec.submodule_search_locations)
    return (spec.origin,) if spec.origin else ()


def default_registry(strict: bool = False) -> Registry:
    """The registry of this process, built once from the environment's plugins."""
    global _default
    if _default is None:
        _default = build_registry(strict=strict)
    elif strict and _default.failures:
        plugin, reason = _default.failures[0]
        raise PluginLoadError(f"plugin {plugin!r} failed: {reason}")
    return _default
