"""Stability statistics on constructed results with known answers, and the CSV / Markdown outputs of a real store."""

from __future__ import annotations

import json
import math
import os
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import SCHEMA_VERSION
from benchmark.errors import StoreError
from benchmark.harness import run_grid
from benchmark.leaderboard import BOARD_COLUMNS, _typed, leaderboard_frame, results_frame, write_report
from benchmark.report import stats
from benchmark.report.stats import Direction
from benchmark.report.tables import markdown
from benchmark.spec import parse_grid
from benchmark.store import Store

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


def test_collapse_start_needs_two_consecutive_generations_beyond_ten_percent():
    s = series([1.0, 1.05, 1.2, 1.3, 1.08])
    assert s["collapse_start"] == 2
    assert s["status"] == "degraded"  # collapsed at 2 but back within 10% at the end
    assert s["auc"] == pytest.approx((0.05 + 0.2 + 0.3 + 0.08) / 4)
    assert s["max_worsening"] == pytest.approx(0.3)
    assert s["relative_change"] == pytest.approx(0.08)

    s = series([1.0, 1.2, 1.05, 1.3, 1.4])
    assert (s["collapse_start"], s["status"]) == (3, "collapsed")  # generation 1 alone is no start

    s = series([1.0, 1.0, 1.0, 1.5])
    assert (s["collapse_start"], s["status"]) == (None, "degraded")  # the last generation alone is no start

    s = series([1.0, 1.05, 0.95, 1.08])
    assert (s["collapse_start"], s["status"]) == (None, "stable")
    assert s["auc"] == pytest.approx((0.05 - 0.05 + 0.08) / 3)


def test_status_in_every_direction():
    assert series([0.8, 0.7, 0.6], HIGHER)["status"] == "collapsed"
    assert series([0.8, 0.9, 1.0], HIGHER)["status"] == "stable"
    assert series([1.0, 0.8, 1.25], TO_ONE)["collapse_start"] == 1
    assert series([2.0, 2.4, 1.6], UNKNOWN)["status"] == "collapsed"
    assert series([2.0, 0.5, 0.1], LOWER)["status"] == "stable"  # getting better is never degradation


def test_failed_and_diverged_runs_keep_their_status_and_values():
    s = series([1.0, 5.0, 9.0], status="diverged")
    assert s["status"] == "diverged"
    assert s["last"] == 9.0 and s["collapse_start"] == 1
    assert series([1.0], status="failed")["status"] == "failed"


def test_a_run_of_one_generation_has_no_trend():
    s = series([1.0])
    assert s["status"] == "stable" and s["generations"] == 0
    assert math.isnan(s["slope"]) and math.isnan(s["auc"]) and s["relative_change"] == 0


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
            out.append({"run_id": f"{model}-{policy}-{seed}", "dataset": "d", "model": model, "policy": policy,
                        "seed": seed, "generation": t, "metric": metric, "value": v, "detail": "",
                        "status": status, "config": f"{model}-{policy}"})
    return pd.DataFrame(out)


def test_seed_summary_statistics_and_statuses():
    frame = results([
        ("m", "p", 0, [1.0, 1.0, 1.2, 1.3], "done"),  # collapse start 2, collapsed
        ("m", "p", 1, [1.0, 1.0, 1.0, 1.0], "done"),  # stable
        ("m", "p", 2, [1.0, 1.0, 1.0, 1.3], "done"),  # degraded (the last generation only)
        ("m", "q", 0, [2.0, 2.5, 3.0], "done"),       # collapse start 1
        ("m", "q", 1, [2.0, 2.0, 2.0], "done"),
    ])
    runs = stats.run_summary(frame, {"loss": LOWER})
    board = stats.seed_summary(runs).set_index("policy")
    p = board.loc["p"]
    assert p["seeds"] == 3 and p["generations"] == 3
    assert p["last_mean"] == pytest.approx(1.2)
    assert p["last_std"] == pytest.approx(np.std([1.3, 1.0, 1.3], ddof=1))
    half = 4.302653 * np.std([1.3, 1.0, 1.3], ddof=1) / math.sqrt(3)
    assert p["last_ci_high"] - p["last_mean"] == pytest.approx(half, rel=1e-6)
    # severities stable < degraded < collapsed: the most severe held by at least half (2 of 3) is degraded
    assert p["status"] == "degraded"
    assert p["status_counts"] == "1 stable, 1 degraded, 1 collapsed"
    # only 1 of 3 seeds collapsed: fewer than half, no collapse start
    assert pd.isna(p["collapse_start"])
    q = board.loc["q"]
    # 2 seeds: collapsed is held by half of them; so is collapse start 1
    assert q["status"] == "collapsed" and q["collapse_start"] == 1
    assert q["slope_mean"] == pytest.approx((0.5 + 0.0) / 2)


