"""The stability verdicts on synthetic chains with known answers (``benchmark.report.stats.synthetic``).

Measured rates (``scripts/verdict_rates.py --reports 200``, 20 generations, each report holding every case,
adjusted together). False stable: "stable" claimed for a chain that is not; false worse: a worsening claimed for
a stable one; at the tolerance both are false, each a test at 5% (binomial standard error of a 5% rate over 200
reports: 1.5%). Where the detection falls short with 3 seeds the verdict is weaker but true ("worse" for a
collapse whose trend is undecided, "inconclusive" for a stable chain), never a false claim:

    case                              seeds  right          detection    false stable    false worse
    ------------------------------  -------  -------------  -----------  --------------  -----------
    m/mix[lambda=0.0]                     3  stable         86.5%        0.0%            0.0%
    m/same-as-control                     3  stable         79.0%        0.0%            0.0%
    m/drift                               3  collapsed      69.0%        0.0%            0.0%
    m/settling                            3  settled-worse  81.5%        0.0%            0.0%
    m/at-tolerance                        3  inconclusive   96.5%        2.5%            1.0%
    n/near-zero-noise                     3  stable         22.5%        0.0%            0.0%
    w/mix[lambda=0.0]                     3  stable         98.0%        0.0%            0.0%
    w/stays-while-control-improves        3  settled-worse  70.0%        0.0%            0.0%
    m/mix[lambda=0.0]                    10  stable         100.0%       0.0%            0.0%
    m/same-as-control                    10  stable         100.0%       0.0%            0.0%
    m/drift                              10  collapsed      100.0%       0.0%            0.0%
    m/settling                           10  settled-worse  100.0%       0.0%            0.0%
    m/at-tolerance                       10  inconclusive   94.5%        2.0%            3.5%
    n/near-zero-noise                    10  stable         100.0%       0.0%            0.0%
    w/mix[lambda=0.0]                    10  stable         100.0%       0.0%            0.0%
    w/stays-while-control-improves       10  settled-worse  100.0%       0.0%            0.0%
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from benchmark.report import stats
from benchmark.report.stats import Direction, synthetic
from benchmark.report.stats.hypotheses import p_beyond, p_within, seeds_needed

LOWER = Direction(higher_is_better=False)
UNKNOWN = Direction()
T = 20


def board(cases, seeds, seed, direction=LOWER):
    """The leaderboard rows of synthetic ``cases``, by model and policy."""
    frame = synthetic.frame(cases, seeds, T, np.random.default_rng(seed))
    dirs = {"loss": direction}
    out = stats.seed_summary(stats.run_summary(frame, dirs), frame, dirs)
    return out.set_index(["model", "policy"])


def one_configuration(values_by_seed: list[np.ndarray]) -> pd.DataFrame:
    """The results frame of one configuration whose seed s has the values ``values_by_seed[s]``."""
    return pd.concat(
        pd.DataFrame(
            {
                "run_id": f"r{s}",
                "dataset": "d",
                "model": "m",
                "policy": "p",
                "seed": s,
                "generation": range(len(v)),
                "metric": "loss",
                "value": v,
                "detail": "",
                "status": "done",
                "config": "c",
            }
        )
        for s, v in enumerate(values_by_seed)
    )


# ---------------------------------------------------------------- the pieces


def test_tolerance_is_ten_percent_of_generation_zero_but_never_below_the_noise_floor():
    assert stats.tolerance(-2.0, 0.01) == pytest.approx(0.2)
    assert stats.tolerance(0.02, 0.01) == pytest.approx(stats.FLOOR * 0.01)  # 10% of 0.02 is within the noise
    assert stats.tolerance(0.0, float("nan")) == 0.0
    assert math.isnan(stats.tolerance(float("nan"), float("nan")))


def test_chain_level_drift_and_noise_of_a_known_series():
    t = np.arange(T + 1)
    wiggle = np.where(t % 2 == 0, 0.01, -0.01)  # residuals around a line: +-0.01
    found = stats.chain(t, 0.5 + 0.03 * t + wiggle)
    # late window: generations 10..20 (11 points); the line through them has slope 0.03 up to the wiggle's
    line = np.polyfit(t[10:], (0.5 + 0.03 * t + wiggle)[10:], 1)
    assert found.drift == pytest.approx(line[0] * 10)
    residuals = (0.5 + 0.03 * t + wiggle)[10:] - np.polyval(line, t[10:])
    assert found.noise == pytest.approx(np.sqrt(np.sum(residuals**2) / 9)) and found.df == 9
    assert found.level == pytest.approx(np.mean((0.5 + 0.03 * t + wiggle)[16:]))
    # anchored at one evaluation (generation 0): its noise counts as one more generation's
    assert found.level_se == pytest.approx(found.noise * math.sqrt(1 / 5 + 1))
    assert stats.chain(t, 0.03 * t, anchored=False).level_se == pytest.approx(0, abs=1e-12)


def test_one_sided_tests_and_their_equivalence_form():
    # 2 degrees of freedom: t = 2.92 is the 95% quantile
    q = sps.t.ppf(0.95, 2)
    assert p_beyond(1.0 + q * 0.1, 0.1, 2, 1.0) == pytest.approx(0.05)
    assert p_within(1.0 - q * 0.1, 0.1, 2, 1.0) == pytest.approx(0.05)
    # an unknown direction: within is |x| < tol (TOST, the larger of the two p-values), beyond is either side
    assert p_within(0.0, 0.1, 2, 1.0, known=False) == pytest.approx(sps.t.sf(10, 2))
    assert p_beyond(-1.5, 0.1, 2, 1.0, known=False) == pytest.approx(2 * sps.t.sf(5, 2))
    # no noise at all: the estimate is the value
    assert (p_within(0.5, 0.0, 3, 1.0), p_beyond(0.5, 0.0, 3, 1.0)) == (0.0, 1.0)
    assert math.isnan(p_beyond(0.5, 0.1, 0, 1.0))  # no degrees of freedom, no test


def test_benjamini_hochberg_adjustment():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5])
    q = stats.adjust(p)
    # 4 finite p-values: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.04*4/3 -> min with later, ...
    np.testing.assert_allclose(q[[0, 3, 1, 4]], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert math.isnan(q[2])


def test_verdict_from_the_claims():
    v = stats.verdict
    assert v(stats.Claims(worse=False, within=True, moving=False, settled=True)) == "stable"
    assert v(stats.Claims(worse=True, within=False, moving=True, settled=False)) == "collapsed"
    assert v(stats.Claims(worse=True, within=False, moving=False, settled=True)) == "settled-worse"
    assert v(stats.Claims(worse=True, within=False, moving=False, settled=False)) == "worse"
    assert v(stats.Claims(worse=False, within=True, moving=True, settled=False)) == "worsening"
    assert v(stats.Claims(worse=False, within=True, moving=False, settled=False)) == "inconclusive"
    assert v(stats.Claims(worse=False, within=False, moving=False, settled=True)) == "inconclusive"


def test_seeds_needed_to_settle_a_level():
    # sd 0.1, gap 0.1: t_{0.95, n-1} / sqrt(n) < 1 first at n = 5 (2.13 / 2.24)
    assert seeds_needed(0.0, 0.1, 0.1) == 5
    assert seeds_needed(0.0, 10.0, 0.1) is None  # beyond 100 seeds


# ---------------------------------------------------------------- synthetic chains with known answers


def test_a_known_drift_collapses():
    # 0.02 a generation against a tolerance of 0.1: level about 0.36, late drift 0.2
    row = board([synthetic.Case("drift", synthetic.drift(0.02))], 3, 1).loc[("m", "drift")]
    assert row["status"] == "collapsed" and row["reference"] == "generation 0"
    assert row["tolerance"] == pytest.approx(0.1, rel=0.05)
    assert row["level_ci_low"] > row["tolerance"] and row["drift_ci_low"] > row["tolerance"]
    assert 1 <= row["collapse_start"] <= 8  # beyond 0.1 from about generation 5


def test_a_chain_that_settles_is_settled_not_collapsed():
    """Worse by 0.3 by generation 3, then at that fixed point: settled-worse with its level, no drift."""
    row = board([synthetic.Case("settles", synthetic.settling(0.3, 1.0))], 3, 2).loc[("m", "settles")]
    assert row["status"] == "settled-worse"
    assert row["level_mean"] == pytest.approx(0.3, abs=0.05)
    assert row["drift_ci_low"] < 0 < row["drift_ci_high"] < row["tolerance"]


def test_a_constant_chain_with_evaluation_noise_is_stable():
    """A distance near zero (0.02) with 50% evaluation noise: 10% of it is far below the noise, so the tolerance
    is the noise floor's, and the chain is stable (10 seeds; with 3, about 1 in 4 is shown stable, the rest
    inconclusive, never worse: see the rates above)."""
    case = synthetic.Case("noise", synthetic.constant, base=0.02, noise=0.01)
    row = board([case], 10, 3).loc[("m", "noise")]
    assert row["status"] == "stable"
    # the noise floor is estimated on 10 x 9 degrees of freedom: relative standard error 1/sqrt(180) = 0.075; 4 SE
    assert row["noise_floor"] == pytest.approx(0.01, rel=0.3)
    assert row["tolerance"] == pytest.approx(stats.FLOOR * row["noise_floor"])
    assert row["tolerance"] > 5 * stats.THRESHOLD * 0.02
    three = board([case], 3, 3).loc[("m", "noise")]
    assert three["status"] in ("stable", "inconclusive")


def test_the_real_only_control_is_stable_and_policies_are_paired_with_it():
    """The control improves by 0.5 (warm starts keep learning on real data); a policy that stays at generation 0
    is worse than the control by 0.5, which a comparison with generation 0 alone would miss. (10 seeds: with 3, the
    control's drift is shown settled in about 70% of the reports, the rest say "worse": see the rates above.)"""
    cases = [
        synthetic.control_case(synthetic.settling(-0.5, 3.0)),
        synthetic.Case("stays", synthetic.constant),
    ]
    rows = board(cases, 10, 4)
    control = rows.loc[("m", synthetic.CONTROL)]
    assert control["status"] == "stable" and control["reference"] == "generation 0"
    stays = rows.loc[("m", "stays")]
    assert stays["reference"] == "control" and stays["status"] == "settled-worse"
    assert stays["level_mean"] == pytest.approx(0.5, abs=0.05)
    alone = board(cases[1:], 10, 4).loc[("m", "stays")]  # no control in the grid: against generation 0
    assert alone["reference"] == "generation 0" and alone["status"] == "stable"


def test_an_unknown_direction_counts_a_change_either_way():
    rows = board([synthetic.Case("falls", synthetic.drift(-0.02))], 3, 5, UNKNOWN)
    assert rows.loc[("m", "falls"), "status"] == "collapsed"
    assert board([synthetic.Case("falls", synthetic.drift(-0.02))], 3, 5).loc[("m", "falls"), "status"] == "stable"


def test_never_stable_while_half_of_the_runs_are_worse_alone():
    """Ten seeds: five worsen by 0.3 and settle, five improve by 2: the mean is far below the tolerance, but half
    the runs are, each alone, settled 0.3 worse."""
    t = np.arange(T + 1)
    shapes = [synthetic.settling(0.3, 1.0) if seed % 2 else synthetic.settling(-2.0, 1.0) for seed in range(10)]
    frame = one_configuration(
        [
            1.0 + shape(t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
            for seed, shape in enumerate(shapes)
        ]
    )
    dirs = {"loss": LOWER}
    row = stats.seed_summary(stats.run_summary(frame, dirs), frame, dirs).iloc[0]
    assert row["level_ci_high"] < row["tolerance"]  # the interval alone would say "stable"
    assert row["status"] == "inconclusive" and "5 of 10 runs worse alone" in row["note"]
    assert row["status_counts"] == "5 stable, 5 settled-worse"


def test_an_undecided_level_says_what_would_settle_it():
    # 3 seeds that disagree: 0, 0.05 and 0.2 worse, tolerance 0.1
    t = np.arange(T + 1)
    frame = one_configuration(
        [1.0 + np.where(t > 0, w, 0.0) + 0.001 * np.sin(t + s) for s, w in enumerate((0, 0.05, 0.2))]
    )
    dirs = {"loss": LOWER}
    row = stats.seed_summary(stats.run_summary(frame, dirs), frame, dirs).iloc[0]
    assert row["status"] == "inconclusive"
    assert row["level_ci_low"] < row["tolerance"] < row["level_ci_high"]
    assert "seeds: level" in row["note"] and "spans the tolerance" in row["note"]


def test_a_single_seed_uses_its_own_noise():
    row = board([synthetic.Case("drift", synthetic.drift(0.02))], 1, 6).loc[("m", "drift")]
    assert row["status"] == "collapsed" and stats.ONE_SEED in row["note"]
    assert row["level_ci_low"] < row["level_mean"] < row["level_ci_high"]  # an interval from the run's noise


def test_claims_are_adjusted_across_the_report():
    """The same configuration, alone and among 30 null configurations: the adjusted p-value of its claim can
    only grow, and the report counts every test."""
    target = synthetic.Case("drift", synthetic.drift(0.006))
    nulls = [synthetic.Case(f"null{i}", synthetic.constant, model=f"n{i}") for i in range(30)]
    alone = board([target], 3, 7)
    crowd = board([target, *nulls], 3, 7)  # the same draws for the target: it comes first
    assert crowd.loc[("m", "drift"), "q_worse"] >= alone.loc[("m", "drift"), "q_worse"]
    assert stats.tests_made(crowd.reset_index()) == 4 * 31


def test_rank_by_stability_not_quality():
    cases = [
        synthetic.Case("good-but-collapses", synthetic.drift(0.05), base=0.1, noise=0.001),
        synthetic.Case("bad-but-stable", synthetic.constant, base=5.0, noise=0.001),
    ]
    rows = stats.rank(board(cases, 3, 8).reset_index(), {"loss": LOWER}).set_index("policy")
    assert rows.loc["bad-but-stable", "rank"] == 1 and rows.loc["bad-but-stable", "status"] == "stable"
    assert rows.loc["good-but-collapses", "rank"] == 2 and rows.loc["good-but-collapses", "status"] == "collapsed"
    quality = rows["first_mean"].astype(float)  # its own column: generation 0
    assert quality["good-but-collapses"] < quality["bad-but-stable"]


def test_the_findings_name_a_failed_worst_configuration_without_an_empty_level():
    """A configuration whose runs failed has no level: the sentence says so instead of 'level  against .'."""
    from benchmark.report.findings import findings

    row = {"dataset": "moons", "metric": "w2", "model": "flow", "direction": "lower is better", "seeds": 3}
    board = pd.DataFrame(
        [
            {
                **row,
                "policy": "replace",
                "status": "failed",
                "status_counts": "3 failed",
                "level_mean": np.nan,
                "reference": "",
                "collapse_start": np.nan,
            },
            {
                **row,
                "policy": "mix",
                "status": "worse",
                "status_counts": "3 worse",
                "level_mean": 0.5,
                "reference": "control",
                "collapse_start": 4.0,
            },
        ]
    )
    board[[f"q_{c}" for c in ("worse", "within", "moving", "settled")]] = np.nan
    lines = findings(board)
    assert "Worst: flow / replace, failed (3 failed): no level to compare." in lines
    assert not any("level  " in line or "against ." in line for line in lines)
