"""The settings of a grid file and of its runs, each declared once.

A setting is one field below, and its declaration says everything the code needs: what the grid file
accepts, whether it is required or what it defaults to, its bounds, what smoke mode caps it at,
whether it is part of the run's identity (its id), whether plugins see it in their ``RunContext``,
and whether results.csv shows it as a column. Validation, ``RunSpec.canonical``/``describe``,
reading a stored spec back, smoke mode, the run context and the results columns all derive from
these declarations, so adding a setting means adding one field here (and, for a setting plugins read,
its field on ``RunContext``, which is the plugin API).

Adding an identity setting changes every run id (the canonical form gains a key): results stored
before it are then recomputed rather than reused.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.errors import GridError

#: A rule beyond type and bounds: (key suffix such as "" or "[1]", message) of the first problem, or None.
Check = Callable[[Any], tuple[str, str] | None]

_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", bool: "true or false", dict: "a table"}


@dataclass(frozen=True)
class Setting:
    """How one setting is read, limited and reported."""

    #: The type the grid file must give (a bool is never taken for an int).
    accepts: type
    #: One line for people: what it means and what it defaults to.
    help: str
    #: The grid file must set it.
    required: bool = False
    #: The value when the grid file leaves it out.
    default: Any = None
    #: Inclusive lower bound of a number.
    minimum: int | None = None
    #: Inclusive upper bound of a number: a guard against a typo that would run for days or exhaust memory.
    maximum: int | None = None
    #: Smoke mode's cap: a number is lowered to it, an unset (None) one set to it, a list cut to its length.
    smoke_limit: int | None = None
    #: A rule beyond type and bounds.
    check: Check | None = None
    #: A key of the grid file (False: set by the harness, e.g. by smoke mode).
    in_grid_file: bool = True
    #: Part of the run's canonical form, hence of its id: it changes the run's numbers.
    identity: bool = True
    #: Passed to plugins as the ``RunContext`` field of the same name.
    in_context: bool = False
    #: A column of results.csv.
    column: bool = True


def setting(accepts: type, help: str, **declaration: Any) -> dict[str, Setting]:
    """The metadata of a dataclass field that is a setting: ``field(metadata=setting(...))``."""
    return {"setting": Setting(accepts, help, **declaration)}


def declared(cls: type) -> dict[str, Setting]:
    """The settings a class declares, by name, in declaration order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls) if "setting" in f.metadata}


#: What a bound on a size says beyond the number: why it is there and how to go past it.
BEYOND_A_BOUND = "a bound against typos; to go beyond it, raise the setting's maximum in benchmark/run/settings.py"
#: Most points of a data set (n_real, n_test, n_eval): 10 million 2-d points are 160 MB, as many small images far more.
MAX_POINTS = 10_000_000
#: Most seeds a grid may list (statistical tests of the families run thousands in memory).
MAX_SEEDS = 100_000
#: Longest grid name, in UTF-8 bytes: it names a directory (NAME-smoke) on filesystems that allow 255.
MAX_NAME_BYTES = 200
#: The devices a run may name: what ``benchmark.torch_support.devices.resolve_device`` understands.
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _plain_name(value: str) -> tuple[str, str] | None:
    """A grid's name names its default store ``results/NAME``: it must be one plain file name."""
    plain = (
        bool(value)
        and value.strip() == value
        and not value.startswith(".")
        and not any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value)
        and len(value.encode("utf-8")) <= MAX_NAME_BYTES
    )
    if plain:
        return None
    return "", (
        "must be a plain file name, since it names the default store results/NAME (no slashes or control "
        f"characters, no leading dot or surrounding spaces, at most {MAX_NAME_BYTES} bytes; got {value!r})"
    )


def _seed_list(seeds: list[Any]) -> tuple[str, str] | None:
    if not seeds:
        return "", "must list at least one seed"
    if len(seeds) > MAX_SEEDS:
        return "", f"lists {len(seeds)} seeds, more than {MAX_SEEDS} ({BEYOND_A_BOUND})"
    for i, seed in enumerate(seeds):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            return f"[{i}]", f"must be a non-negative integer (got {seed!r})"
    if len(set(seeds)) != len(seeds):
        return "", "lists a seed twice"
    return None


def _device_name(value: str) -> tuple[str, str] | None:
    if DEVICE.fullmatch(value):
        return None
    return "", f'must be "auto", "cpu", "mps", "cuda" or "cuda:N" (got {value!r})'


