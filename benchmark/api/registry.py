"""What plugins register: named component classes, one name per kind, each tagged with its plugin.

The plugin manager checks each component a plugin registers (``entry``) and adds one plugin's
components all together (``add_all``). A second component with a name already taken is refused,
naming both plugins; unknown names are answered with the closest known ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchmark.api.components import Component
from benchmark.api.kinds import KINDS
from benchmark.api.params import ParamError
from benchmark.errors import RegistryError, suggestion

C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Entry:
    """One registered component: its kind, name, class, and the plugin that registered it."""

    kind: str
    name: str
    component: type[Component]
    plugin: str

    @property
    def available(self) -> bool:
        return not self.component.missing_requirements()

    def unavailable_reason(self) -> str:
        """Why the component cannot run here, with the install hint, or '' when it can."""
        missing = self.component.missing_requirements()
        if not missing:
            return ""
        hint = self.component.install_hint or "pip install " + " ".join(missing)
        return f"needs {', '.join(missing)}: {hint}"


@dataclass
class Registry:
    """All registered components by kind and name, plus what is known about each plugin."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    #: plugin name -> (distribution, version)
    plugins: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: plugins that failed to import or to register: (plugin, reason)
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: plugins that loaded but registered nothing, or part of whose code never runs: (plugin, why)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    #: pluggy's hook relay, for calling observer hooks such as ``on_generation_end``
    hook: Any = field(default=None, repr=False)

    def entry(self, kind: str, component: type[Component], plugin: str) -> Entry:
        """Check ``component`` as a ``kind`` from ``plugin`` and return its entry, without adding it.

        Refuses a class of the wrong kind, a missing name, and a declared parameter whose default
        fails its own declaration (it would fail every run). Whether the name is free is ``add_all``'s check.
        """
        base = KINDS[kind].base
        if not (isinstance(component, type) and issubclass(component, base)):
            raise RegistryError(
                f"plugin {plugin!r} registered {component!r} as a {kind}, but it is not a subclass of {base.__name__}"
            )
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"plugin {plugin!r} registered {component.__name__} without a name")
        for key, param in component.parameters.items():
            try:
                param.check_default(key)
            except ParamError as exc:
                raise RegistryError(
                    f"plugin {plugin!r} registered {kind} {name!r} whose parameter {key!r} has a default "
                    f"that breaks its own declaration: {exc}"
                ) from None
        return Entry(kind, name, component, plugin)

    def add(self, kind: str, component: type[Component], plugin: str) -> None:
        """Register ``component`` as a ``kind``; refuse it as ``entry`` and ``add_all`` do."""
        self.add_all([self.entry(kind, component, plugin)])

    def add_all(self, entries: Iterable[Entry]) -> None:
        """Add entries made by ``entry`` all together (one plugin's components) or, if a name is taken, none.

        A taken name is refused naming both plugins: the one holding it and the newcomer.
        """
        entries = list(entries)
        batch: dict[tuple[str, str], Entry] = {}
        for entry in entries:
            holder = self.entries[entry.kind].get(entry.name) or batch.setdefault((entry.kind, entry.name), entry)
            if holder is not entry:
                raise RegistryError(
                    f"{entry.kind} {entry.name!r} from plugin {entry.plugin!r} refused: "
                    f"already registered by plugin {holder.plugin!r}"
                )
        for entry in entries:
            self.entries[entry.kind][entry.name] = entry

    def get(self, kind: str, name: str) -> Entry:
        """The entry called ``name``; an unknown name raises with the closest known names."""
        try:
            return self.entries[kind][name]
        except KeyError:
            known = self.entries[kind]
            raise RegistryError(
                f"unknown {kind} {name!r}{suggestion(name, known)}; known: {', '.join(sorted(known)) or 'none'}"
            ) from None

    def component(self, base: type[C], name: str) -> type[C]:
        """The class registered as ``name`` among the components of ``base``'s kind, typed as that kind.

        ``registry.component(Metric, "w2")`` is ``registry.get("metric", "w2").component`` for a type checker.
        """
        kind = next((k.name for k in KINDS.values() if k.base is base), None)
        if kind is None:
            raise RegistryError(f"{base.__name__} is not the base class of a kind ({', '.join(KINDS)})")
        found = self.get(kind, name).component
        if not issubclass(found, base):  # ``add`` refuses such classes; a registry built by hand might not
            raise RegistryError(f"{kind} {name!r} is {found!r}, not a subclass of {base.__name__}")
        return found

    def __iter__(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from sorted(self.entries[kind].values(), key=lambda e: e.name)

    def version_of(self, entry: Entry) -> str:
        """Version string that identifies the code behind ``entry``: plugin distribution and component."""
        dist, version = self.plugins.get(entry.plugin, (entry.plugin, "unknown"))
        return f"{dist}=={version}/{entry.component.version}"
