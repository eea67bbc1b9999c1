"""The run settings schema: each setting's one declaration drives validation, identity, storage, smoke mode,
the run context and the results columns."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import grid_doc

from benchmark.api.components import RunContext
from benchmark.errors import GridError
from benchmark.report.leaderboard import ID_COLUMNS, results_frame
from benchmark.run.harness import run_grid
from benchmark.run.loop import RunParts
from benchmark.run.settings import (
    FILE_SETTINGS,
    GRID_SETTINGS,
    MAX_SEEDS,
    RESULT_COLUMNS,
    RUN_SETTINGS,
    SMOKE_LIMITS,
    read_settings,
)
from benchmark.run.spec import ComponentSpec, RunSpec, parse_grid, run_spec_from_dict, warm_start
from benchmark.run.store import Store
from plugins.families.flows import FlowFamily

README = Path(__file__).resolve().parents[1] / "README.md"

#: The grid these tests vary, one setting at a time; test_canonical_form_is_unchanged pins its canonical form.
FIXED = {
    "name": "fixed",
    "generations": 2,
    "seeds": [3],
    "n_real": 120,
    "n_test": 80,
    "n_eval": 60,
    "datasets": [{"name": "eight-gaussians", "params": {"modes": 4}}],
    "models": [{"name": "gaussian"}],
    "policies": [{"name": "mix", "params": {"lambda": 0.5}}],
    "metrics": [{"name": "w2"}],
}


def fixed_grid(**changes: Any) -> dict[str, Any]:
    """``FIXED`` (through conftest's ``grid_doc``, so each call has its own copy) with ``changes``."""
    return grid_doc(**{**FIXED, **changes})


def one_run(registry, **changes) -> RunSpec:
    (run,) = parse_grid(fixed_grid(**changes), registry, where="fixed.toml").runs
    return run


def test_canonical_form_is_unchanged(registry):
    """The canonical form is what run ids hash: these exact keys and values (a change renames every run)."""
    run = one_run(registry, train_steps=50, device="cpu")
    versions = {
        f"{kind}:{name}": registry.version_of(registry.get(kind, name))
        for kind, name in (("dataset", "eight-gaussians"), ("metric", "w2"), ("model", "gaussian"), ("policy", "mix"))
    }
    assert run.canonical() == {
        "schema": 1,
        "dataset": {"name": "eight-gaussians", "params": {"modes": 4, "radius": 2.0, "std": 0.2}},
        "model": {"name": "gaussian", "params": {"ddof": 0, "fixed_scale": None}},
        "policy": {"name": "mix", "params": {"lambda": 0.5}},
        "metrics": [{"name": "w2", "params": {"max_exact": 1000}}],
        "seed": 3,
        "n_real": 120,
        "n_test": 80,
        "n_eval": 60,
        "warm_start": False,
        "train_steps": 50,
        "max_train_steps": None,
        "device": "cpu",
        "smoke": False,
        "versions": versions,
    }
    assert list(run.describe()) == ["run_id", "generations", *run.canonical(), "given"]


def _other_value(value, setting):
    """A valid value of the setting's type that differs from ``value``."""
    if setting.accepts is bool:
        return not value
    if setting.accepts is int:
        return 7 if value is None else value + 1
    return "cpu" if value != "cpu" else "cuda"


@pytest.mark.parametrize("name", RUN_SETTINGS)
def test_every_setting_round_trips_through_the_store(registry, name):
    run = one_run(registry)
    changed = dataclasses.replace(run, **{name: _other_value(getattr(run, name), RUN_SETTINGS[name])})
    stored = json.loads(json.dumps(changed.describe()))  # as run.json holds it
    back = run_spec_from_dict(stored)
    assert back == changed and back.describe() == changed.describe()
    assert getattr(back, name) != getattr(run, name)
    # an identity setting renames the run; the others do not
    assert (changed.run_id != run.run_id) == RUN_SETTINGS[name].identity


@pytest.mark.parametrize("name", [n for n, s in FILE_SETTINGS.items() if s.minimum is not None])
def test_bounds_are_enforced_with_file_and_key(registry, name):
    low = FILE_SETTINGS[name].minimum
    assert low is not None
    with pytest.raises(GridError) as caught:
        parse_grid(fixed_grid(**{name: low - 1}), registry, where="fixed.toml")
    assert str(caught.value) == f"fixed.toml: {name}: must be >= {low} (got {low - 1})"
    assert getattr(one_run(registry, **{name: low}), name) == low  # the bound itself is accepted


@pytest.mark.parametrize("name", FILE_SETTINGS)
def test_types_are_enforced_with_file_and_key(name):
    wrong = "x" if FILE_SETTINGS[name].accepts is not str else 1
    with pytest.raises(GridError, match=f"^fixed.toml: {name}: must be .* \\(got {wrong!r}\\)$"):
        read_settings("fixed.toml", fixed_grid(**{name: wrong}))


@pytest.mark.parametrize("name", [n for n, s in FILE_SETTINGS.items() if s.required])
def test_required_settings_are_required(name):
    doc = fixed_grid()
    del doc[name]
    with pytest.raises(GridError, match=f"^fixed.toml: {name}: is required$"):
        read_settings("fixed.toml", doc)


@pytest.mark.parametrize("device", [" ", "tpu", "cuda:", "cuda:x", "CPU", "cpu "])
def test_a_device_must_be_one_torch_understands(device):
    with pytest.raises(GridError) as caught:
        read_settings("fixed.toml", fixed_grid(device=device))
    assert str(caught.value) == f'fixed.toml: device: must be "auto", "cpu", "mps", "cuda" or "cuda:N" (got {device!r})'


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "cuda", "cuda:0", "cuda:12"])
def test_the_devices_torch_understands_are_accepted(device):
    assert read_settings("fixed.toml", fixed_grid(device=device))[1]["device"] == device


