"""Stability statistics of retraining runs: per run, across seeds, and the ranking.

The definitions below (``DEFINITIONS``) are the documentation: leaderboard.md and index.html show
them verbatim, so what a reader sees is what the code does. The threshold rules use ``THRESHOLD``
and ``CONSECUTIVE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.errors import RegistryError
from benchmark.registry import Registry

#: Relative worsening beyond which a generation counts as worse than generation 0.
THRESHOLD = 0.10
#: Consecutive generations beyond THRESHOLD that make a collapse start.
CONSECUTIVE = 2
#: Statuses from mild to severe.
SEVERITY = ("stable", "degraded", "collapsed", "diverged", "failed")
#: Statuses that send a configuration to the bottom of the ranking.
BROKEN = frozenset({"diverged", "failed"})
#: Per-run statistics that get a mean, std and confidence interval across seeds.
SEED_STATS = ("first", "last", "relative_change", "slope", "auc")


#: What every statistic, status and the ranking mean, as shown on every report.
DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("direction", "Each metric's plugin says whether higher is better or, if neither, which value is ideal "
     "(its optimum). Every value v then has a badness b: v when lower is better, -v when higher is better, "
     "|v - optimum| otherwise. A metric whose plugin is not installed, or that declares neither, has an "
     "unknown direction."),
    ("relative worsening", "w_t = (b_t - b_0) / |v_0| at generation t: the change in the worse direction in "
     "units of the generation-0 value (positive is worse). With an unknown direction any departure counts: "
     "w_t = |v_t - v_0| / |v_0|. Empty when v_0 = 0. A generation-0 value near zero (a distance between "
     "almost equal samples) makes small absolute changes large relative ones: read those beside the values."),
    ("relative change", "(v_T - v_0) / |v_0| for the last stored generation T; signed, whatever the direction."),
    ("slope", "least-squares slope of the value over generations 0..T, in value units per generation."),
    ("AUC", "area under the relative-degradation curve: the mean of w_t over t = 1..T. 0 is as good as "
     "generation 0 on average, 0.25 is 25% worse on average, negative is better."),
    ("collapse start", f"the first generation t >= 1 with w_t > {THRESHOLD:.0%} and w_(t+1) > {THRESHOLD:.0%}: "
     f"worse than generation 0 by more than {THRESHOLD:.0%} for {CONSECUTIVE} consecutive generations. "
     "One bad generation, the last one included, is not a start."),
    ("status", "per run and metric, the first rule that applies: failed or diverged when the run ended so (its "
     "values up to the last stored generation are kept); collapsed when a collapse start exists and the last "
     f"generation is still more than {THRESHOLD:.0%} worse; degraded when some generation t >= 1 was more than "
     f"{THRESHOLD:.0%} worse (without collapsing, or it recovered); stable otherwise."),
    ("across seeds", "runs of one configuration that differ only in their seed: mean, standard deviation "
     "(ddof=1), 95% confidence interval of the mean (Student t, n-1 degrees of freedom; none with one seed), "
     "shown as mean ± half-width, and the number of seeds. A configuration's status is the most severe status "
     "held by at least half of its seeds; its collapse start is the earliest generation by which at least "
     "half of its seeds had started to collapse (empty when fewer than half did)."),
    ("rank", "per dataset and metric, over configurations (model x policy with parameters): by score, the "
     "mean over seeds of the badness at the last generation, lower first; ties go to the smaller AUC. So a "
     "configuration ranks high by ending good, not by staying equally bad: generation-0 quality and the "
     "stability columns stand beside it. Failed or diverged configurations rank after all others; a metric "
     "with an unknown direction is not ranked."),
)


@dataclass(frozen=True)
class Direction:
    """Which way a metric is better, as its plugin declares; both None when unknown."""

    higher_is_better: bool | None = None
    optimum: float | None = None

    @property
    def known(self) -> bool:
        return self.higher_is_better is not None or self.optimum is not None

    def describe(self) -> str:
        if self.higher_is_better is True:
            return "higher is better"
        if self.higher_is_better is False:
            return "lower is better"
        if self.optimum is not None:
            return f"closer to {self.optimum:g} is better"
        return "direction unknown"

    def badness(self, values: np.ndarray) -> np.ndarray | None:
        """Values mapped so that larger is worse; None when the direction is unknown."""
        if self.higher_is_better is True:
            return -values
        if self.higher_is_better is False:
            return values
        if self.optimum is not None:
            return np.abs(values - self.optimum)
        return None


def metric_name(label: str) -> str:
    """The metric's registered name: a label may carry parameters, ``w2[max_exact=10]``."""
    return label.split("[", 1)[0]


def directions(labels: Iterable[str], registry: Registry | None) -> dict[str, Direction]:
    """Direction of every metric label, from the registry; unknown when the metric's plugin is absent."""
    out = {}
    for label in labels:
        direction = Direction()
        if registry is not None:
            try:
                metric = registry.get("metric", metric_name(label)).component
            except RegistryError:
                pass
            else:
                hib = getattr(metric, "higher_is_better", None)
                opt = getattr(metric, "optimum", None)
                direction = Direction(hib if isinstance(hib, bool) else None, None if opt is None else float(opt))
        out[label] = direction
    return out


# ---------------------------------------------------------------- one run


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


