"""Statistics of a configuration across its seeds, and its verdict from them: the rows of leaderboard.csv."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.stats.directions import Direction
from benchmark.report.stats.intervals import t_interval
from benchmark.report.stats.per_run import RUN_KEYS, differences
from benchmark.report.stats.verdicts import BROKEN, SEVERITY, bound, collapse_start, threshold, verdict

#: Per-run statistics that get a mean, std and confidence interval across seeds.
SEED_STATS = ("first", "last", "relative_change", "slope", "auc", "late_worsening")
#: Note on a configuration whose verdict rests on one run.
ONE_SEED = "1 seed: no confidence interval"


def seed_evidence(values: np.ndarray, direction: Direction) -> float:
    """B from one statistic of the seeds: ``bound`` of its CI across them, of its value with a single seed,
    NaN without a finite value."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan")
    if len(values) == 1:
        return float(bound(values, values, direction)[0])
    low, high = t_interval(values.mean(), values.std(ddof=1), len(values))
    return float(bound(low, high, direction))


def _worst_of_half(verdicts: pd.Series) -> str:
    """The most severe verdict held by at least half of the seeds."""
    ranks = sorted(SEVERITY.index(v) for v in verdicts)
    return SEVERITY[ranks[len(ranks) // 2]]


def _verdict_counts(verdicts: pd.Series) -> str:
    """How many seeds have each verdict, from mild to severe: ``2 stable, 1 failed``."""
    counts = verdicts.value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in SEVERITY if v in counts)


def _speaks(run_status: pd.Series) -> pd.Series:
    """Runs whose values decide their configuration's verdict: those that did not fail or diverge."""
    return ~run_status.isin(BROKEN)


def _config_verdict(runs: pd.DataFrame, rows: pd.DataFrame, tau: float, direction: Direction) -> dict[str, Any]:
    """Verdict, note and collapse start of one configuration from its runs and their rows of d_t per generation.

    The keys are the leaderboard's column names (the verdict is its ``status`` column).
    """
    speaking = runs[_speaks(runs["run_status"])]
    late = speaking["late_worsening"].to_numpy(dtype=float)
    if 2 * (len(runs) - len(speaking)) >= len(runs):
        config_verdict = _worst_of_half(runs["status"])
    else:
        config_verdict = verdict(seed_evidence(late, direction), tau)
    note = ONE_SEED if config_verdict not in BROKEN and np.isfinite(late).sum() == 1 else ""
    per_generation = rows[rows["run_id"].isin(speaking["run_id"])].groupby("generation", sort=True)["d"]
    evidence = per_generation.agg(lambda d: seed_evidence(d.to_numpy(), direction))
    start = collapse_start(evidence.index.to_numpy(), evidence.to_numpy(), tau)
    return {"status": config_verdict, "note": note, "collapse_start": start}


def _with_differences(results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """``results`` with d_t of every generation (column ``d``), computed per run and metric."""
    frame = results.sort_values(["run_id", "metric", "generation"])  # each run's rows contiguous, in order
    d = [
        differences(g["value"].to_numpy(dtype=float), dirs.get(str(m), Direction()))
        for (_, m), g in frame.groupby(["run_id", "metric"], sort=False)
    ]
    return frame.assign(d=np.concatenate(d) if d else np.array([], dtype=float))


def seed_summary(runs: pd.DataFrame, results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """Per configuration and metric: mean, std and 95% CI over seeds of every SEED_STATS column, the threshold
    tau, and the verdict, note and collapse start decided from that evidence (see ``DEFINITIONS``).

    ``runs`` is ``run_summary(results, dirs)``; ``results`` gives d_t per generation for the collapse start.
    The late worsening is aggregated over the runs that did not fail or diverge only, as the verdict uses it.
    """
    runs = runs.assign(late_worsening=runs["late_worsening"].where(_speaks(runs["run_status"])))
    grouped = runs.groupby(RUN_KEYS, sort=True)
    out = grouped.agg(
        seeds=("seed", "size"),
        generations=("generations", "max"),
        score=("score", "mean"),
        status_counts=("status", _verdict_counts),
    )
    for stat in SEED_STATS:
        mean, std, n = grouped[stat].mean(), grouped[stat].std(ddof=1), grouped[stat].count()
        low, high = t_interval(mean, std, n)
        out[f"{stat}_mean"], out[f"{stat}_std"], out[f"{stat}_ci_low"], out[f"{stat}_ci_high"] = mean, std, low, high
    values = _with_differences(results, dirs).groupby(RUN_KEYS, sort=True)
    out["threshold"] = [
        threshold(first, values.get_group(key)["value"].to_numpy(dtype=float))
        for key, first in out["first_mean"].items()
    ]
    verdicts = pd.DataFrame(
        [
            _config_verdict(
                grouped.get_group(key),
                values.get_group(key),
                tau,
                dirs.get(metric, Direction()),
            )
            for key, metric, tau in zip(out.index, out.index.get_level_values("metric"), out["threshold"], strict=True)
        ],
        index=out.index,
        columns=["status", "note", "collapse_start"],
    )
    out = out.join(verdicts)
    out["collapse_start"] = out["collapse_start"].astype("Int64")
    return out.reset_index()
