"""Statistics of one run: a metric's series of values over generations 0..T, and runs.csv (``run_summary``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from benchmark.report.stats.chains import Chain, chain
from benchmark.report.stats.directions import Direction
from benchmark.report.stats.hypotheses import ALPHA, claim_pvalues
from benchmark.report.stats.verdicts import BROKEN, WORSE, Claims, tolerance, verdict, worse_from

#: What identifies a configuration and metric: the runs sharing these are its seeds.
RUN_KEYS = ["dataset", "metric", "config", "model", "policy"]


def worsening(values: np.ndarray, direction: Direction) -> np.ndarray:
    """Relative worsening w_t of every generation with respect to generation 0 (NaN where undefined)."""
    values = np.asarray(values, dtype=float)
    scale = abs(values[0]) if len(values) else np.nan
    if not np.isfinite(scale) or scale == 0:
        return np.full(len(values), np.nan)
    bad = direction.badness(values)
    if bad is None:
        return np.abs(values - values[0]) / scale
    return (bad - bad[0]) / scale


def differences(values: np.ndarray, direction: Direction) -> np.ndarray:
    """d_t = b_t - b_0 in the metric's units; signed v_t - v_0 when the direction is unknown.

    A difference rather than a ratio: dividing by a noisy v_0 near zero inflates noise, and E[X/Y] > E[X]/E[Y].
    The sign is kept with an unknown direction so that noise averages out; ``bound`` then counts either way.
    """
    values = np.asarray(values, dtype=float)
    bad = direction.badness(values)
    base = values if bad is None else bad
    return base - base[0] if len(base) else base


def chain_verdict(found: Chain, tol: float, known: bool) -> str:
    """The verdict of one chain from its own noise: each claim a one-sided t-test at ALPHA on the residual
    degrees of freedom of its late line (no adjustment for multiplicity: a run's verdict is a description)."""
    p = claim_pvalues(found.level, found.level_se, found.drift, found.drift_se, found.df, tol, known)
    return verdict(Claims(*(bool(q <= ALPHA) for q in p)))


def slope(generations: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of values over generations (finite points only; NaN with fewer than two)."""
    t, v = np.asarray(generations, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(v)
    t, v = t[keep], v[keep]
    if len(t) < 2:
        return float("nan")
    tc = t - t.mean()
    return float(np.sum(tc * (v - v.mean())) / np.sum(tc * tc))


def series_stats(
    generations: np.ndarray, values: np.ndarray, direction: Direction, run_status: str = "done"
) -> dict[str, Any]:
    """Every per-run statistic of one metric's values over generations 0..T (sorted by generation).

    The run's verdict comes from its own chain (level and drift against generation 0, intervals from its own
    evaluation noise, tolerance from its own v_0 and noise); a run that ended failed or diverged
    (``run_status``) has that as its verdict. The verdict goes into the ``status`` column of runs.csv.
    """
    generations = np.asarray(generations, dtype=int)
    values = np.asarray(values, dtype=float)
    w = worsening(values, direction)
    d = differences(values, direction)
    first, last = values[0], values[-1]
    later = w[1:]
    found = chain(generations, d)
    tol = tolerance(first, found.noise)
    run_verdict = run_status if run_status in BROKEN else chain_verdict(found, tol, direction.known)
    bad = direction.badness(np.array([last]))
    lower = d if direction.known else np.abs(d)
    return {
        "generations": int(generations[-1]),
        "first": first,
        "last": last,
        "relative_change": (last - first) / abs(first) if first != 0 and np.isfinite(first) else np.nan,
        "slope": slope(generations, values),
        "auc": float(np.nanmean(later)) if np.isfinite(later).any() else np.nan,
        "max_worsening": float(np.nanmax(later)) if np.isfinite(later).any() else np.nan,
        "late_worsening": found.level,
        "late_drift": found.drift,
        "noise": found.noise,
        "tolerance": tol,
        "collapse_start": worse_from(generations, lower, tol) if run_verdict in WORSE | BROKEN else None,
        "status": run_verdict,
        "score": float(bad[0]) if bad is not None else np.nan,
    }


def run_summary(results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """One row per run and metric with the statistics of ``series_stats``."""
    columns = [
        *RUN_KEYS,
        "run_id",
        "seed",
        "run_status",
        "generations",
        "first",
        "last",
        "relative_change",
        "slope",
        "auc",
        "max_worsening",
        "late_worsening",
        "late_drift",
        "noise",
        "tolerance",
        "collapse_start",
        "status",
        "score",
    ]
    rows = []
    ordered = results.sort_values(["run_id", "metric", "generation"])
    for (run_id, metric), group in ordered.groupby(["run_id", "metric"], sort=False):
        head = group.iloc[0]
        statistics = series_stats(
            group["generation"].to_numpy(),
            group["value"].to_numpy(dtype=float),
            dirs.get(str(metric), Direction()),
            str(head["status"]),
        )
        rows.append(
            {
                **{k: head[k] for k in RUN_KEYS},
                "run_id": run_id,
                "seed": int(head["seed"]),
                "run_status": str(head["status"]),
                **statistics,
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    frame["collapse_start"] = frame["collapse_start"].astype("Int64")
    return frame.sort_values([*RUN_KEYS, "seed"], ignore_index=True)