@dataclass(frozen=True, kw_only=True)
class GridSettings:
    """What a grid file sets for the grid as a whole."""

    name: str = field(
        metadata=setting(str, "names the grid and its default store results/NAME", required=True, check=_plain_name)
    )
    description: str = field(metadata=setting(str, "shown in the report", default=""))
    seeds: list[int] = field(
        metadata=setting(
            list,
            "one run per seed and combination; every random number flows from the seed",
            required=True,
            smoke_limit=1,
            check=_seed_list,
        )
    )
    executor: dict[str, Any] | None = field(metadata=setting(dict, "where runs execute: a table with name and params"))
    batch_seeds: bool = field(
        metadata=setting(
            bool,
            "train the seeds of one configuration together as one batched model where the family can "
            "(same numbers as one at a time; false: one run at a time)",
            default=True,
        )
    )


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """What a grid file sets for every one of its runs (``RunSpec`` adds the components and the seed)."""

    generations: int = field(
        metadata=setting(
            int,
            "G: generations 0..G are run (generation 0 fits the real data)",
            required=True,
            minimum=0,
            maximum=10_000,
            smoke_limit=2,
            identity=False,
            column=False,
        )
    )
    n_real: int = field(
        metadata=setting(int, "real training points (n)", required=True, minimum=1, maximum=MAX_POINTS, smoke_limit=200)
    )
    n_test: int = field(
        metadata=setting(
            int,
            "held-out real points the metrics compare against",
            required=True,
            minimum=1,
            maximum=MAX_POINTS,
            smoke_limit=200,
        )
    )
    n_eval: int = field(
        metadata=setting(
            int,
            "samples drawn from each generation's model for the metrics",
            required=True,
            minimum=1,
            maximum=MAX_POINTS,
            smoke_limit=200,
        )
    )
    warm_start: bool = field(
        metadata=setting(
            bool,
            "continue each generation from the previous model (a family's own warm_start parameter overrides "
            "it; default: the family's own)",
        )
    )
    train_steps: int | None = field(
        metadata=setting(
            int,
            "training budget per generation for iterative families (default: each family's own)",
            minimum=1,
            maximum=10_000_000,
            in_context=True,
        )
    )
    max_train_steps: int | None = field(
        metadata=setting(int, "cap on training steps (smoke mode)", smoke_limit=20, in_grid_file=False, in_context=True)
    )
    device: str = field(
        metadata=setting(
            str,
            '"auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1"',
            default="auto",
            check=_device_name,
            in_context=True,
        )
    )
    smoke: bool = field(
        metadata=setting(bool, "run in smoke mode (shrunk to the smoke limits)", default=False, in_grid_file=False)
    )

    def settings(self, *, identity: bool) -> dict[str, Any]:
        """The settings that are (or are not) part of the run's identity, by name."""
        return {name: getattr(self, name) for name, s in RUN_SETTINGS.items() if s.identity == identity}

    def context_settings(self) -> dict[str, Any]:
        """The settings plugins read from their ``RunContext``."""
        return {name: getattr(self, name) for name, s in RUN_SETTINGS.items() if s.in_context}

    def columns(self) -> dict[str, Any]:
        """The settings shown as columns of results.csv."""
        return {name: getattr(self, name) for name in RESULT_COLUMNS}


GRID_SETTINGS = declared(GridSettings)
RUN_SETTINGS = declared(RunSettings)
#: Every key a grid file may set, apart from its component sections.
FILE_SETTINGS = {name: s for name, s in {**GRID_SETTINGS, **RUN_SETTINGS}.items() if s.in_grid_file}
#: Smoke mode's budget: every grid shrinks to it so a CI pipeline can run it in seconds.
SMOKE_LIMITS = {name: s.smoke_limit for name, s in {**GRID_SETTINGS, **RUN_SETTINGS}.items() if s.smoke_limit}
#: Run settings shown in results.csv, in this order, after ``config``.
RESULT_COLUMNS = [name for name, s in RUN_SETTINGS.items() if s.column]


def _type_problem(value: Any, accepts: type) -> str | None:
    if isinstance(value, accepts) and not (isinstance(value, bool) and accepts is not bool):
        return None
    return f"must be {_TYPE_NAMES[accepts]} (got {value!r})"


def read_settings(where: str, doc: Mapping[str, Any], *, smoke: bool = False) -> tuple[GridSettings, dict[str, Any]]:
    """A grid document's settings, checked, with defaults filled in and, in smoke mode, capped: the grid's
    own, and the values of every run setting (``warm_start`` is None when the grid leaves it to the family).

    Raises GridError naming the file and the key of the first problem (types first, then bounds and rules).
    """
    values = {}
    for name, s in {**GRID_SETTINGS, **RUN_SETTINGS}.items():
        if not s.in_grid_file or name not in doc:
            if s.required and s.in_grid_file:
                raise GridError(where, name, "is required")
            values[name] = s.default
            continue
        problem = _type_problem(doc[name], s.accepts)
        if problem:
            raise GridError(where, name, problem)
        values[name] = doc[name]
    for name, s in FILE_SETTINGS.items():
        value = values[name]
        if value is None:
            continue
        if s.minimum is not None and value < s.minimum:
            raise GridError(where, name, f"must be >= {s.minimum} (got {value})")
        if s.maximum is not None and value > s.maximum:
            raise GridError(where, name, f"must be <= {s.maximum:_} (got {value:_}): {BEYOND_A_BOUND}")
        found = s.check(value) if s.check else None
        if found:
            raise GridError(where, name + found[0], found[1])
    values["smoke"] = smoke  # the one setting that is the mode itself
    if smoke:
        values.update({name: _capped(values[name], limit) for name, limit in SMOKE_LIMITS.items()})
    grid = GridSettings(**{name: values[name] for name in GRID_SETTINGS})
    return grid, {name: values[name] for name in RUN_SETTINGS}


def _capped(value: Any, limit: int) -> Any:
    if isinstance(value, list):
        return value[:limit]
    return limit if value is None else min(value, limit)
