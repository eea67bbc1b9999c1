"""Stability statistics on constructed results with known answers, and the CSV / Markdown outputs of a real store."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_grid
from numpy.typing import ArrayLike

from benchmark import SCHEMA_VERSION
from benchmark.errors import StoreError
from benchmark.report import stats
from benchmark.report.leaderboard import BOARD_COLUMNS, _typed, leaderboard_frame, results_frame, write_report
from benchmark.report.stats import Direction
from benchmark.report.tables import markdown, md_text, status_text
from benchmark.run.harness import run_grid
from benchmark.run.spec import load_grid
from benchmark.run.store import Store

LOWER = Direction(higher_is_better=False, optimum=0.0)
HIGHER = Direction(higher_is_better=True)
TO_ONE = Direction(higher_is_better=None, optimum=1.0)
UNKNOWN = Direction()


def series(values, direction=LOWER, status="done"):
    return stats.series_stats(np.arange(len(values)), np.array(values, dtype=float), direction, status)


# ---------------------------------------------------------------- one run


def test_slope_is_the_least_squares_slope():
    assert stats.slope(np.arange(5), 2 + 0.5 * np.arange(5)) == pytest.approx(0.5)
    # t = 0..3, v = 0,1,0,1: sum (t - 1.5)(v - .5) = 1, sum (t - 1.5)^2 = 5
    assert stats.slope(np.arange(4), np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(0.2)
    assert math.isnan(stats.slope(np.arange(1), np.array([3.0])))
    # non-finite values are left out rather than poisoning the fit
    assert stats.slope(np.arange(4), np.array([1.0, np.nan, 3.0, 4.0])) == pytest.approx(
        np.polyfit([0.0, 2.0, 3.0], [1.0, 3.0, 4.0], 1)[0]
    )


def test_worsening_follows_the_metric_direction():
    np.testing.assert_allclose(stats.worsening(np.array([2.0, 2.5, 1.0]), LOWER), [0, 0.25, -0.5])
    np.testing.assert_allclose(stats.worsening(np.array([0.8, 0.7, 0.9]), HIGHER), [0, 0.125, -0.125])
    # closer to the optimum 1 is better: both 0.8 and 1.25 are worse than 1.0
    np.testing.assert_allclose(stats.worsening(np.array([1.0, 0.8, 1.25]), TO_ONE), [0, 0.2, 0.25])
    # unknown direction: any departure from generation 0 counts
    np.testing.assert_allclose(stats.worsening(np.array([2.0, 2.4, 1.6]), UNKNOWN), [0, 0.2, 0.2])
    assert np.isnan(stats.worsening(np.array([0.0, 1.0]), LOWER)).all()


def test_differences_are_in_metric_units_and_follow_the_direction():
    np.testing.assert_allclose(stats.differences(np.array([2.0, 2.5, 1.0]), LOWER), [0, 0.5, -1.0])
    np.testing.assert_allclose(stats.differences(np.array([0.8, 0.7, 0.9]), HIGHER), [0, 0.1, -0.1])
    np.testing.assert_allclose(stats.differences(np.array([1.0, 0.8, 1.25]), TO_ONE), [0, 0.2, 0.25])
    # unknown direction: signed, so that noise averages out (``bound`` counts a change either way)
    np.testing.assert_allclose(stats.differences(np.array([2.0, 2.4, 1.6]), UNKNOWN), [0, 0.4, -0.4])
    # defined where the ratio is not: v_0 = 0
    np.testing.assert_allclose(stats.differences(np.array([0.0, 1.0]), LOWER), [0, 1.0])


def test_late_worsening_averages_the_last_quarter_of_the_generations():
    assert [stats.tail_size(t) for t in (0, 1, 4, 5, 8, 20)] == [0, 1, 1, 2, 2, 5]
    # T = 8: the mean of d_7 and d_8
    assert stats.late_worsening(np.array([0, 9, 9, 9, 9, 9, 9, 0.2, 0.4])) == pytest.approx(0.3)
    # T = 20: generations 16..20
    assert stats.late_worsening(np.r_[np.zeros(16), [1.0, 2.0, 3.0, 4.0, 5.0]]) == pytest.approx(3.0)
    assert math.isnan(stats.late_worsening(np.array([0.0])))  # generation 0 alone: no worsening to average


def test_run_status_of_a_single_run_from_its_own_noise():
    t = np.arange(21)
    wiggle = 0.01 * np.where(t % 2 == 0, 1.0, -1.0)  # evaluation noise of 0.01 around a line
    s = series(1.0 + 0.03 * t + wiggle)  # 0.3 worse by generation 10, still rising: level and drift beyond 0.1
    assert s["status"] == "collapsed" and s["tolerance"] == pytest.approx(0.101)  # 10% of v_0 = 1.01
    assert s["collapse_start"] == 4  # d_t = 0.03 t + wiggle - 0.01: 0.07 at 3, 0.12 at 4, 0.13 at 5
    # 11 residuals of +-0.01 on 9 degrees of freedom (the line absorbs almost none of an alternating wiggle)
    assert s["noise"] == pytest.approx(0.01 * math.sqrt(11 / 9), rel=0.01) and s["late_drift"] == pytest.approx(
        0.3, abs=0.01
    )
    s = series(1.0 + 0.3 * (t > 0) + wiggle)  # 0.3 worse at generation 1, then no trend: settled, not collapsed
    assert s["status"] == "settled-worse" and s["collapse_start"] == 1
    s = series(1.0 + wiggle)
    assert s["status"] == "stable" and pd.isna(s["collapse_start"])
    assert series(1.0 - 0.03 * t + wiggle)["status"] == "stable"  # getting better is never a worsening
    assert series(np.zeros(21))["status"] == "stable"  # nothing moves at all: no noise, no tolerance needed
    assert series(1.0 - 0.03 * t + wiggle, UNKNOWN)["status"] == "collapsed"  # a change either way counts


def test_failed_and_diverged_runs_keep_their_status_and_values():
    s = series([1.0, 5.0, 9.0], status="diverged")
    assert s["status"] == "diverged"
    assert s["last"] == 9.0 and s["collapse_start"] == 1
    assert series([1.0], status="failed")["status"] == "failed"


def test_a_run_of_one_generation_has_no_trend():
    s = series([1.0])
    assert s["status"] == "inconclusive" and s["generations"] == 0
    assert math.isnan(s["slope"]) and math.isnan(s["auc"]) and s["relative_change"] == 0
    assert math.isnan(s["late_worsening"])


# ---------------------------------------------------------------- across seeds


def test_student_t_interval():
    # values 1, 2, 3: mean 2, sd 1; t(0.975, 2 df) = 4.302653 (tables), half-width 4.302653 / sqrt(3)
    low, high = stats.t_interval(np.array([2.0]), np.array([1.0]), np.array([3]))
    assert high[0] - 2 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert low[0] == pytest.approx(2 - (high[0] - 2))
    # one seed: no interval
    low, high = stats.t_interval(np.array([2.0]), np.array([np.nan]), np.array([1]))
    assert np.isnan(low[0]) and np.isnan(high[0])


def results(rows: list[tuple[str, str, int, list[float], str]], metric: str = "loss") -> pd.DataFrame:
    """A results frame from (model, policy, seed, values over generations, run status) rows."""
    out = []
    for model, policy, seed, values, status in rows:
        for t, v in enumerate(values):
            out.append(
                {
                    "run_id": f"{model}-{policy}-{seed}",
                    "dataset": "d",
                    "model": model,
                    "policy": policy,
                    "seed": seed,
                    "generation": t,
                    "metric": metric,
                    "value": v,
                    "detail": "",
                    "status": status,
                    "config": f"{model}-{policy}",
                }
            )
    return pd.DataFrame(out)


def board_of(frame: pd.DataFrame, dirs: dict[str, Direction]) -> pd.DataFrame:
    """The leaderboard of a constructed results frame, by policy."""
    return stats.seed_summary(stats.run_summary(frame, dirs), frame, dirs).set_index("policy")


T = 20
SEEDS = (0, 1, 2)


def noisy(level: ArrayLike, sd: float, seed: int) -> list[float]:
    """``level`` per generation plus independent Gaussian noise of standard deviation ``sd``."""
    values = np.asarray(level, dtype=float)
    return list(values + sd * np.random.default_rng(seed).standard_normal(len(values)))


def test_a_fifty_percent_rise_settles_worse_from_where_it_is_sustained():
    # badness 1.0 until generation 5, 1.5 from generation 6 on; a lone spike at generation 3 in every seed
    level = np.where(np.arange(T + 1) >= 6, 1.5, 1.0)
    level[3] = 1.5
    frame = results([("m", "rise", s, noisy(level, 0.01, 200 + s), "done") for s in SEEDS])
    row = board_of(frame, {"loss": LOWER}).loc["rise"]
    assert row["status"] == "settled-worse" and row["collapse_start"] == 6
    assert row["level_mean"] == pytest.approx(0.5, abs=0.03)
    assert row["level_ci_low"] > row["tolerance"] == pytest.approx(0.1, rel=0.05)
    # the same in a higher-is-better metric: the value falls by half of generation 0
    frame = results([("m", "fall", s, noisy(-level, 0.01, 200 + s), "done") for s in SEEDS], metric="acc")
    row = board_of(frame, {"acc": HIGHER}).loc["fall"]
    assert (row["status"], row["collapse_start"]) == ("settled-worse", 6)


def test_a_consistent_five_percent_worsening_is_within_the_tolerance():
    level = np.where(np.arange(T + 1) >= 1, 1.05, 1.0)
    frame = results([("m", "drift", s, noisy(level, 0.001, 300 + s), "done") for s in SEEDS])
    row = board_of(frame, {"loss": LOWER}).loc["drift"]
    assert row["status"] == "stable" and pd.isna(row["collapse_start"])
    assert 0 < row["level_ci_low"] < row["level_ci_high"] < row["tolerance"]
    # unknown direction: a consistent 5% fall is as much within as a rise
    frame = results([("m", "drift", s, noisy(2 - level, 0.001, 300 + s), "done") for s in SEEDS])
    assert board_of(frame, {"loss": UNKNOWN}).loc["drift", "status"] == "stable"


def test_seeds_that_disagree_are_not_evidence_either_way():
    # one seed is 30% worse, two stay put: the mean is 10% worse and the interval spans the tolerance
    frame = results(
        [
            ("m", "p", 0, noisy([1.0] + [1.3] * T, 0.01, 0), "done"),
            ("m", "p", 1, noisy(np.ones(T + 1), 0.01, 1), "done"),
            ("m", "p", 2, noisy(np.ones(T + 1), 0.01, 2), "done"),
        ]
    )
    row = board_of(frame, {"loss": LOWER}).loc["p"]
    assert row["status"] == "inconclusive" and pd.isna(row["collapse_start"])
    assert row["level_ci_low"] < row["tolerance"] < row["level_ci_high"]
    assert row["status_counts"] == "2 stable, 1 settled-worse"  # what each seed alone would say


def test_a_single_seed_decides_from_its_own_noise():
    level = np.where(np.arange(T + 1) >= 6, 1.5, 1.0)
    frame = results([("m", "one", 0, noisy(level, 0.01, 400), "done"), ("m", "calm", 0, [1.0] * (T + 1), "done")])
    board = board_of(frame, {"loss": LOWER})
    one = board.loc["one"]
    assert (one["status"], one["collapse_start"], one["note"]) == ("settled-worse", 6, stats.ONE_SEED)
    assert one["seeds"] == 1 and pd.isna(one["late_worsening_ci_low"])  # no interval across seeds
    assert board.loc["calm", "status"] == "stable" and board.loc["calm", "note"] == stats.ONE_SEED
    # the run's own status (runs.csv) follows the same rules
    runs = stats.run_summary(frame, {"loss": LOWER}).set_index("policy")
    assert runs.loc["one", "status"] == "settled-worse" and runs.loc["one", "collapse_start"] == 6
    assert status_text(one.to_dict()) == "settled-worse (1 settled-worse)"


def test_failed_and_diverged_configurations():
    worse = [1.0] + [1.5] * T
    frame = results(
        [
            ("m", "two-failed", 0, [1.0, 1.0], "failed"),
            ("m", "two-failed", 1, [1.0], "failed"),
            ("m", "two-failed", 2, [1.0] * (T + 1), "done"),
            ("m", "mixed", 0, [1.0, 2.0], "diverged"),  # half broken, but only one in two failed: failed
            ("m", "mixed", 1, [1.0], "failed"),
            ("m", "split", 0, [1.0, 2.0], "diverged"),  # two of three broken, one failed: diverged
            ("m", "split", 1, [1.0], "failed"),
            ("m", "split", 2, worse, "done"),
            ("m", "one-failed", 0, [1.0, 3.0], "failed"),  # fewer than half broken: the other two decide
            ("m", "one-failed", 1, worse, "done"),
            ("m", "one-failed", 2, noisy(worse, 0.01, 5), "done"),
            ("m", "lone-survivor", 0, [1.0, 1.0], "failed"),  # one of two failed: half, so not the survivor's say
            ("m", "lone-survivor", 1, [1.0] * (T + 1), "done"),
        ]
    )
    board = board_of(frame, {"loss": LOWER})
    assert board.loc["two-failed", "status"] == "failed"
    assert board.loc["two-failed", "status_counts"] == "1 stable, 2 failed"
    assert board.loc["mixed", "status"] == "failed"
    assert board.loc["split", "status"] == "diverged"
    one = board.loc["one-failed"]
    assert (one["status"], one["collapse_start"], one["note"]) == ("settled-worse", 1, "")
    assert one["status_counts"] == "2 settled-worse, 1 failed"
    assert one["late_worsening_mean"] == pytest.approx(0.5, abs=0.01)  # the failed run's L (2.0) is left out
    assert board.loc["lone-survivor", "status"] == "failed"  # half of the seeds failed
    assert board.loc["two-failed", "note"] == ""


def test_seed_summary_statistics():
    frame = results(
        [
            ("m", "p", 0, [1.0, 1.0, 1.2, 1.3], "done"),
            ("m", "p", 1, [1.0, 1.0, 1.0, 1.0], "done"),
            ("m", "p", 2, [1.0, 1.0, 1.0, 1.3], "done"),
            ("m", "q", 0, [2.0, 2.5, 3.0], "done"),
            ("m", "q", 1, [2.0, 2.0, 2.0], "done"),
        ]
    )
    board = board_of(frame, {"loss": LOWER})
    p = board.loc["p"]
    assert p["seeds"] == 3 and p["generations"] == 3
    assert p["last_mean"] == pytest.approx(1.2)
    assert p["last_std"] == pytest.approx(np.std([1.3, 1.0, 1.3], ddof=1))
    half = 4.302653 * np.std([1.3, 1.0, 1.3], ddof=1) / math.sqrt(3)
    assert p["last_ci_high"] - p["last_mean"] == pytest.approx(half, rel=1e-6)
    # T = 3: L is d_3 = 0.3, 0, 0.3; its interval covers 0, so not significantly worse
    assert p["late_worsening_mean"] == pytest.approx(0.2)
    assert p["late_worsening_ci_low"] == pytest.approx(0.2 - half, rel=1e-6)
    q = board.loc["q"]
    assert q["slope_mean"] == pytest.approx((0.5 + 0.0) / 2)
    assert q["tolerance"] == pytest.approx(0.2)  # T = 2: no residual to measure noise on, so 10% of v_0


def test_ranking_is_by_stability_and_broken_configurations_come_last():
    frame = results(
        [
            *(("good", "drifts", s, noisy(1.0 + 0.05 * np.arange(T + 1), 0.01, s), "done") for s in SEEDS),
            *(("bad", "stays", s, noisy(np.full(T + 1, 3.0), 0.01, 10 + s), "done") for s in SEEDS),
            *(("good", "holds", s, noisy(np.full(T + 1, 1.0), 0.01, 20 + s), "done") for s in SEEDS),
            ("best", "diverges", 0, [0.1, 0.1], "diverged"),  # lowest values, but diverged: last
            ("best", "diverges", 1, [0.1, 0.1], "diverged"),
        ]
    )
    dirs = {"loss": LOWER}
    board = stats.rank(stats.seed_summary(stats.run_summary(frame, dirs), frame, dirs), dirs)
    statuses = dict(zip(board["policy"], board["status"], strict=True))
    assert statuses == {"holds": "stable", "stays": "stable", "drifts": "collapsed", "diverges": "diverged"}
    # both stable ones first, by the upper end of their level in tolerances (0.1 for holds, 0.3 for stays)
    order = list(board["policy"])
    assert set(order[:2]) == {"holds", "stays"} and order[2:] == ["drifts", "diverges"]
    assert list(board["rank"]) == [1, 2, 3, 4]


def test_directions_come_from_the_registry_with_parameters_in_labels(registry):
    dirs = stats.directions(["mean-distance[p=1]", "variance-ratio", "no-such-metric"], registry)
    assert dirs["mean-distance[p=1]"] == Direction(False, 0.0)
    assert dirs["variance-ratio"] == Direction(None, 1.0)
    assert dirs["no-such-metric"] == Direction() and not dirs["no-such-metric"].known


def test_parameter_columns_keep_their_types():
    assert str(_typed(pd.Series([True, None, False], dtype=object)).dtype) == "boolean"
    assert str(_typed(pd.Series([1, None], dtype=object)).dtype) == "Int64"
    assert str(_typed(pd.Series([1, 0.5], dtype=object)).dtype) == "Float64"
    assert str(_typed(pd.Series(["full", None], dtype=object)).dtype) == "string"
    assert _typed(pd.Series([0.1, "scott"], dtype=object)).dtype == object


# ---------------------------------------------------------------- a real store


@pytest.fixture(scope="module")
def store(tmp_path_factory, registry) -> Path:
    folder = tmp_path_factory.mktemp("leaderboard")
    path = write_grid(
        folder / "tiny.toml",
        name="tiny",
        generations=2,
        seeds=[0, 1],
        n_real=60,
        n_test=60,
        n_eval=60,
        datasets=[{"name": "eight-gaussians"}],
        models=[
            {"name": "gaussian", "params": {"ddof": 1}},
            {"name": "gmm", "params": {"components": 2, "max_iter": 2}},
        ],
        policies=[{"name": "mix", "params": {"lambda": 0.5}}, {"name": "replace"}],
        metrics=[{"name": "mean-distance"}, {"name": "variance-ratio"}],
    )
    grid = load_grid(path, registry)
    root = folder / "store"
    run_grid(grid, Store(root), registry.get("executor", "inline").component({}), registry, progress=False)
    return root


def test_results_frame_is_tidy_and_typed(store):
    frame = results_frame(Store(store))
    assert list(frame.columns[:11]) == [
        "run_id",
        "dataset",
        "model",
        "policy",
        "seed",
        "generation",
        "metric",
        "value",
        "detail",
        "status",
        "config",
    ]
    assert len(frame) == 8 * 3 * 2  # runs (2 models x 2 policies x 2 seeds) x generations x metrics
    assert str(frame["model.ddof"].dtype) == "Int64" and frame["model.ddof"].isna().sum() == 24  # gmm rows
    assert str(frame["model.max_iter"].dtype) == "Int64" and frame["model.max_iter"].isna().sum() == 24
    assert frame["model.fixed_scale"].isna().all()  # never set: no type to keep
    assert str(frame["model.covariance"].dtype) == "string"
    assert str(frame["policy.lambda"].dtype) == "Float64"
    assert str(frame["dataset.modes"].dtype) == "Int64"
    # seeds of one configuration share its config id, and nothing else does
    per_config = frame.groupby("config")[["model", "policy"]].nunique()
    assert (per_config == 1).all().all() and len(per_config) == 4
    assert frame.groupby("config")["seed"].nunique().eq(2).all()


class FullDisk:
    """A file whose writes fail as on a full disk (ENOSPC, no file name): what ``_temp_beside`` hands out for
    the files a test names (tests only)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")


