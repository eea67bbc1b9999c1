"""`retrainbench compare`, the regression gate: matching by spec, the change of each statistic with its interval,
the fail rules, the outputs, bad input, and its false-failure rate when nothing changed (by simulation)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest
from conftest import grid_doc
from scipy import stats as sps

from benchmark.api.plugins import build_registry
from benchmark.cli import main
from benchmark.report import compare as gate
from benchmark.report.leaderboard import results_frame
from benchmark.report.stats import ALPHA, synthetic
from benchmark.run.harness import run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store

T = 10
#: A small grid of synthetic configurations (metric w2: lower is better), with the grid's real-only control.
CASES = [
    synthetic.control_case(metric="w2"),
    synthetic.Case("steady", synthetic.constant, metric="w2"),
    synthetic.Case("victim", synthetic.constant, metric="w2"),
    synthetic.Case("settles", synthetic.settling(0.05, 2.0), metric="w2"),
]


def results(cases=CASES, seeds=3, seed=0) -> pd.DataFrame:
    frame = synthetic.frame(cases, seeds, T, np.random.default_rng(seed))
    return frame.assign(n_real=200, smoke=False)


def folder(path: Path, frame: pd.DataFrame) -> Path:
    """A report folder holding ``frame`` as its results.csv."""
    path.mkdir()
    frame.to_csv(path / "results.csv", index=False)
    return path


def cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def worsened(frame: pd.DataFrame, policy: str, per_generation: float) -> pd.DataFrame:
    """``frame`` with ``policy``'s values raised by ``per_generation`` x t: a worsening injected into results.csv."""
    rows = frame["policy"] == policy
    return frame.assign(value=frame["value"] + np.where(rows, per_generation * frame["generation"], 0.0))


def test_identical_inputs_compare_equal(capsys, tmp_path):
    base = folder(tmp_path / "base", results())
    code, out, err = cli(capsys, "compare", base, base, "--json", tmp_path / "c.json")
    assert code == 0, err
    assert "passed: 0 failing, 0 changed of 4 compared" in out
    doc = json.loads((tmp_path / "c.json").read_text())
    assert not doc["failed"] and {r["level_change"] for r in doc["compared"]} == {0.0}