def test_ranking_rewards_ending_good_not_staying_bad():
    frame = results([
        ("good", "drifts", 0, [1.0, 1.2, 1.5], "done"),        # good start, degrades: ends at 1.5
        ("good", "drifts", 1, [1.0, 1.2, 1.5], "done"),
        ("bad", "stays", 0, [3.0, 3.0, 3.0], "done"),          # perfectly stable, but bad
        ("bad", "stays", 1, [3.0, 3.0, 3.0], "done"),
        ("good", "holds", 0, [1.0, 1.1, 1.2], "done"),         # ends at 1.2: best
        ("good", "holds", 1, [1.0, 1.1, 1.2], "done"),
        ("best", "diverges", 0, [0.1, 0.1], "diverged"),       # lowest values, but diverged: last
        ("best", "diverges", 1, [0.1, 0.1], "diverged"),
    ])
    board = leaderboard_frame(frame)  # no registry: direction from the fallback below
    assert board["rank"].isna().all()  # the metric "loss" is unknown without a registry: not ranked
    dirs = {"loss": LOWER}
    board = stats.rank(stats.seed_summary(stats.run_summary(frame, dirs)), dirs)
    order = list(zip(board["model"], board["policy"], board["rank"]))
    assert order == [("good", "holds", 1), ("good", "drifts", 2), ("bad", "stays", 3), ("best", "diverges", 4)]
    assert board.set_index("policy").loc["stays", "status"] == "stable"


def test_ranking_of_higher_is_better_and_optimum_metrics():
    frame = results([("a", "x", 0, [0.9, 0.8], "done"), ("b", "y", 0, [0.5, 0.7], "done")], metric="acc")
    frame = pd.concat([frame, results([("a", "x", 0, [1.0, 1.3], "done"), ("b", "y", 0, [1.0, 0.8], "done")],
                                      metric="ratio")])
    dirs = {"acc": HIGHER, "ratio": TO_ONE}
    board = stats.rank(stats.seed_summary(stats.run_summary(frame, dirs)), dirs)
    ranks = {(m, p): r for m, p, r in zip(board["metric"], board["policy"], board["rank"])}
    assert ranks == {("acc", "x"): 1, ("acc", "y"): 2, ("ratio", "y"): 1, ("ratio", "x"): 2}  # |0.8-1| < |1.3-1|
    assert set(board["direction"]) == {"higher is better", "closer to 1 is better"}


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

GRID = """
name = "tiny"
generations = 2
seeds = [0, 1]
n_real = 60
n_test = 60
n_eval = 60

[[datasets]]
name = "eight-gaussians"

[[models]]
name = "gaussian"
params = { ddof = 1 }

[[models]]
name = "gmm"
params = { components = 2, max_iter = 2 }

[[policies]]
name = "mix"
params = { lambda = 0.5 }

[[policies]]
name = "replace"

[[metrics]]
name = "mean-distance"

[[metrics]]
name = "variance-ratio"
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory, registry) -> Path:
    root = tmp_path_factory.mktemp("leaderboard") / "store"
    grid = parse_grid(tomllib.loads(GRID), registry, where="tiny.toml", source=GRID)
    run_grid(grid, Store(root), registry.get("executor", "inline").component({}), registry, progress=False)
    return root


def test_results_frame_is_tidy_and_typed(store):
    frame = results_frame(Store(store))
    assert list(frame.columns[:11]) == ["run_id", "dataset", "model", "policy", "seed", "generation", "metric",
                                        "value", "detail", "status", "config"]
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
    assert "**collapse start**" in text and "## eight-gaussians: variance-ratio (closer to 1 is better)" in text
    assert sum(line.startswith("| rank ") for line in text.splitlines()) == 2
    again = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(again) == len(results_frame(Store(store)))


def test_grid_selection(store):
    assert len(results_frame(Store(store), grid="tiny")) == 48
    with pytest.raises(StoreError, match="no grid 'other'.*grids: tiny"):
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
    assert "a\\|b" in md and "&lt;b&gt;x&lt;/b&gt;" in md and "<b>" not in md


def test_empty_store_gives_empty_outputs(tmp_path, registry):
    Store(tmp_path / "empty").check(create=True)
    paths = write_report(tmp_path / "empty", tmp_path / "out", registry=registry)
    assert all(p.exists() for p in paths)
    assert "No results" in (tmp_path / "out" / "leaderboard.md").read_text()
    assert os.path.getsize(tmp_path / "out" / "index.html") > 0
