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
from benchmark.api.kinds import GRID_SECTIONS
from benchmark.api.params import ParamError, resolve
from benchmark.api.registry import Registry
from benchmark.errors import GridError, RegistryError, suggestion
from benchmark.hashing import digest

#: Smoke mode's budget: every grid shrinks to this so a CI pipeline can run it in seconds.
SMOKE_LIMITS = {"generations": 2, "n_real": 200, "n_test": 200, "n_eval": 200, "seeds": 1, "train_steps": 20}

_SETTINGS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    # key: (accepted types, required)
    "name": (str, True),
    "description": (str, False),
    "generations": (int, True),
    "seeds": (list, True),
    "n_real": (int, True),
    "n_test": (int, True),
    "n_eval": (int, True),
    "train_steps": (int, False),
    "warm_start": (bool, False),
    "device": (str, False),
    "executor": (dict, False),
}


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


@dataclass(frozen=True)
class RunSpec:
    """One run: a chain of ``generations`` retraining generations for one combination and seed."""

    dataset: ComponentSpec
    model: ComponentSpec
    policy: ComponentSpec
    metrics: tuple[ComponentSpec, ...]
    seed: int
    generations: int
    n_real: int
    n_test: int
    n_eval: int
    warm_start: bool
    train_steps: int | None = None
    max_train_steps: int | None = None
    device: str = "auto"
    smoke: bool = False
    #: component key -> version string of the code behind it
    versions: tuple[tuple[str, str], ...] = ()

    def canonical(self) -> dict[str, Any]:
        """What identifies the run's numbers. ``generations`` is left out on purpose: generation t depends
        only on the generations before it, so a longer grid continues a shorter one's runs."""
        return {
            "schema": SCHEMA_VERSION,
            "dataset": self.dataset.canonical(),
            "model": self.model.canonical(),
            "policy": self.policy.canonical(),
            "metrics": [m.canonical() for m in self.metrics],
            "seed": self.seed,
            "n_real": self.n_real,
            "n_test": self.n_test,
            "n_eval": self.n_eval,
            "warm_start": self.warm_start,
            "train_steps": self.train_steps,
            "max_train_steps": self.max_train_steps,
            "device": self.device,
            "smoke": self.smoke,
            "versions": dict(self.versions),
        }

    @functools.cached_property
    def run_id(self) -> str:
        return digest(self.canonical(), 16)

    def describe(self) -> dict[str, Any]:
        """The run as stored beside its results: canonical spec, id, length and the parameters the grid set."""
        given = {
            "dataset": list(self.dataset.given),
            "model": list(self.model.given),
            "policy": list(self.policy.given),
            "metrics": [list(m.given) for m in self.metrics],
        }
        return {"run_id": self.run_id, "generations": self.generations, **self.canonical(), "given": given}

    @property
    def label(self) -> str:
        return f"{self.dataset.label} / {self.model.label} / {self.policy.label} / seed {self.seed}"


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
    source: str = ""


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
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def _components(where: str, raw: Any, section: str, kind: str, registry: Registry) -> list[tuple[ComponentSpec, type]]:
    if not isinstance(raw, list) or not raw:
        raise GridError(where, section, f"needs at least one [[{section}]] table with a name")
    out = []
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
        try:
            entry = registry.get(kind, name)
        except RegistryError as exc:
            raise GridError(where, f"{key}.name", str(exc)) from None
        reason = entry.unavailable_reason()
        if reason:
            raise GridError(where, f"{key}.name", f"{kind} {name!r} is unavailable: {reason}")
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise GridError(where, f"{key}.params", "must be a table, e.g. params = { k = 1 }")
        for combo in _expand(where, f"{key}.params", params):
            try:
                resolved = resolve(entry.component.parameters, combo)
            except ParamError as exc:
                raise GridError(where, f"{key}.params.{exc.key}", str(exc)) from None
            spec = ComponentSpec(name, tuple(sorted(resolved.items())), tuple(sorted(combo)))
            out.append((spec, entry))
    return out


