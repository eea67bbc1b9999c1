"""Grid files: every malformed grid is refused by the real CLI before anything is written; valid ones expand right."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from benchmark.errors import GridError
from benchmark.run.settings import SMOKE_LIMITS
from benchmark.run.spec import GridSpec, parse_grid

HEADER = """\
name = "bad"
generations = 2
seeds = [0, 1]
n_real = 50
n_test = 50
n_eval = 50
"""
COMPONENTS = """\
[[datasets]]
name = "eight-gaussians"

[[models]]
name = "gaussian"

[[policies]]
name = "mix"

[[metrics]]
name = "variance"
"""
VALID = HEADER + COMPONENTS


def edit(old: str, new: str) -> str:
    """The valid grid with one line changed; fails loudly if the line is not there."""
    assert old in VALID, old
    return VALID.replace(old, new, 1)


def component(section: str, body: str) -> str:
    """The valid grid with one more table appended to it."""
    return VALID + f"\n[[{section}]]\n" + textwrap.dedent(body)


# (id, grid text, offending key ("" when the file itself is the problem), what the message must say)
MALFORMED = [
    ("invalid-toml", VALID + "broken = \n", "", f"invalid TOML: Invalid value (at line {VALID.count(chr(10)) + 1}, "),
    ("missing-required-key", edit("n_test = 50\n", ""), "n_test", "is required"),
    (
        "missing-section",
        VALID.replace('[[models]]\nname = "gaussian"\n', ""),
        "models",
        "needs at least one [[models]]",
    ),
    (
        "unknown-top-level-key",
        edit("generations = 2", "generations = 2\ngeneratoins = 3"),
        "generatoins",
        "unknown key (did you mean 'generations'?)",
    ),
    ("wrong-type", edit("generations = 2", 'generations = "2"'), "generations", "must be an integer (got '2')"),
    ("bool-for-int", edit("n_real = 50", "n_real = true"), "n_real", "must be an integer (got True)"),
    ("seeds-not-list", edit("seeds = [0, 1]", "seeds = 0"), "seeds", "must be a list (got 0)"),
    ("negative-size", edit("n_real = 50", "n_real = -5"), "n_real", "must be >= 1 (got -5)"),
    ("zero-size", edit("n_eval = 50", "n_eval = 0"), "n_eval", "must be >= 1 (got 0)"),
    ("negative-generations", edit("generations = 2", "generations = -1"), "generations", "must be >= 0 (got -1)"),
    ("zero-train-steps", edit("n_eval = 50", "n_eval = 50\ntrain_steps = 0"), "train_steps", "must be >= 1 (got 0)"),
    ("empty-seeds", edit("seeds = [0, 1]", "seeds = []"), "seeds", "must list at least one seed"),
    ("duplicate-seed", edit("seeds = [0, 1]", "seeds = [3, 1, 3]"), "seeds", "lists a seed twice"),
    ("negative-seed", edit("seeds = [0, 1]", "seeds = [0, -1]"), "seeds[1]", "must be a non-negative integer (got -1)"),
    (
        "unknown-dataset",
        edit('name = "eight-gaussians"', 'name = "eight-gausians"'),
        "datasets[0].name",
        "unknown dataset 'eight-gausians' (did you mean 'eight-gaussians'",
    ),
    (
        "unknown-model",
        edit('name = "gaussian"\n\n[[policies]]', 'name = "gausian"\n\n[[policies]]'),
        "models[0].name",
        "unknown model 'gausian' (did you mean 'gaussian'?)",
    ),
    (
        "unknown-policy",
        component("policies", 'name = "acumulate"'),
        "policies[1].name",
        "unknown policy 'acumulate' (did you mean 'accumulate'",
    ),
    (
        "unknown-metric",
        component("metrics", 'name = "varience"'),
        "metrics[1].name",
        "unknown metric 'varience' (did you mean 'variance'",
    ),
    (
        "unknown-component-key",
        component("models", 'name = "kde"\nparms = { bandwidth = 0.2 }'),
        "models[1].parms",
        "unknown key",
    ),
    (
        "unknown-parameter",
        component("models", 'name = "gaussian"\nparams = { ddf = 1 }'),
        "models[1].params.ddf",
        "unknown parameter (did you mean 'ddof'?)",
    ),
    (
        "parameter-not-a-choice",
        component("models", 'name = "gaussian"\nparams = { ddof = 2 }'),
        "models[1].params.ddof",
        "must be one of 0, 1 (got 2)",
    ),
    (
        "parameter-below-range",
        component("policies", 'name = "mix"\nparams = { lambda = -0.5 }'),
        "policies[1].params.lambda",
        "must be >= 0 (got -0.5)",
    ),
    (
        "parameter-at-exclusive-bound",
        component("datasets", 'name = "gaussian"\nparams = { scale = 0 }'),
        "datasets[1].params.scale",
        "must be > 0",
    ),
    (
        "parameter-in-list-out-of-range",
        component("policies", 'name = "mix"\nparams = { lambda = [0.5, -1] }'),
        "policies[1].params.lambda",
        "must be >= 0 (got -1.0)",
    ),
    (
        "wrong-parameter-type",
        component("models", 'name = "gaussian"\nparams = { ddof = "zero" }'),
        "models[1].params.ddof",
        "must be an integer (got 'zero')",
    ),
    (
        "float-for-int-parameter",
        component("datasets", 'name = "gaussian"\nparams = { dim = 2.5 }'),
        "datasets[1].params.dim",
        "must be an integer (got 2.5)",
    ),
    (
        "empty-list-parameter",
        component("policies", 'name = "mix"\nparams = { lambda = [] }'),
        "policies[1].params.lambda",
        "is an empty list",
    ),
    (
        "table-as-parameter",
        component("policies", 'name = "mix"\nparams = { lambda = { a = 1 } }'),
        "policies[1].params.lambda",
        "not a table",
    ),
    ("params-not-a-table", component("models", 'name = "gaussian"\nparams = 3'), "models[1].params", "must be a table"),
    ("duplicate-metric", component("metrics", 'name = "variance"'), "metrics[1]", "metric 'variance' is listed twice"),
    ("empty-name", edit('name = "bad"', 'name = ""'), "name", "must be a plain file name"),
    ("component-without-name", component("models", "params = { ddof = 1 }"), "models[1].name", "is missing"),
    (
        "section-not-tables",
        edit("n_eval = 50", 'n_eval = 50\nmetrics = "variance"').replace('[[metrics]]\nname = "variance"\n', ""),
        "metrics",
        "needs at least one [[metrics]] table",
    ),
    (
        "unknown-executor",
        edit("n_eval = 50", 'n_eval = 50\nexecutor = { name = "locall" }'),
        "executor.name",
        "unknown executor 'locall' (did you mean 'local'",
    ),
    (
        "unknown-executor-parameter",
        edit("n_eval = 50", 'n_eval = 50\nexecutor = { name = "local", params = { wrkers = 1 } }'),
        "executor.params.wrkers",
        "unknown parameter (did you mean 'workers'",
    ),
    (
        "executor-list-parameter",
        edit("n_eval = 50", 'n_eval = 50\nexecutor = { name = "local", params = { workers = [1, 2] } }'),
        "executor.params",
        "an executor takes single values, not lists",
    ),
    # Values that used to reach the runs (issue 15, item 2): each is refused with the component's key.
    (
        "infinite-float",
        component("policies", 'name = "mix"\nparams = { lambda = inf }'),
        "policies[1].params.lambda",
        "must be a finite number (got inf)",
    ),
    (
        "float-overflowing-to-infinity",
        component("policies", 'name = "mix"\nparams = { lambda = 1e400 }'),
        "policies[1].params.lambda",
        "must be a finite number (got inf)",
    ),
    ("unknown-device", edit("n_eval = 50", 'n_eval = 50\ndevice = "tpu"'), "device", 'must be "auto", "cpu"'),
    (
        "huge-n-real",
        edit("n_real = 50", "n_real = 100000000000000"),
        "n_real",
        "must be <= 10_000_000 (got 100_000_000_000_000): a bound against typos; to go beyond it, raise",
    ),
    (
        "huge-generations",
        edit("generations = 2", "generations = 1000000000000"),
        "generations",
        "must be <= 10_000 (got 1_000_000_000_000)",
    ),
    (
        "required-parameter-missing",
        component("datasets", 'name = "image-folder"'),
        "datasets[1].params.path",
        "is required (the directory of PNG/JPEG images)",
    ),
    (
        "misspelt-extractor",
        component("metrics", 'name = "precision"\nparams = { extractor = "incepton" }'),
        "metrics[1].params.extractor",
        "unknown feature-extractor 'incepton' (did you mean 'inception'?)",
    ),
    (
        "more-mixture-components-than-points",
        component("models", 'name = "gmm"\nparams = { components = 51 }'),
        "models[1].params.components",
        "must be <= n_real = 50: EM needs a training point per component (got 51)",
    ),
    (
        "more-fresh-points-than-real-ones",
        component("policies", 'name = "fresh"\nparams = { n_fresh = 51 }'),
        "policies[1].params.n_fresh",
        "must be <= n_real = 50",
    ),
    (
        "fresh-with-an-empty-training-set",
        component("policies", 'name = "fresh"\nparams = { n_fresh = 0, n_synthetic = 0 }'),
        "policies[1].params.n_synthetic",
        "the training set would be empty",
    ),
    # Grid names name the default store results/NAME (item 3).
    *[
        (f"grid-name-{label}", edit('name = "bad"', f"name = {toml}"), "name", "must be a plain file name")
        for label, toml in [
            ("dot-dot", '".."'),
            ("dot", '"."'),
            ("hidden", '".store"'),
            ("slash", '"a/b"'),
            ("backslash", '"a\\\\b"'),
            ("newline", '"a\\nb"'),
            ("padded", '" a"'),
            ("too-long", '"' + "x" * 201 + '"'),
        ]
    ],
    # Duplicates would run once but be counted twice (item 4).
    (
        "duplicate-policy",
        component("policies", 'name = "mix"'),
        "policies[1]",
        "policy 'mix' is listed twice (as policies[0] too",
    ),
    (
        "duplicate-policy-with-its-default-written-out",
        component("policies", 'name = "mix"\nparams = { lambda = 1.0 }'),
        "policies[1]",
        "policy 'mix[lambda=1.0]' is listed twice (as policies[0] too",
    ),
    (
        "duplicate-value-in-a-list",
        component("policies", 'name = "mix"\nparams = { lambda = [0.5, 0.5] }'),
        "policies[1]",
        "policy 'mix[lambda=0.5]' is listed twice (as policies[1] too",
    ),
    (
        "duplicate-dataset",
        component("datasets", 'name = "eight-gaussians"'),
        "datasets[1]",
        "dataset 'eight-gaussians' is listed twice",
    ),
    (
        "no-metric-applies-to-any-run",
        VALID.replace('name = "eight-gaussians"', 'name = "moons"').replace('name = "variance"', 'name = "kl"'),
        "models",
        "gaussian on moons: no metric of the grid applies to it",
    ),
]


def _only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


@pytest.mark.parametrize(("text", "key", "message"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_grid_is_refused_before_anything_is_written(run_cli, tmp_path: Path, text, key, message):
    grid = tmp_path / "grid.toml"
    grid.write_text(text, encoding="utf-8")
    code, out, err = run_cli(["run", grid, "--store", tmp_path / "store", "--executor", "inline"])
    assert code == 2, err
    line = _only_line(err)
    location = f"{grid}: {key}: " if key else f"{grid}: "
    assert line.startswith(f"retrainbench: error: {location}"), line
    assert message in line, line
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"], "something was written"


def test_a_grid_named_dot_dot_writes_nothing_beside_results(run_cli, tmp_path: Path):
    """Without --store the store would be results/.., i.e. the current directory."""
    grid = tmp_path / "grid.toml"
    grid.write_text(edit('name = "bad"', 'name = ".."'), encoding="utf-8")
    code, _out, err = run_cli(["run", grid, "--executor", "inline"], cwd=tmp_path)
    assert code == 2
    assert _only_line(err).startswith(f"retrainbench: error: {grid}: name: must be a plain file name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]


def test_a_combination_no_metric_applies_to_is_dropped_with_a_note(registry):
    """moons has no true density, so kl cannot be computed on it: its runs would compute models for nothing."""
    import tomllib

    text = VALID.replace("[[models]]", '[[datasets]]\nname = "moons"\n\n[[models]]').replace(
        'name = "variance"', 'name = "kl"'
    )
    grid = parse_grid(tomllib.loads(text), registry, where="grid.toml")
    assert {run.dataset.name for run in grid.runs} == {"eight-gaussians"}
    assert all(run.metrics for run in grid.runs)
    assert "gaussian on moons: no metric of the grid applies to it" in grid.skipped


def test_missing_grid_file(run_cli, tmp_path: Path):
    grid = tmp_path / "nowhere.toml"
    code, _out, err = run_cli(["run", grid, "--store", tmp_path / "store"])
    assert code == 2
    assert _only_line(err) == f"retrainbench: error: {grid}: no such grid file"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "option", "fragments"),
    [
        (["--workers", "0"], "--workers", ["must be >= 1 (got 0)"]),
        (["--executor", "inlin"], "--executor", ["unknown executor 'inlin' (did you mean 'inline'"]),
        (["--executor", "inline", "--workers", "2"], "--workers", ["'inline'"]),
    ],
    ids=["zero-workers", "unknown-executor", "workers-for-inline"],
)
def test_bad_options_are_refused_before_anything_is_written(run_cli, tmp_path: Path, options, option, fragments):
    grid = tmp_path / "grid.toml"
    grid.write_text(VALID, encoding="utf-8")
    code, _out, err = run_cli(["run", grid, "--store", tmp_path / "store", *options])
    assert code == 2
    line = _only_line(err)
    assert line.startswith(f"retrainbench: error: {option}: ") and all(f in line for f in fragments), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]


def test_the_valid_base_grid_is_valid(registry):
    """Guards the cases above: each fails because of its one change, not because the base grid is wrong."""
    import tomllib

    grid = parse_grid(tomllib.loads(VALID), registry, where="grid.toml")
    assert len(grid.runs) == 2


# ---------------------------------------------------------------- expansion


def _doc(**sections) -> dict:
    doc = {"name": "expand", "generations": 4, "seeds": [0, 1, 2], "n_real": 400, "n_test": 300, "n_eval": 100}
    doc.update(sections)
    return doc


def test_list_valued_parameters_expand_into_the_cartesian_product(registry):
    doc = _doc(
        datasets=[{"name": "gaussian", "params": {"dim": [1, 2]}}, {"name": "moons"}],
        models=[
            {"name": "gaussian", "params": {"ddof": [0, 1]}},
            {"name": "kde", "params": {"bandwidth": [0.1, 0.2, 0.3]}},
        ],
        policies=[{"name": "mix", "params": {"lambda": [0, 0.5]}}, {"name": "replace"}],
        metrics=[{"name": "w2", "params": {"max_exact": [10, 20]}}, {"name": "nll"}],
    )
    grid = parse_grid(doc, registry)
    # 3 datasets x 5 models x 3 policies x 3 seeds
    assert len(grid.runs) == 3 * 5 * 3 * 3
    assert len({r.run_id for r in grid.runs}) == len(grid.runs)
    assert {r.dataset.label for r in grid.runs} == {"gaussian[dim=1]", "gaussian[dim=2]", "moons"}
    assert {r.model.label for r in grid.runs} == {
        "gaussian[ddof=0]",
        "gaussian[ddof=1]",
        "kde[bandwidth=0.1]",
        "kde[bandwidth=0.2]",
        "kde[bandwidth=0.3]",
    }
    assert {r.policy.label for r in grid.runs} == {"mix[lambda=0.0]", "mix[lambda=0.5]", "replace"}
    assert {r.seed for r in grid.runs} == {0, 1, 2}
    # metric lists expand inside each run, not into more runs
    for run in grid.runs:
        assert [m.label for m in run.metrics] == ["w2[max_exact=10]", "w2[max_exact=20]", "nll"]
    combos = {(r.dataset.label, r.model.label, r.policy.label, r.seed) for r in grid.runs}
    assert len(combos) == len(grid.runs)


def test_several_list_parameters_of_one_component_multiply(registry):
    doc = _doc(
        datasets=[{"name": "eight-gaussians", "params": {"modes": [4, 8], "std": [0.1, 0.2, 0.3]}}],
        models=[{"name": "gaussian"}],
        policies=[{"name": "replace"}],
        metrics=[{"name": "variance"}],
        seeds=[7],
    )
    runs = parse_grid(doc, registry).runs
    assert sorted(r.dataset.label for r in runs) == sorted(
        f"eight-gaussians[modes={m},std={s}]" for m in (4, 8) for s in (0.1, 0.2, 0.3)
    )


def test_defaults_are_filled_in(registry):
    doc = _doc(
        datasets=[{"name": "eight-gaussians"}],
        models=[{"name": "gaussian"}, {"name": "gmm"}],
        policies=[{"name": "mix"}, {"name": "fresh", "params": {"n_fresh": 10}}],
        metrics=[{"name": "w2"}],
    )
    grid = parse_grid(doc, registry)
    w2 = {k: p.default for k, p in registry.get("metric", "w2").component.parameters.items()}
    for run in grid.runs:
        for kind, spec in (("dataset", run.dataset), ("model", run.model), ("policy", run.policy)):
            declared = registry.get(kind, spec.name).component.parameters
            expected = {k: p.default for k, p in declared.items()}
            expected.update({k: v for k, v in spec.kwargs.items() if k in spec.given})
            assert spec.kwargs == expected
        assert run.metrics[0].kwargs == w2
        # warm start and budget default to the family's own
        assert run.warm_start is registry.get("model", run.model.name).component.warm_start_default
        assert run.train_steps is None and run.max_train_steps is None
    fresh = next(r for r in grid.runs if r.policy.name == "fresh")
    assert fresh.policy.kwargs == {"n_fresh": 10, "n_synthetic": None}
    assert fresh.policy.label == "fresh[n_fresh=10]"


def test_a_default_written_out_gives_the_same_run_id(registry):
    max_exact = registry.get("metric", "w2").component.parameters["max_exact"].default
    implicit = _doc(
        datasets=[{"name": "moons"}],
        models=[{"name": "gaussian"}],
        policies=[{"name": "mix"}],
        metrics=[{"name": "w2"}],
    )
    explicit = _doc(
        datasets=[{"name": "moons", "params": {"noise": 0.1}}],
        models=[{"name": "gaussian", "params": {"ddof": 0}}],
        policies=[{"name": "mix", "params": {"lambda": 1}}],  # an int where the default is the float 1.0
        metrics=[{"name": "w2", "params": {"max_exact": max_exact}}],
        warm_start=False,
    )
    a, b = parse_grid(implicit, registry).runs, parse_grid(explicit, registry).runs
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert a[0].policy.label == "mix" and b[0].policy.label == "mix[lambda=1.0]"
    changed = parse_grid({**explicit, "models": [{"name": "gaussian", "params": {"ddof": 1}}]}, registry).runs
    assert not {r.run_id for r in changed} & {r.run_id for r in a}


@pytest.mark.parametrize(
    ("component", "key", "message"),
    [
        (
            {"policies": [{"name": "fresh", "params": {"n_fresh": 300}}]},
            "policies[0].params.n_fresh",
            "must be <= n_real = 200",
        ),
        ({"models": [{"name": "gmm", "params": {"components": 300}}]}, "models[0].params.components", "200"),
    ],
)
def test_smoke_mode_says_which_sizes_its_shrunk_grid_cannot_hold(registry, component, key, message):
    """Valid at the file's n_real = 500, not at smoke mode's 200: smoke mode still runs any grid, but says which
    component's smoke runs compute something else (unsaid, fresh took 300 fresh points of 200 and trained on no
    synthetic data at all, and gmm failed). Sizes that fit leave no note."""
    sections = {
        "datasets": [{"name": "moons"}],
        "models": [{"name": "gaussian"}],
        "policies": [{"name": "replace"}],
        "metrics": [{"name": "w2"}],
    }
    doc = _doc(**{**sections, "n_real": 500, "n_test": 500, "n_eval": 500, **component})
    assert parse_grid(doc, registry).smoke_notes == ()
    (note,) = parse_grid(doc, registry, smoke=True).smoke_notes
    assert note.startswith(f"{key}: ") and message in note
    assert "once smoke mode shrinks" in note and "n_real 500 to 200" in note
    assert parse_grid(_doc(**sections, n_real=500, n_test=500, n_eval=500), registry, smoke=True).smoke_notes == ()


def test_smoke_shrinks_to_the_limits_and_keeps_results_apart(registry):
    big = {"generations": 10, "n_real": 5000, "n_test": 4000, "n_eval": 3000, "train_steps": 1000, "seeds": [4, 5, 6]}
    doc = _doc(
        datasets=[{"name": "moons"}],
        models=[{"name": "gmm"}, {"name": "gaussian"}],
        policies=[{"name": "replace"}],
        metrics=[{"name": "w2"}],
        **big,
    )
    full: GridSpec = parse_grid(doc, registry)
    smoke: GridSpec = parse_grid(doc, registry, smoke=True)
    assert len(full.runs) == 2 * 3
    assert len(smoke.runs) == 2 * SMOKE_LIMITS["seeds"]
    assert {r.seed for r in smoke.runs} == set(big["seeds"][: SMOKE_LIMITS["seeds"]])
    for run in smoke.runs:
        assert run.smoke
        for key in ("generations", "n_real", "n_test", "n_eval"):
            assert getattr(run, key) == SMOKE_LIMITS[key]
        assert run.max_train_steps == SMOKE_LIMITS["max_train_steps"]
    assert not {r.run_id for r in full.runs} & {r.run_id for r in smoke.runs}
    # sizes already under the budget are kept
    small = parse_grid({**doc, "n_eval": 7, "generations": 1}, registry, smoke=True).runs[0]
    assert (small.n_eval, small.generations, small.n_real) == (7, 1, SMOKE_LIMITS["n_real"])


@pytest.mark.parametrize(
    ("policy", "key", "what"),
    [
        ({"name": "mix", "params": {"lambda": 1e9}}, "lambda", "1e+11 synthetic points a generation"),
        ({"name": "mix", "params": {"lambda": 1e300}}, "lambda", "1e+302 synthetic points a generation"),
        ({"name": "curate", "params": {"lambda": 1e6}}, "lambda", "1e+08 synthetic points kept a generation"),
        ({"name": "curate", "params": {"oversample": 1e12}}, "oversample", "1e+14 samples drawn a generation"),
        ({"name": "fresh", "params": {"n_synthetic": 10**11}}, "n_synthetic", "1e+11 synthetic points a generation"),
    ],
)
def test_a_policy_asking_for_more_points_than_any_size_may_be_is_refused_before_anything_runs(
    registry, policy, key, what
):
    """Sizes derived from lambda, oversample and n_synthetic are bounded as n_real is (10 million): unbounded, the
    grid was accepted, its store made and generation 0 computed, then generation 1 failed with a MemoryError."""
    doc = _doc(
        datasets=[{"name": "moons"}],
        models=[{"name": "kde"}],
        policies=[policy],
        metrics=[{"name": "w2"}],
        n_real=100,
    )
    with pytest.raises(GridError) as refused:
        parse_grid(doc, registry)
    assert refused.value.key == f"policies[0].params.{key}"
    assert f"asks for {what}, more than the 10,000,000 a size may be" in str(refused.value)


def test_fresh_whose_default_fresh_points_are_none_and_no_synthetic_ones_is_refused(registry):
    """n_real = 1 makes the default n_fresh (n // 2) zero: with n_synthetic = 0 every training set is empty, which
    the grid check missed (it tested only an explicit n_fresh = 0) and generation 1 found."""
    doc = _doc(
        datasets=[{"name": "moons"}],
        models=[{"name": "kde"}],
        policies=[{"name": "fresh", "params": {"n_synthetic": 0}}],
        metrics=[{"name": "mean-distance"}],
        n_real=1,
    )
    with pytest.raises(GridError, match=r"n_synthetic: must be > 0 when n_fresh is 0 \(n_real = 1\)"):
        parse_grid(doc, registry)