def test_an_injected_worsening_fails_and_names_the_configuration(capsys, tmp_path):
    frame = results()
    base = folder(tmp_path / "base", frame)
    cand = folder(tmp_path / "cand", worsened(results(seed=1), "victim", 0.05))
    files = [tmp_path / n for n in ("c.md", "c.json", "c.xml")]
    code, out, err = cli(capsys, "compare", base, cand, "--markdown", files[0], "--json", files[1], "--junit", files[2])
    assert code == 1, err
    failing = [line for line in out.splitlines() if "FAIL:" in line]
    assert len(failing) == 1 and "d / m / victim / w2" in failing[0] and "level +" in failing[0]
    md = files[0].read_text()
    assert md.index("### Failing (1)") < md.index("victim") < md.index("Unchanged")
    doc = json.loads(files[1].read_text())
    assert doc["failed"] and [r["policy"] for r in doc["compared"] if r["fails"]] == ["victim"]
    suite = ElementTree.parse(files[2]).getroot()
    failed = [c.get("classname") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert suite.get("tests") == "4" and failed == ["d.m.victim"]


def test_a_verdict_change_is_reported_and_fails(capsys, tmp_path):
    base = folder(tmp_path / "base", results())
    cand = folder(tmp_path / "cand", worsened(results(seed=1), "steady", 0.05))
    code, out, _ = cli(capsys, "compare", base, cand, "--fail-on", "verdict")
    row = next(line for line in out.splitlines() if "/ steady /" in line)
    before = re.search(r"(\S+) -> collapsed", row)
    assert code == 1 and before and before[1] in ("stable", "inconclusive")
    assert f"FAIL: verdict {before[1]} -> collapsed" in row
    code, out, _ = cli(capsys, "compare", base, cand, "--fail-on", "none")
    assert code == 0 and f"{before[1]} -> collapsed" in out and "changed" in out


def test_a_worsening_within_the_tolerance_does_not_fail_on_level(capsys, tmp_path):
    base = folder(tmp_path / "base", results())
    cand = folder(tmp_path / "cand", worsened(results(seed=1), "victim", 0.05))
    code, out, _ = cli(capsys, "compare", base, cand, "--fail-on", "level", "--tolerance", "w2=1.0")
    assert code == 0 and "FAIL" not in out
    code, _, _ = cli(capsys, "compare", base, cand, "--fail-on", "level", "--tolerance", "w2=10%")
    assert code == 1  # 10% of |generation 0| (1.0) is far below the injected 0.5


def test_a_new_failure_fails(capsys, tmp_path):
    frame = results(seed=1)
    broken = (frame["policy"] == "steady") & (frame["seed"] == 2)
    cand = folder(tmp_path / "cand", frame.assign(status=frame["status"].where(~broken, "failed")))
    base = folder(tmp_path / "base", results())
    code, out, _ = cli(capsys, "compare", base, cand, "--fail-on", "failure")
    row = next(line for line in out.splitlines() if "/ steady /" in line)
    assert code == 1 and "failed or diverged runs 0% -> 33%" in row


def test_configurations_on_one_side_are_named(capsys, tmp_path):
    base = folder(tmp_path / "base", results())
    cand = folder(tmp_path / "cand", results(CASES[:3], seed=1))
    code, out, _ = cli(capsys, "compare", base, cand)
    assert code == 0 and "only in the baseline: d / m / settles / w2 [n_real=200, smoke=false]" in out


def test_settings_are_matched_unless_ignored(capsys, tmp_path):
    base = folder(tmp_path / "base", results())
    cand = folder(tmp_path / "cand", results(seed=1).assign(n_real=100))
    code, _, err = cli(capsys, "compare", base, cand)
    assert code == 2 and "no configuration in common" in err
    code, out, _ = cli(capsys, "compare", base, cand, "--ignore-settings")
    assert code == 0 and "of 4 compared" in out


def test_configurations_computed_by_other_component_versions_are_said_to_be(capsys, tmp_path):
    """Same spec and settings but another ``config`` id: a component's version (a metric's definition) changed."""
    frame = results()
    base = folder(tmp_path / "base", frame)
    victim = frame["policy"] == "victim"
    cand = folder(tmp_path / "cand", frame.assign(config=frame["config"].where(~victim, frame["config"] + "-v2")))
    code, out, err = cli(capsys, "compare", base, cand, "--json", tmp_path / "c.json")
    assert code == 0, err
    assert "; 1 computed by other component versions (a change may be a new definition)" in out
    rows = json.loads((tmp_path / "c.json").read_text())["compared"]
    assert {r["policy"] for r in rows if r["redefined"]} == {"victim"}
    code, out, _ = cli(capsys, "compare", base, base)
    assert code == 0 and "component versions" not in out


def test_two_configurations_of_one_spec_on_a_side_are_refused(capsys, tmp_path):
    frame = results()
    other = frame.assign(n_real=100, run_id=frame["run_id"] + "-100", config=frame["config"] + "-100")
    both = folder(tmp_path / "both", pd.concat([frame, other], ignore_index=True))
    code, out, _ = cli(capsys, "compare", both, both)
    assert code == 0 and "of 8 compared" in out
    code, _, err = cli(capsys, "compare", both, both, "--ignore-settings")
    assert (
        code == 2
        and "d-m-mix[lambda=0.0], d-m-mix[lambda=0.0]-100 share the spec d / m / mix[lambda=0.0] / w2: compare one"
        in err
    )


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[object], str]]:
    good = folder(tmp_path / "good", results())
    other_dataset = folder(tmp_path / "other", results([synthetic.Case("x", synthetic.constant, dataset="e")]))
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "results.csv").write_text("run_id,dataset\nr,d\n")
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "store.json").write_text('{"schema": 999}')
    return {
        "missing": ([tmp_path / "nowhere", good], f"{tmp_path / 'nowhere'}: no such store"),
        "columns": ([good, tmp_path / "cut"], "not a results.csv of this schema: no column model"),
        "schema": ([tmp_path / "schema", good], "schema 999"),
        "disjoint": ([good, other_dataset], "no configuration in common"),
        "tolerance": ([good, good, "--tolerance", "w2=much"], "--tolerance 'w2=much'"),
        "fail-on": ([good, good, "--fail-on", "speed"], "--fail-on 'speed'"),
        "metric": ([good, good, "--tolerance", "fid=0.1"], "--tolerance: no metric fid in the comparison (w2)"),
    }