def slope(generations: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of values over generations (finite points only; NaN with fewer than two)."""
    t, v = np.asarray(generations, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(v)
    t, v = t[keep], v[keep]
    if len(t) < 2:
        return float("nan")
    tc = t - t.mean()
    return float(np.sum(tc * (v - v.mean())) / np.sum(tc * tc))


def collapse_start(generations: np.ndarray, worse: np.ndarray) -> int | None:
    """First generation t >= 1 starting CONSECUTIVE generations with worsening above THRESHOLD."""
    above = np.asarray(worse, dtype=float) > THRESHOLD  # NaN compares False: unknown is not worse
    for i in range(1, len(above) - CONSECUTIVE + 1):
        if above[i : i + CONSECUTIVE].all():
            return int(generations[i])
    return None


def series_stats(
    generations: np.ndarray, values: np.ndarray, direction: Direction, run_status: str = "done"
) -> dict[str, Any]:
    """Every per-run statistic of one metric's values over generations 0..T (sorted by generation)."""
    generations = np.asarray(generations, dtype=int)
    values = np.asarray(values, dtype=float)
    w = worsening(values, direction)
    first, last = values[0], values[-1]
    later = w[1:]
    start = collapse_start(generations, w)
    if run_status in BROKEN:
        status = run_status
    elif start is not None and w[-1] > THRESHOLD:
        status = "collapsed"
    elif np.any(later > THRESHOLD):
        status = "degraded"
    else:
        status = "stable"
    bad = direction.badness(np.array([last]))
    return {
        "generations": int(generations[-1]),
        "first": first,
        "last": last,
        "relative_change": (last - first) / abs(first) if first != 0 and np.isfinite(first) else np.nan,
        "slope": slope(generations, values),
        "auc": float(np.nanmean(later)) if np.isfinite(later).any() else np.nan,
        "max_worsening": float(np.nanmax(later)) if np.isfinite(later).any() else np.nan,
        "collapse_start": start,
        "status": status,
        "score": float(bad[0]) if bad is not None else np.nan,
    }


RUN_KEYS = ["dataset", "metric", "config", "model", "policy"]


def run_summary(results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """One row per run and metric with the statistics of ``series_stats``."""
    columns = [*RUN_KEYS, "run_id", "seed", "run_status", "generations", "first", "last", "relative_change", "slope",
               "auc", "max_worsening", "collapse_start", "status", "score"]
    rows = []
    ordered = results.sort_values(["run_id", "metric", "generation"])
    for (run_id, metric), group in ordered.groupby(["run_id", "metric"], sort=False):
        head = group.iloc[0]
        stats = series_stats(group["generation"].to_numpy(), group["value"].to_numpy(dtype=float),
                             dirs.get(metric, Direction()), str(head["status"]))
        rows.append({**{k: head[k] for k in RUN_KEYS}, "run_id": run_id, "seed": int(head["seed"]),
                     "run_status": str(head["status"]), **stats})
    frame = pd.DataFrame(rows, columns=columns)
    frame["collapse_start"] = frame["collapse_start"].astype("Int64")
    return frame.sort_values([*RUN_KEYS, "seed"], ignore_index=True)


# ---------------------------------------------------------------- across seeds


def t_interval(mean: np.ndarray, std: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95% Student-t confidence interval of a mean from (mean, sample std, n); NaN where n < 2."""
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.where(n >= 2, sps.t.ppf(0.975, np.maximum(n - 1, 1)) * std / np.sqrt(n), np.nan)
    return mean - half, mean + half


def _worst_of_half(statuses: pd.Series) -> str:
    """The most severe status held by at least half of the seeds."""
    ranks = sorted(SEVERITY.index(s) for s in statuses)
    return SEVERITY[ranks[len(ranks) // 2]]


def _half_collapsed(starts: pd.Series) -> float:
    """The earliest generation by which at least half of the seeds had started to collapse (NaN if fewer did)."""
    n = len(starts)
    found = sorted(int(s) for s in starts.dropna())
    k = -(-n // 2)  # ceil(n / 2)
    return float(found[k - 1]) if len(found) >= k else np.nan


def _counts(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in SEVERITY if s in counts)


def seed_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and metric: mean, std and 95% CI over seeds of every SEED_STATS column."""
    grouped = runs.groupby(RUN_KEYS, sort=True)
    out = grouped.agg(
        seeds=("seed", "size"),
        generations=("generations", "max"),
        score=("score", "mean"),
        status=("status", _worst_of_half),
        status_counts=("status", _counts),
        collapse_start=("collapse_start", _half_collapsed),
    )
    for stat in SEED_STATS:
        mean, std, n = grouped[stat].mean(), grouped[stat].std(ddof=1), grouped[stat].count()
        low, high = t_interval(mean, std, n)
        out[f"{stat}_mean"], out[f"{stat}_std"], out[f"{stat}_ci_low"], out[f"{stat}_ci_high"] = mean, std, low, high
    out["collapse_start"] = out["collapse_start"].astype("Int64")
    return out.reset_index()


def rank(board: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """Add ``rank`` (1 = best, per dataset and metric) and order rows by it; see the module's definition."""
    board = board.copy()
    board["direction"] = [dirs.get(m, Direction()).describe() for m in board["metric"]]
    board["broken"] = board["status"].isin(BROKEN)
    board["rank"] = pd.array([pd.NA] * len(board), dtype="Int64")
    known = np.array([dirs.get(m, Direction()).known for m in board["metric"]], dtype=bool)
    keys = ["dataset", "metric", "broken", "score", "auc_mean", "model", "policy"]
    order = board.sort_values(keys, na_position="last")
    positions = order.groupby(["dataset", "metric"], sort=False).cumcount() + 1
    board.loc[order.index, "rank"] = positions.astype("Int64")
    board.loc[~known, "rank"] = pd.NA
    board = board.drop(columns="broken")
    return board.sort_values(["dataset", "metric", "rank", "auc_mean", "model", "policy"], na_position="last",
                             ignore_index=True)


def generation_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, metric and generation: mean over seeds and its 95% CI (for the curves)."""
    grouped = results.groupby([*RUN_KEYS, "generation"], sort=True)["value"]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"])
    return out