def full_disk_for(monkeypatch, *names: str) -> None:
    """Make writes of the report files ``names`` fail as on a full disk."""
    from benchmark import files

    real = files._temp_beside

    def temp_beside(path):
        fh, tmp = real(path)
        if path.name not in names:
            return fh, tmp
        fh.close()
        return FullDisk(), tmp

    monkeypatch.setattr(files, "_temp_beside", temp_beside)


def test_a_report_that_fails_to_write_leaves_the_old_one_whole(store, tmp_path, registry, monkeypatch):
    """A full disk while writing a report's page fails with the file's name, and leaves the earlier report exactly
    as it was, with no temporary files: before, the tables were already replaced and index.html was cut short.
    Written, the files are readable as any other (a temporary file is private)."""
    out = tmp_path / "out"
    write_report(store, out, grid="tiny", registry=registry)  # the old report: its title names the grid
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    mask = os.umask(0)
    os.umask(mask)
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o666 & ~mask}
    full_disk_for(monkeypatch, "index.html")
    with pytest.raises(OSError, match=r"No space left on device: '.*index\.html'"):
        write_report(store, out, registry=registry)  # another title: the tables and the page would differ
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_write_report_outputs(store, tmp_path, registry):
    paths = write_report(store, tmp_path / "out", registry=registry)
    assert [p.name for p in paths] == ["results.csv", "runs.csv", "leaderboard.csv", "leaderboard.md", "index.html"]
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert list(board.columns) == BOARD_COLUMNS
    assert len(board) == 4 * 2  # configurations x metrics
    assert (board["seeds"] == 2).all()
    for _, group in board.groupby(["dataset", "metric"]):
        assert sorted(group["rank"]) == list(range(1, 5))
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 8 * 2 and set(runs["status"]) <= set(stats.SEVERITY)
    text = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "**worse from**" in text and "## eight-gaussians: variance-ratio (closer to 1 is better)" in text
    # findings and tables first, the definitions at the end; plain Markdown, no HTML entities
    assert text.index("## Findings") < text.index("## eight-gaussians") < text.index("## Definitions")
    assert "&gt;" not in text and "&lt;" not in text and "&amp;" not in text
    for term, definition in stats.DEFINITIONS:  # verbatim, so what a reader sees is what the code does
        assert f"- **{term}**: {md_text(definition)}" in text
    assert "| level " in text and "| tolerance " in text and "| status " in text
    assert sum(line.startswith("| rank ") for line in text.splitlines()) == 2
    again = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(again) == len(results_frame(Store(store)))


