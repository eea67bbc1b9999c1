"""What plugins register: named component classes, one name per kind, each tagged with its plugin.

The registry is what the ``register`` callback of every hook writes to. It refuses a second
component with a name already taken (naming both plugins) and answers unknown names with the
closest known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from benchmark.api.components import Component
from benchmark.api.kinds import KINDS
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
    #: pluggy's hook relay, for calling observer hooks such as ``on_generation_end``
    hook: Any = field(default=None, repr=False)

    def add(self, kind: str, component: type[Component], plugin: str) -> None:
        """Register ``component`` as a ``kind``; refuse a taken name or a class of the wrong kind."""
        base = KINDS[kind].base
        if not (isinstance(component, type) and issubclass(component, base)):
            raise RegistryError(
                f"plugin {plugin!r} registered {component!r} as a {kind}, but it is not a subclass of {base.__name__}"
            )
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"plugin {plugin!r} registered {component.__name__} without a name")
        taken = self.entries[kind].get(name)
        if taken is not None:
            raise RegistryError(
                f"{kind} {name!r} from plugin {plugin!r} refused: already registered by plugin {taken.plugin!r}"
            )
        self.entries[kind][name] = Entry(kind, name, component, plugin)

    def registrar(self, kind: str, plugin: str) -> Callable[[type[Component]], type[Component]]:
        """The ``register`` callback handed to one plugin's hook for one kind."""

        def register(component: type[Component]) -> type[Component]:
            self.add(kind, component, plugin)
            return component

        return register

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
        kind = next(k.name for k in KINDS.values() if k.base is base)
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
