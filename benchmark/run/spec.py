"""Grid files (TOML) -> frozen run specifications, validated against the registry before anything runs.

A grid names datasets, model families, policies and metrics with their parameters; a list-valued
parameter expands into the cartesian product, and every combination runs once per seed. Each
problem raises a GridError naming the file and the key.
"""

from __future__ import annotations

import functools
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import SCHEMA_VERSION
from benchmark.api.compatibility import unmet_need
from benchmark.api.components import Dataset, Metric, ModelFamily, Policy
from benchmark.api.kinds import GRID_SECTIONS
from benchmark.api.params import ParamError, resolve
from benchmark.api.registry import Entry, Registry
from benchmark.errors import GridError, RegistryError, suggestion
from benchmark.hashing import digest
from benchmark.run.settings import FILE_SETTINGS, RUN_SETTINGS, SMOKE_LIMITS, RunSettings, read_settings


@dataclass(frozen=True)
class ComponentSpec:
    """A component with fully resolved parameters (defaults filled in), as sorted key/value pairs."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    #: Parameters the grid set explicitly, for short labels.
    given: tuple[str, ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        """Name plus the parameters the grid set, e.g. ``mix[lambda=0.5]``."""
        shown = [f"{k}={v}" for k, v in self.params if k in self.given]
        return f"{self.name}[{','.join(shown)}]" if shown else self.name

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


def name_in_label(label: str) -> str:
    """The component's registered name in a ``label``: ``mix[lambda=0.5]`` -> ``mix``."""
    return label.split("[", 1)[0]


@dataclass(frozen=True, kw_only=True)
class RunSpec(RunSettings):
    """One run: a chain of ``generations`` retraining generations for one combination and seed, with the
    run settings it inherits from ``RunSettings``."""

    dataset: ComponentSpec
    model: ComponentSpec
    policy: ComponentSpec
    metrics: tuple[ComponentSpec, ...]
    seed: int
    #: component key -> version string of the code behind it
    versions: tuple[tuple[str, str], ...] = ()

    def canonical(self) -> dict[str, Any]:
        """What identifies the run's numbers. Settings outside the identity are left out on purpose: for
        ``generations``, generation t depends only on the generations before it, so a longer grid continues
        a shorter one's runs."""
        return {
            "schema": SCHEMA_VERSION,
            "dataset": self.dataset.canonical(),
            "model": self.model.canonical(),
            "policy": self.policy.canonical(),
            "metrics": [m.canonical() for m in self.metrics],
            "seed": self.seed,
            **self.settings(identity=True),
            "versions": dict(self.versions),
        }

    @functools.cached_property
    def run_id(self) -> str:
        return digest(self.canonical(), 16)

    @functools.cached_property
    def config_id(self) -> str:
        """What the run computes apart from its seed: runs sharing it are seeds of one configuration."""
        return digest({k: v for k, v in self.canonical().items() if k != "seed"}, 10)

    def describe(self) -> dict[str, Any]:
        """The run as stored beside its results: canonical spec, id, length and the parameters the grid set."""
        given = {
            "dataset": list(self.dataset.given),
            "model": list(self.model.given),
            "policy": list(self.policy.given),
            "metrics": [list(m.given) for m in self.metrics],
        }
        return {"run_id": self.run_id, **self.settings(identity=False), **self.canonical(), "given": given}

    @property
    def configuration_label(self) -> str:
        """What the run computes apart from its seed: ``dataset / model / policy``."""
        return f"{self.dataset.label} / {self.model.label} / {self.policy.label}"

    @property
    def label(self) -> str:
        return f"{self.configuration_label} / seed {self.seed}"


@dataclass(frozen=True)
class GridSpec:
    """A validated grid: its settings and the runs it expands into."""

    name: str
    path: str
    runs: tuple[RunSpec, ...]
    executor: ComponentSpec | None = None
    description: str = ""
    #: Combinations left out as incompatible (for example an image dataset with a vector-only family).
    skipped: tuple[str, ...] = field(default=())
    #: In smoke mode, components whose sizes do not fit the shrunk grid (their smoke runs compute something else).
    smoke_notes: tuple[str, ...] = field(default=())
    source: str = ""
    #: Seeds of one configuration train together where the family can (numbers unchanged either way).
    batch_seeds: bool = True