def test_grid_selection(store):
    assert len(results_frame(Store(store), grid="tiny")) == 48
    with pytest.raises(StoreError, match=r"no grid 'other'.*grids: tiny"):
        results_frame(Store(store), grid="other")


def test_reports_refuse_to_mix_schema_versions(store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    victim = sorted((copy / "runs").iterdir())[3] / "run.json"
    spec = json.loads(victim.read_text())
    spec["schema"] = SCHEMA_VERSION + 1
    victim.write_text(json.dumps(spec))
    with pytest.raises(StoreError, match=f"{victim}: result schema {SCHEMA_VERSION + 1}.*never mixes schema"):
        results_frame(Store(copy))


def test_markdown_escapes_names():
    frame = results([("a|b", "<b>x</b>", 0, [1.0, 1.0], "done")])
    md = markdown(leaderboard_frame(frame), "t")
    assert "a\\|b" in md and "\\<b\\>x\\</b\\>" in md and "<b>" not in md and "&lt;" not in md


def test_empty_store_gives_empty_outputs(tmp_path, registry):
    Store(tmp_path / "empty").check(create=True)
    paths = write_report(tmp_path / "empty", tmp_path / "out", registry=registry)
    assert all(p.exists() for p in paths)
    assert "No results" in (tmp_path / "out" / "leaderboard.md").read_text()
    assert os.path.getsize(tmp_path / "out" / "index.html") > 0