@pytest.mark.parametrize("case", ["missing", "columns", "schema", "disjoint", "tolerance", "fail-on", "metric"])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(capsys, tmp_path, case):
    args, message = _bad_inputs(tmp_path)[case]
    code, out, err = cli(capsys, "compare", *args, "--json", tmp_path / "c.json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "c.json").exists()


#: A test plugin: policy ``careful`` (the real set plus n/2 samples) with a bug that CAREFUL_BUG switches on.
CAREFUL = '''
import os
import numpy as np
from benchmark import hookimpl, Policy, TrainingSet

class Careful(Policy):
    """The real set plus n/2 samples; with CAREFUL_BUG set, a deliberate bug: only the samples, shrunk by half."""
    name = "careful"
    def build(self, step):
        n = len(step.real)
        samples = step.sample(n // 2)
        if os.environ.get("CAREFUL_BUG"):
            return TrainingSet(0.5 * samples, {"synthetic": len(samples)})
        return TrainingSet(np.concatenate([step.real, samples]), {"real": n, "synthetic": len(samples)})

@hookimpl
def register_policies(register):
    register(Careful)
'''


@pytest.mark.slow
def test_a_policy_made_worse_in_a_plugin_fails_the_gate(tmp_path, monkeypatch):
    """The same grid run twice, before and after a bug in a plugin's policy: the gate fails on that policy only.
    The baseline is compared as a store, the candidate as a report folder, which also shows both read alike."""
    (tmp_path / "careful_plugin.py").write_text(CAREFUL)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry(["careful_plugin"])
    doc = grid_doc(
        name="careful",
        generations=6,
        seeds=[0, 1, 2],
        n_real=200,
        n_test=200,
        n_eval=200,
        datasets=[{"name": "gaussian", "params": {"dim": 2}}],
        models=[{"name": "gaussian"}],
        policies=[{"name": "careful"}, {"name": "mix", "params": {"lambda": 0.0}}],
        metrics=[{"name": "w2"}],
    )
    grid, executor = parse_grid(doc, registry), registry.get("executor", "inline").component()
    run_grid(grid, Store(tmp_path / "before"), executor, registry, progress=False)
    monkeypatch.setenv("CAREFUL_BUG", "1")
    run_grid(grid, Store(tmp_path / "after"), executor, registry, progress=False)
    folder(tmp_path / "report", results_frame(Store(tmp_path / "after")))

    same = gate.compare(tmp_path / "before", tmp_path / "before", registry)
    assert not same.failed and not same.rows["changed"].any()
    result = gate.compare(tmp_path / "before", tmp_path / "report", registry)
    failing = result.rows[result.rows["fails"].map(bool)]
    assert result.failed and list(failing["policy"]) == ["careful"]
    assert any(reason.startswith("level +") for reason in failing["fails"].iloc[0])


@pytest.mark.parametrize("same_seeds", [True, False])
def test_the_change_and_its_interval_are_the_t_tests(same_seeds):
    rng = np.random.default_rng(3)
    base = pd.Series(rng.normal(0.0, 1.0, 4), index=[0, 1, 2, 3])
    cand = pd.Series(rng.normal(0.5, 2.0, 4), index=[0, 1, 2, 3] if same_seeds else [4, 5, 6, 7])
    found = gate.change(base, cand)
    test = sps.ttest_rel(cand, base) if same_seeds else sps.ttest_ind(cand, base, equal_var=False)
    low, high = test.confidence_interval(1 - 2 * ALPHA)
    assert found.paired is same_seeds
    assert found.change == pytest.approx(cand.mean() - base.mean())
    assert (found.low, found.high) == (pytest.approx(low), pytest.approx(high))


def test_one_seed_a_side_gives_no_interval_and_no_significance():
    found = gate.change(pd.Series([0.1]), pd.Series([0.9]))
    assert math.isnan(found.low) and math.isnan(found.se)


@pytest.mark.slow
def test_two_runs_of_one_grid_fail_by_chance_at_most_at_the_stated_rate(registry):
    """Nothing changed: baseline and candidate are the same grid with independent seeds (3 a side, 8
    configurations, 24 tests adjusted together). The gate may fail by chance in at most ALPHA of comparisons;
    with 150 comparisons the binomial standard error of a 5% rate is 1.8%, so the bound is 10.3%. (Measured: 0 of
    150 fail; a gate failing on any of its tests alone, unadjusted, would fail 31% of them.)"""
    cases = [
        synthetic.control_case(metric="w2"),
        *(synthetic.Case(f"p{i}", synthetic.constant, metric="w2", noise=0.03) for i in range(5)),
        synthetic.Case("settles", synthetic.settling(0.05, 2.0), metric="w2"),
        synthetic.Case("drifts", synthetic.drift(0.01), metric="w2"),
    ]
    reports = 150
    rng = np.random.default_rng(19)
    failed = unadjusted = 0
    for _ in range(reports):
        sides = [gate.summarize(Path(name), synthetic.frame(cases, 3, 6, rng), registry, False) for name in ("b", "c")]
        result = gate.compare_sides(*sides, frozenset(gate.FAIL_RULES), gate.Tolerances())
        failed += result.failed
        unadjusted += bool((result.rows[["p_level", "p_shift", "p_quality"]] <= ALPHA).to_numpy().any())
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / reports)
    assert failed / reports <= bound
    assert unadjusted / reports > bound  # the simulation sees an excess: the tests alone, unadjusted, would fail
