"""Stability statistics of retraining runs: per run, across seeds, and the ranking.

One module per job, each importable from here:

* ``directions``: which way each metric is better, as its plugin declares (``Direction``, ``directions``);
* ``verdicts``: the threshold tau, the evidence of worsening B, the verdict (stable, degraded, collapsed,
  diverged, failed) and the collapse start, the same rules for one run and for a configuration;
* ``per_run``: the statistics of one run's series of values (``series_stats``) and runs.csv (``run_summary``);
* ``intervals``: the Student-t confidence interval of every across-seed number (``t_interval``);
* ``across_seeds``: a configuration's statistics and verdict over its seeds (``seed_summary``);
* ``ranking``: the leaderboard's order (``rank``);
* ``generations``: mean and interval per generation, for the curves (``generation_summary``);
* ``definitions``: ``DEFINITIONS``, the text every report shows, built from the constants the rules use.
"""

from __future__ import annotations

from benchmark.report.stats.across_seeds import ONE_SEED, SEED_STATS, seed_evidence, seed_summary
from benchmark.report.stats.definitions import DEFINITIONS
from benchmark.report.stats.directions import Direction, directions, metric_name
from benchmark.report.stats.generations import generation_summary
from benchmark.report.stats.intervals import CONFIDENCE, t_interval
from benchmark.report.stats.per_run import (
    RUN_KEYS,
    TAIL,
    differences,
    late_worsening,
    run_summary,
    series_stats,
    slope,
    tail_size,
    worsening,
)
from benchmark.report.stats.ranking import rank
from benchmark.report.stats.verdicts import (
    BROKEN,
    CONSECUTIVE,
    ROUNDING,
    SEVERITY,
    THRESHOLD,
    bound,
    collapse_start,
    threshold,
    verdict,
)

__all__ = [
    "BROKEN",
    "CONFIDENCE",
    "CONSECUTIVE",
    "DEFINITIONS",
    "ONE_SEED",
    "ROUNDING",
    "RUN_KEYS",
    "SEED_STATS",
    "SEVERITY",
    "TAIL",
    "THRESHOLD",
    "Direction",
    "bound",
    "collapse_start",
    "differences",
    "directions",
    "generation_summary",
    "late_worsening",
    "metric_name",
    "rank",
    "run_summary",
    "seed_evidence",
    "seed_summary",
    "series_stats",
    "slope",
    "t_interval",
    "tail_size",
    "threshold",
    "verdict",
    "worsening",
]