@pytest.mark.parametrize("name", [n for n, s in FILE_SETTINGS.items() if s.maximum is not None])
def test_sizes_have_an_upper_bound_that_says_how_to_go_beyond_it(registry, name):
    high = FILE_SETTINGS[name].maximum
    assert high is not None
    with pytest.raises(GridError) as caught:
        parse_grid(fixed_grid(**{name: high + 1}), registry, where="fixed.toml")
    assert str(caught.value) == (
        f"fixed.toml: {name}: must be <= {high:_} (got {high + 1:_}): a bound against typos; to go beyond it, "
        "raise the setting's maximum in benchmark/run/settings.py"
    )
    assert getattr(one_run(registry, **{name: high}), name) == high  # the bound itself is accepted


def test_the_sizes_the_issue_names_are_bounded():
    """generations = 10**12 ran for 16 minutes and wrote 1.77 million files; n_real = 10**14 ran out of memory."""
    for name in ("generations", "n_real", "n_test", "n_eval", "train_steps"):
        assert FILE_SETTINGS[name].maximum is not None, name


def test_the_number_of_seeds_is_bounded():
    over = MAX_SEEDS + 1
    with pytest.raises(
        GridError, match=rf"^fixed\.toml: seeds: lists {over} seeds, more than {MAX_SEEDS} \(a bound against typos"
    ):
        read_settings("fixed.toml", fixed_grid(seeds=list(range(over))))
    assert len(read_settings("fixed.toml", fixed_grid(seeds=list(range(MAX_SEEDS))))[0].seeds) == MAX_SEEDS


def test_settings_outside_the_file_are_refused_in_it(registry):
    for name in set(RUN_SETTINGS) - set(FILE_SETTINGS):
        with pytest.raises(GridError, match=f"^fixed.toml: {name}: unknown key"):
            parse_grid(fixed_grid(**{name: 1}), registry, where="fixed.toml")