def _setting(where: str, doc: Mapping[str, Any], key: str) -> Any:
    types, required = _SETTINGS[key]
    if key not in doc:
        if required:
            raise GridError(where, key, "is required")
        return None
    value = doc[key]
    accepted = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
        names = {int: "an integer", str: "a string", list: "a list", bool: "true or false", dict: "a table"}
        raise GridError(where, key, f"must be {names[accepted[0]]} (got {value!r})")
    return value


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
    unknown = sorted(set(doc) - set(_SETTINGS) - set(GRID_SECTIONS))
    if unknown:
        hint = suggestion(unknown[0], [*_SETTINGS, *GRID_SECTIONS])
        raise GridError(where, unknown[0], f"unknown key{hint}")
    settings = {key: _setting(where, doc, key) for key in _SETTINGS}
    if not settings["name"].strip() or any(c in settings["name"] for c in "/\\\0"):
        raise GridError(where, "name", "must be a non-empty name without slashes")
    for key in ("generations",):
        if settings[key] < 0:
            raise GridError(where, key, f"must be >= 0 (got {settings[key]})")
    for key in ("n_real", "n_test", "n_eval", "train_steps"):
        if settings[key] is not None and settings[key] < 1:
            raise GridError(where, key, f"must be >= 1 (got {settings[key]})")
    seeds = settings["seeds"]
    if not seeds:
        raise GridError(where, "seeds", "must list at least one seed")
    for i, seed in enumerate(seeds):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise GridError(where, f"seeds[{i}]", f"must be a non-negative integer (got {seed!r})")
    if len(set(seeds)) != len(seeds):
        raise GridError(where, "seeds", "lists a seed twice")

    sections = {
        section: _components(where, doc.get(section), section, kind, registry)
        for section, kind in GRID_SECTIONS.items()
    }
    labels = [spec.label for spec, _ in sections["metrics"]]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise GridError(where, f"metrics[{i}]", f"metric {label!r} is listed twice")

    executor = None
    if settings["executor"] is not None:
        try:
            executors = _components(where, [settings["executor"]], "executor", "executor", registry)
        except GridError as exc:  # one table, not an array of tables: name its keys as the file spells them
            raise GridError(where, exc.key.replace("executor[0]", "executor", 1), exc.message) from None
        if len(executors) != 1:
            raise GridError(where, "executor.params", "an executor takes single values, not lists")
        executor = executors[0][0]

    generations, n_real, n_test, n_eval = (settings[k] for k in ("generations", "n_real", "n_test", "n_eval"))
    max_train_steps = None
    if smoke:
        generations = min(generations, SMOKE_LIMITS["generations"])
        n_real, n_test, n_eval = (
            min(v, SMOKE_LIMITS[k]) for k, v in zip(("n_real", "n_test", "n_eval"), (n_real, n_test, n_eval))
        )
        seeds = seeds[: SMOKE_LIMITS["seeds"]]
        max_train_steps = SMOKE_LIMITS["train_steps"]

    runs, skipped = [], []
    for (dataset, d_entry), (model, m_entry), (policy, p_entry) in itertools.product(
        sections["datasets"], sections["models"], sections["policies"]
    ):
        family, data_cls = m_entry.component, d_entry.component
        if data_cls.kind not in family.data_kinds:
            skipped.append(f"{model.label} cannot model {data_cls.kind} data of {dataset.label}")
            continue
        metrics = []
        labels = {"dataset": dataset.label, "model": model.label}
        for metric, entry in sections["metrics"]:
            reason = unmet_need(entry.component, data_cls, family, labels)
            if reason is None:
                metrics.append((metric, entry))
            else:
                skipped.append(f"{metric.label} {reason}")
        warm = settings["warm_start"]
        versions = {
            f"{kind}:{spec.name}": registry.version_of(entry)
            for kind, (spec, entry) in (
                ("dataset", (dataset, d_entry)),
                ("model", (model, m_entry)),
                ("policy", (policy, p_entry)),
            )
        }
        versions.update({f"metric:{spec.name}": registry.version_of(entry) for spec, entry in metrics})
        for seed in seeds:
            runs.append(
                RunSpec(
                    dataset=dataset,
                    model=model,
                    policy=policy,
                    metrics=tuple(spec for spec, _ in metrics),
                    seed=seed,
                    generations=generations,
                    n_real=n_real,
                    n_test=n_test,
                    n_eval=n_eval,
                    warm_start=family.warm_start_default if warm is None else warm,
                    train_steps=settings["train_steps"],
                    max_train_steps=max_train_steps,
                    device=settings["device"] or "auto",
                    smoke=smoke,
                    versions=tuple(sorted(versions.items())),
                )
            )
    if not runs:
        raise GridError(where, "models", "no dataset/model combination is compatible: " + "; ".join(skipped))
    return GridSpec(
        name=settings["name"],
        path=where,
        runs=tuple(runs),
        executor=executor,
        description=settings["description"] or "",
        skipped=tuple(dict.fromkeys(skipped)),
        source=source,
    )


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
        metrics=tuple(comp(m, g) for m, g in zip(data["metrics"], metrics_given)),
        seed=data["seed"],
        generations=data["generations"],
        n_real=data["n_real"],
        n_test=data["n_test"],
        n_eval=data["n_eval"],
        warm_start=data["warm_start"],
        train_steps=data["train_steps"],
        max_train_steps=data["max_train_steps"],
        device=data["device"],
        smoke=data["smoke"],
        versions=tuple(sorted(data["versions"].items())),
    )