def _expand(where: str, key: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Cartesian product over list-valued parameters."""
    names, choices = [], []
    for name, value in params.items():
        if isinstance(value, dict):
            raise GridError(where, f"{key}.{name}", "must be a value or a list of values, not a table")
        if isinstance(value, list):
            if not value:
                raise GridError(where, f"{key}.{name}", "is an empty list: give at least one value")
            values = value
        else:
            values = [value]
        names.append(name)
        choices.append(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def _components(
    where: str,
    raw: Any,
    section: str,
    kind: str,
    registry: Registry,
    settings: Mapping[str, Any],
    smoke_settings: Mapping[str, Any] | None = None,
    smoke_notes: list[str] | None = None,
) -> list[tuple[ComponentSpec, Entry]]:
    """The components of one section, resolved and checked: parameters against their declarations, names of
    other components against the registry, sizes against the grid's ``settings``; each once only. In smoke
    mode, sizes that do not fit the shrunk ``smoke_settings`` the runs get add a line to ``smoke_notes``."""
    if not isinstance(raw, list) or not raw:
        raise GridError(where, section, f"needs at least one [[{section}]] table with a name")
    out = []
    first_key: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}
    for i, item in enumerate(raw):
        key = f"{section}[{i}]"
        if not isinstance(item, dict):
            raise GridError(where, key, "must be a table with 'name' and optional 'params'")
        extra = sorted(set(item) - {"name", "params"})
        if extra:
            raise GridError(where, f"{key}.{extra[0]}", "unknown key (a component takes only 'name' and 'params')")
        name = item.get("name")
        if not isinstance(name, str):
            raise GridError(where, f"{key}.name", "is missing or not a string")
        entry = _available(where, f"{key}.name", kind, name, registry)
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise GridError(where, f"{key}.params", "must be a table, e.g. params = { k = 1 }")
        for combo in _expand(where, f"{key}.params", params):
            try:
                resolved = resolve(entry.component.parameters, combo)
                entry.component.check_sizes(resolved, settings)
            except ParamError as exc:
                raise GridError(where, f"{key}.params.{exc.key}", str(exc)) from None
            if smoke_settings is not None and smoke_notes is not None:
                try:
                    entry.component.check_sizes(resolved, smoke_settings)
                except ParamError as exc:
                    shrunk = ", ".join(
                        f"{name} {settings[name]} to {value}"
                        for name, value in smoke_settings.items()
                        if name in FILE_SETTINGS and name in SMOKE_LIMITS and settings[name] != value
                    )
                    smoke_notes.append(
                        f"{key}.params.{exc.key}: {exc} once smoke mode shrinks {shrunk}: "
                        f"the smoke runs of {entry.component.name!r} do not compute what the grid's runs do"
                    )
            for param_key, param in entry.component.parameters.items():
                if param.registered is not None and resolved[param_key] is not None:
                    _available(where, f"{key}.params.{param_key}", param.registered, resolved[param_key], registry)
            spec = ComponentSpec(name, tuple(sorted(resolved.items())), tuple(sorted(combo)))
            identity = (spec.name, spec.params)
            if identity in first_key:
                raise GridError(
                    where,
                    key,
                    f"{kind} {spec.label!r} is listed twice (as {first_key[identity]} too, with the same "
                    "parameters once defaults are filled in): list each combination once",
                )
            first_key[identity] = key
            out.append((spec, entry))
    return out


def _available(where: str, key: str, kind: str, name: str, registry: Registry) -> Entry:
    """The registered ``kind`` called ``name``, which must be usable here; a GridError at ``key`` otherwise."""
    try:
        entry = registry.get(kind, name)
    except RegistryError as exc:
        raise GridError(where, key, str(exc)) from None
    reason = entry.unavailable_reason()
    if reason:
        raise GridError(where, key, f"{kind} {name!r} is unavailable: {reason}")
    return entry


def load_grid(path: str | Path, registry: Registry, *, smoke: bool = False) -> GridSpec:
    """Read and validate a grid file; raise GridError naming file and key on the first problem."""
    where = str(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GridError(where, "", "no such grid file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(where, "", f"cannot read: {exc}") from None
    try:
        doc = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(where, "", f"invalid TOML: {exc}") from None
    return parse_grid(doc, registry, where=where, smoke=smoke, source=source)


def parse_grid(
    doc: Mapping[str, Any], registry: Registry, *, where: str = "<grid>", smoke: bool = False, source: str = ""
) -> GridSpec:
    """Validate a parsed grid document and expand it into runs."""
    unknown = sorted(set(doc) - set(FILE_SETTINGS) - set(GRID_SECTIONS))
    if unknown:
        hint = suggestion(unknown[0], [*FILE_SETTINGS, *GRID_SECTIONS])
        raise GridError(where, unknown[0], f"unknown key{hint}")
    grid, settings = read_settings(where, doc, smoke=smoke)
    # Components are checked against the sizes the file sets, so a valid grid stays valid in smoke mode; sizes that
    # do not fit the shrunk grid are said (a `fresh` policy taking more fresh points than smoke mode's n_real
    # trains on no synthetic data at all).
    smoke_notes: list[str] = []
    file_settings = read_settings(where, doc)[1] if smoke else settings

    sections = {
        section: _components(
            where, doc.get(section), section, kind, registry, file_settings, settings if smoke else None, smoke_notes
        )
        for section, kind in GRID_SECTIONS.items()
    }

    executor = None
    if grid.executor is not None:
        try:
            executors = _components(where, [grid.executor], "executor", "executor", registry, file_settings)
        except GridError as exc:  # one table, not an array of tables: name its keys as the file spells them
            raise GridError(where, exc.key.replace("executor[0]", "executor", 1), exc.message) from None
        if len(executors) != 1:
            raise GridError(where, "executor.params", "an executor takes single values, not lists")
        executor = executors[0][0]

    runs, skipped = [], []
    for (dataset, d_entry), (model, m_entry), (policy, p_entry) in itertools.product(
        sections["datasets"], sections["models"], sections["policies"]
    ):
        family = registry.component(ModelFamily, model.name)
        data_cls = registry.component(Dataset, dataset.name)
        if data_cls.kind not in family.data_kinds:
            skipped.append(f"{model.label} cannot model {data_cls.kind} data of {dataset.label}")
            continue
        labels = {"dataset": dataset.label, "model": model.label}
        if unmet := unmet_need(registry.component(Policy, policy.name), data_cls, family):
            what, kind = unmet
            skipped.append(f"{policy.label} needs {what}, which {labels[kind]} does not have")
            continue
        metrics = []
        for metric, entry in sections["metrics"]:
            unmet = unmet_need(registry.component(Metric, metric.name), data_cls, family)
            if unmet is None:
                metrics.append((metric, entry))
            else:
                what, kind = unmet
                skipped.append(f"{metric.label} needs {what}, which {labels[kind]} does not have")
        if not metrics:  # nothing to measure: computing the run would only fill the store
            skipped.append(f"{model.label} on {dataset.label}: no metric of the grid applies to it")
            continue
        versions = {
            f"{kind}:{spec.name}": registry.version_of(entry)
            for kind, (spec, entry) in (
                ("dataset", (dataset, d_entry)),
                ("model", (model, m_entry)),
                ("policy", (policy, p_entry)),
            )
        }
        versions.update({f"metric:{spec.name}": registry.version_of(entry) for spec, entry in metrics})
        run_settings = {**settings, "warm_start": warm_start(model, family, settings["warm_start"])}
        for seed in grid.seeds:
            runs.append(
                RunSpec(
                    dataset=dataset,
                    model=model,
                    policy=policy,
                    metrics=tuple(spec for spec, _ in metrics),
                    seed=seed,
                    versions=tuple(sorted(versions.items())),
                    **run_settings,
                )
            )
    if not runs:
        raise GridError(
            where,
            "models",
            "no dataset/model/policy combination is compatible: " + "; ".join(dict.fromkeys(skipped)),
        )
    return GridSpec(
        name=grid.name,
        path=where,
        runs=tuple(runs),
        executor=executor,
        description=grid.description,
        skipped=tuple(dict.fromkeys(skipped)),
        smoke_notes=tuple(smoke_notes),
        source=source,
        batch_seeds=grid.batch_seeds,
    )


def warm_start(model: ComponentSpec, family: type[ModelFamily], grid_setting: bool | None) -> bool:
    """Whether generations t >= 1 continue from the previous generation's model, decided here only: the
    family's own ``warm_start`` parameter when the grid sets it, else the grid's ``warm_start``, else the
    family's ``warm_start_default``."""
    own = model.kwargs.get("warm_start")
    if own is not None:
        return bool(own)
    return family.warm_start_default if grid_setting is None else grid_setting


def run_spec_from_dict(data: Mapping[str, Any]) -> RunSpec:
    """Rebuild a RunSpec from ``RunSpec.describe()`` output (as stored in the store)."""

    given = data.get("given", {})

    def comp(d: Mapping[str, Any], set_by_grid: list[str] | None) -> ComponentSpec:
        return ComponentSpec(d["name"], tuple(sorted(d["params"].items())), tuple(set_by_grid or ()))

    metrics_given = given.get("metrics") or [[]] * len(data["metrics"])
    return RunSpec(
        dataset=comp(data["dataset"], given.get("dataset")),
        model=comp(data["model"], given.get("model")),
        policy=comp(data["policy"], given.get("policy")),
        metrics=tuple(comp(m, g) for m, g in zip(data["metrics"], metrics_given, strict=True)),
        seed=data["seed"],
        versions=tuple(sorted(data["versions"].items())),
        **{name: data[name] if s.required else data.get(name, s.default) for name, s in RUN_SETTINGS.items()},
    )