def test_smoke_limits_cap_large_values_and_keep_small_ones():
    big = {"generations": 50, "seeds": [5, 6, 7], "n_real": 9000, "n_test": 9000, "n_eval": 9000}
    grid, capped = read_settings("fixed.toml", fixed_grid(**big), smoke=True)
    values = {**dataclasses.asdict(grid), **capped}
    assert set(SMOKE_LIMITS) <= set(values)
    for name, limit in SMOKE_LIMITS.items():
        expected = big[name][:limit] if name == "seeds" else limit
        assert values[name] == expected, name
    assert values["smoke"] is True
    small = {"generations": 1, "seeds": [5], "n_real": 10, "n_test": 10, "n_eval": 10}
    grid, kept = read_settings("fixed.toml", fixed_grid(**small), smoke=True)
    assert grid.seeds == small["seeds"]
    assert all(kept[name] == small[name] for name in small if name != "seeds")
    _, normal = read_settings("fixed.toml", fixed_grid(**big))
    assert normal["max_train_steps"] is None and normal["smoke"] is False and normal["n_real"] == 9000


def test_grid_and_run_settings_do_not_overlap():
    assert not set(GRID_SETTINGS) & set(RUN_SETTINGS)


def test_plugins_see_the_context_settings(registry):
    run = one_run(registry, train_steps=50, device="cpu")
    context = RunParts.build(run, registry, threads=2).context
    fields = {f.name for f in dataclasses.fields(RunContext)}
    shared = {name for name, s in RUN_SETTINGS.items() if s.in_context}
    assert shared and shared <= fields
    assert {name: getattr(context, name) for name in shared} == run.context_settings()
    assert (context.seed, context.threads, context.device, context.train_steps) == (3, 2, "cpu", 50)


class _Family:
    warm_start_default = True


@pytest.mark.parametrize(
    ("own", "grid", "expected"),
    [(None, None, True), (None, False, False), (False, True, False), (True, False, True), (False, None, False)],
)
def test_warm_start_is_the_family_parameter_else_the_grid_else_the_family_default(own, grid, expected):
    model = ComponentSpec("family", (("warm_start", own),))
    assert warm_start(model, _Family, grid) is expected


@pytest.mark.skipif(bool(FlowFamily.missing_requirements()), reason='needs "retrainbench[flows]"')
@pytest.mark.parametrize(("own", "grid", "expected"), [(False, True, False), (True, False, True), (None, False, False)])
def test_a_flows_own_warm_start_decides_the_run(registry, own, grid, expected):
    params = {} if own is None else {"warm_start": own}
    run = one_run(registry, models=[{"name": "flow", "params": params}], warm_start=grid)
    assert run.warm_start is expected


def test_results_carry_the_settings_columns(registry, tmp_path):
    store = Store(tmp_path / "store")
    grid = parse_grid(fixed_grid(generations=1, device="cpu"), registry, where="fixed.toml", smoke=True)
    run_grid(grid, store, registry.get("executor", "inline").component({}), registry, progress=False)
    frame = results_frame(store)
    columns = list(frame.columns)
    assert columns[: len(ID_COLUMNS) + len(RESULT_COLUMNS)] == [*ID_COLUMNS, *RESULT_COLUMNS]
    for run in grid.runs:
        rows = frame[frame["run_id"] == run.run_id]
        assert len(rows) == 2
        for name, value in run.columns().items():
            assert all(v == value or (v is None and value is None) for v in rows[name].astype(object)), name
    assert set(frame["n_real"]) == {120} and set(frame["smoke"]) == {True} and set(frame["device"]) == {"cpu"}
    assert set(frame["max_train_steps"]) == {SMOKE_LIMITS["max_train_steps"]}


def test_readme_documents_every_setting_and_column():
    text = README.read_text(encoding="utf-8")
    grid_example = text[text.index("### Grid files") : text.index("[[datasets]]")]
    for name in FILE_SETTINGS:
        assert re.search(rf"^({name} +=|\[{name}\])", grid_example, re.M), name
    results_row = next(line for line in text.splitlines() if line.startswith("| `results.csv` |"))
    for name in RESULT_COLUMNS:
        assert re.search(rf"\b{name}\b", results_row), name
