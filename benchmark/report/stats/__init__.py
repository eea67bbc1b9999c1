"""Stability statistics of retraining runs: per run, across seeds, and the ranking.

One module per job, each importable from here:

* ``directions``: which way each metric is better, as its plugin declares (``Direction``, ``directions``);
* ``chains``: a chain's level (late worsening), late drift and evaluation noise (``chain``);
* ``control``: the grid's real-only control, paired by seed (``paired_control``);
* ``hypotheses``: the one-sided tests of the claims and the Benjamini-Hochberg adjustment (``adjust``);
* ``verdicts``: the tolerance, the verdict from the claims, the generation a chain is worse from;
* ``per_run``: the statistics of one run's series of values (``series_stats``) and runs.csv (``run_summary``);
* ``intervals``: the Student-t confidence interval of every across-seed mean (``t_interval``);
* ``across_seeds``: a configuration's statistics and verdict over its seeds (``seed_summary``);
* ``ranking``: the leaderboard's order (``rank``);
* ``generations``: mean and interval per generation, for the curves (``generation_summary``);
* ``definitions``: ``DEFINITIONS``, the text every report shows, built from the constants the rules use.
"""

from __future__ import annotations

from benchmark.report.stats.across_seeds import CLAIMS, ONE_SEED, SEED_STATS, seed_summary, tests_made
from benchmark.report.stats.chains import LATE, TAIL, Chain, chain, late_worsening, tail_size
from benchmark.report.stats.control import is_control, paired_control
from benchmark.report.stats.definitions import DEFINITIONS
from benchmark.report.stats.directions import Direction, directions
from benchmark.report.stats.generations import generation_summary
from benchmark.report.stats.hypotheses import ALPHA, CLAIM_CONFIDENCE, adjust, claim_pvalues
from benchmark.report.stats.intervals import CONFIDENCE, t_interval
from benchmark.report.stats.per_run import RUN_KEYS, differences, run_summary, series_stats, slope, worsening
from benchmark.report.stats.ranking import rank
from benchmark.report.stats.verdicts import (
    BROKEN,
    CONSECUTIVE,
    FLOOR,
    SEVERITY,
    THRESHOLD,
    WORSE,
    Claims,
    tolerance,
    verdict,
    worse_from,
)

__all__ = [
    "ALPHA",
    "BROKEN",
    "CLAIMS",
    "CLAIM_CONFIDENCE",
    "CONFIDENCE",
    "CONSECUTIVE",
    "DEFINITIONS",
    "FLOOR",
    "LATE",
    "ONE_SEED",
    "RUN_KEYS",
    "SEED_STATS",
    "SEVERITY",
    "TAIL",
    "THRESHOLD",
    "WORSE",
    "Chain",
    "Claims",
    "Direction",
    "adjust",
    "chain",
    "claim_pvalues",
    "differences",
    "directions",
    "generation_summary",
    "is_control",
    "late_worsening",
    "paired_control",
    "rank",
    "run_summary",
    "seed_summary",
    "series_stats",
    "slope",
    "t_interval",
    "tail_size",
    "tests_made",
    "tolerance",
    "verdict",
    "worse_from",
    "worsening",
]
