"""Stability statistics of retraining runs: per run, across seeds, and the ranking.

The definitions below (``DEFINITIONS``) are the documentation: leaderboard.md and index.html show
them verbatim, so what a reader sees is what the code does. The threshold rules use ``THRESHOLD``
and ``CONSECUTIVE``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from benchmark.api.registry import Registry
from benchmark.errors import RegistryError

#: Worsening beyond which a configuration counts as collapsed: this share of its generation-0 quality.
THRESHOLD = 0.10
#: Consecutive generations beyond the threshold that make a collapse start.
CONSECUTIVE = 2
#: Share of the generations 1..T averaged into the late worsening L: the last ceil(TAIL * T).
TAIL = 0.25
#: Evidence below this share of the scale (tau / THRESHOLD) is floating-point rounding, not worsening.
ROUNDING = 1e-9
#: Confidence level of every interval across seeds.
CONFIDENCE = 0.95
#: Statuses from mild to severe.
SEVERITY = ("stable", "degraded", "collapsed", "diverged", "failed")
#: Statuses that send a configuration to the bottom of the ranking.
BROKEN = frozenset({"diverged", "failed"})
#: Per-run statistics that get a mean, std and confidence interval across seeds.
SEED_STATS = ("first", "last", "relative_change", "slope", "auc", "late_worsening")
#: Note on a configuration whose status rests on one run.
ONE_SEED = "1 seed: no confidence interval"


#: What every statistic, status and the ranking mean, as shown on every report.
DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "direction",
        "Each metric's plugin says whether higher is better or, if neither, which value is ideal "
        "(its optimum). Every value v then has a badness b: v when lower is better, -v when higher is better, "
        "|v - optimum| otherwise. A metric whose plugin is not installed, or that declares neither, has an "
        "unknown direction.",
    ),
    (
        "worsening",
        "d_t = b_t - b_0 at generation t of a run, in the metric's own units (positive is worse): a "
        "difference, not a ratio, so a noisy generation-0 value near zero does not inflate it. With an unknown "
        "direction d_t = v_t - v_0 (signed), and a systematic change either way counts (see status): seeds that "
        "drift apart in opposite directions cancel out.",
    ),
    (
        "late worsening",
        f"L = the mean of d_t over the last ceil(T/{round(1 / TAIL)}) generations of a run "
        f"(T = its last stored generation; generations {21 - math.ceil(TAIL * 20)}..20 when T = 20), which averages "
        "out the "
        "generation-to-generation noise of the evaluation. Across seeds: mean ± half-width of its "
        f"{CONFIDENCE:.0%} confidence interval (Student t, n-1 degrees of freedom), over the seeds that did not "
        "fail or diverge; paired by construction, as each run is measured against its own generation 0.",
    ),
    (
        "threshold",
        f"tau = {THRESHOLD:.0%} x |generation 0|, the mean over seeds of v_0, in the metric's units: "
        f"{THRESHOLD:.0%} worse than the configuration's generation-0 quality, without dividing each run by its own "
        f"noisy v_0. When that mean is 0 or not finite: {THRESHOLD:.0%} of the spread instead, the standard "
        "deviation (ddof=1) of all the configuration's values (every seed and generation); none when that is "
        "undefined too (then nothing is collapsed).",
    ),
    (
        "status",
        "per configuration, the first rule that applies. failed or diverged: at least half of its seeds "
        "ended so (failed when at least half failed, diverged otherwise); their values up to the last stored "
        "generation are kept. Otherwise, from the seeds that did not fail or diverge, with B = the lower bound of "
        f"the {CONFIDENCE:.0%} confidence interval of L: collapsed when B > tau (worse than generation 0 by more "
        f"than {THRESHOLD:.0%}, beyond the seeds' noise); degraded when B > 0 (significantly worse than generation 0, "
        f"but not shown to exceed {THRESHOLD:.0%}); stable otherwise (not significantly worse). With an unknown "
        "direction B is the interval's distance from zero (its bound nearer to zero, when the interval excludes "
        "zero; otherwise B <= 0). With a single such seed there is no interval: its own L (|L| with an unknown "
        f'direction) stands for B, and the status says "{ONE_SEED}". Degraded needs B above {ROUNDING:g} x '
        "the scale of tau (|generation 0| or the spread): less is floating-point rounding. In brackets: how many "
        "seeds have each run status.",
    ),
    (
        "run status",
        "per run and metric (runs.csv and the counts in brackets): failed or diverged when the run "
        f"ended so; otherwise the rules of a single seed with the run's own L and tau = {THRESHOLD:.0%} x |v_0| "
        "(x the spread of its values when v_0 is 0 or not finite). A single run has no interval, so its degraded "
        "can be noise: the configuration's status is the one that accounts for it.",
    ),
    (
        "collapse start",
        f"per configuration, the first generation t >= 1 at which the lower bound of the "
        f"{CONFIDENCE:.0%} confidence interval of d_t across seeds exceeds tau at {CONSECUTIVE} consecutive "
        "generations (t and t+1), from the seeds that did not fail or diverge; with one such seed (and per run) "
        "its own d_t (|d_t| with an unknown direction). One bad generation, the last one included, is not a "
        "start; a configuration can recover after its start. Empty when there is none.",
    ),
    (
        "relative worsening",
        "w_t = (b_t - b_0) / |v_0| at generation t: the change in the worse direction in "
        "units of the generation-0 value (positive is worse). With an unknown direction any departure counts: "
        "w_t = |v_t - v_0| / |v_0|. Empty when v_0 = 0. A generation-0 value near zero (a distance between "
        "almost equal samples) makes small absolute changes large relative ones: read those beside the values. "
        "Used by the AUC and the maximum worsening of runs.csv only, not by status or collapse start.",
    ),
    ("relative change", "(v_T - v_0) / |v_0| for the last stored generation T; signed, whatever the direction."),
    ("slope", "least-squares slope of the value over generations 0..T, in value units per generation."),
    (
        "AUC",
        "area under the relative-degradation curve: the mean of w_t over t = 1..T. 0 is as good as "
        "generation 0 on average, 0.25 is 25% worse on average, negative is better.",
    ),
    (
        "across seeds",
        "runs of one configuration that differ only in their seed: mean, standard deviation "
        f"(ddof=1), {CONFIDENCE:.0%} confidence interval of the mean (Student t, n-1 degrees of freedom; none with "
        "one seed), shown as mean ± half-width, and the number of seeds.",
    ),
    (
        "rank",
        "per dataset and metric, over configurations (model x policy with parameters): by score, the "
        "mean over seeds of the badness at the last generation, lower first; ties go to the smaller AUC. So a "
        "configuration ranks high by ending good, not by staying equally bad: generation-0 quality and the "
        "stability columns stand beside it. Failed or diverged configurations rank after all others; a metric "
        "with an unknown direction is not ranked.",
    ),
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


def differences(values: np.ndarray, direction: Direction) -> np.ndarray:
    """d_t = b_t - b_0 in the metric's units; signed v_t - v_0 when the direction is unknown.

    A difference rather than a ratio: dividing by a noisy v_0 near zero inflates noise, and E[X/Y] > E[X]/E[Y].
    The sign is kept with an unknown direction so that noise averages out; ``bound`` then counts either way.
    """
    values = np.asarray(values, dtype=float)
    bad = direction.badness(values)
    base = values if bad is None else bad
    return base - base[0] if len(base) else base


def tail_size(last_generation: int) -> int:
    """How many of the generations 1..T the late worsening averages: ceil(TAIL * T)."""
    return math.ceil(TAIL * last_generation) if last_generation > 0 else 0


def late_worsening(worse: np.ndarray) -> float:
    """L: the mean of d_t over the last tail_size(T) generations (NaN without a finite one)."""
    worse = np.asarray(worse, dtype=float)
    tail = worse[len(worse) - tail_size(len(worse) - 1) :] if len(worse) > 1 else worse[:0]
    tail = tail[np.isfinite(tail)]
    return float(tail.mean()) if len(tail) else float("nan")


def threshold(first: float, values: np.ndarray) -> float:
    """tau: THRESHOLD x |generation-0 value|, or x the spread of ``values`` when that is 0 or not finite."""
    if np.isfinite(first) and first != 0:
        return THRESHOLD * abs(first)
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    spread = float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")
    return THRESHOLD * spread if np.isfinite(spread) else float("nan")


def bound(low: np.ndarray, high: np.ndarray, direction: Direction) -> np.ndarray:
    """B, the evidence of worsening from an interval [low, high] of d: its lower bound when worse is up,
    its distance from zero (negative when it covers zero) when any change counts. Pass low = high = L
    for a single run."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return low if direction.known else np.maximum(low, -high)


def verdict(evidence: float, tau: float) -> str:
    """Status from the evidence B: collapsed beyond tau, degraded beyond zero (rounding aside), else stable."""
    scale = tau / THRESHOLD if np.isfinite(tau) else 0.0
    if evidence > tau:  # NaN compares False: no threshold, no collapse
        return "collapsed"
    if evidence > ROUNDING * scale:
        return "degraded"
    return "stable"


def collapse_start(generations: np.ndarray, evidence: np.ndarray, tau: float) -> int | None:
    """First generation t >= 1 starting CONSECUTIVE generations with evidence of worsening above tau."""
    above = np.asarray(evidence, dtype=float) > tau  # NaN compares False: unknown is not worse
    for i in range(1, len(above) - CONSECUTIVE + 1):
        if above[i : i + CONSECUTIVE].all():
            return int(generations[i])
    return None


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

    The run's status and collapse start follow the single-seed rules: its own L and d_t against its own tau.
    """
    generations = np.asarray(generations, dtype=int)
    values = np.asarray(values, dtype=float)
    w = worsening(values, direction)
    d = differences(values, direction)
    first, last = values[0], values[-1]
    later = w[1:]
    tau = threshold(first, values)
    late = late_worsening(d)
    status = run_status if run_status in BROKEN else verdict(float(bound(late, late, direction)), tau)
    bad = direction.badness(np.array([last]))
    return {
        "generations": int(generations[-1]),
        "first": first,
        "last": last,
        "relative_change": (last - first) / abs(first) if first != 0 and np.isfinite(first) else np.nan,
        "slope": slope(generations, values),
        "auc": float(np.nanmean(later)) if np.isfinite(later).any() else np.nan,
        "max_worsening": float(np.nanmax(later)) if np.isfinite(later).any() else np.nan,
        "late_worsening": late,
        "threshold": tau,
        "collapse_start": collapse_start(generations, bound(d, d, direction), tau),
        "status": status,
        "score": float(bad[0]) if bad is not None else np.nan,
    }


RUN_KEYS = ["dataset", "metric", "config", "model", "policy"]


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
        "threshold",
        "collapse_start",
        "status",
        "score",
    ]
    rows = []
    ordered = results.sort_values(["run_id", "metric", "generation"])
    for (run_id, metric), group in ordered.groupby(["run_id", "metric"], sort=False):
        head = group.iloc[0]
        stats = series_stats(
            group["generation"].to_numpy(),
            group["value"].to_numpy(dtype=float),
            dirs.get(metric, Direction()),
            str(head["status"]),
        )
        rows.append(
            {
                **{k: head[k] for k in RUN_KEYS},
                "run_id": run_id,
                "seed": int(head["seed"]),
                "run_status": str(head["status"]),
                **stats,
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    frame["collapse_start"] = frame["collapse_start"].astype("Int64")
    return frame.sort_values([*RUN_KEYS, "seed"], ignore_index=True)


# ---------------------------------------------------------------- across seeds


def t_interval(mean: np.ndarray, std: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CONFIDENCE (95%) Student-t confidence interval of a mean from (mean, sample std, n); NaN where n < 2."""
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    quantile = sps.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.where(n >= 2, quantile * std / np.sqrt(n), np.nan)
    return mean - half, mean + half


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


def _worst_of_half(statuses: pd.Series) -> str:
    """The most severe status held by at least half of the seeds."""
    ranks = sorted(SEVERITY.index(s) for s in statuses)
    return SEVERITY[ranks[len(ranks) // 2]]


def _counts(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in SEVERITY if s in counts)


def _speaks(run_status: pd.Series) -> pd.Series:
    """Runs whose values decide their configuration's status: those that did not fail or diverge."""
    return ~run_status.isin(BROKEN)


def _config_verdict(runs: pd.DataFrame, rows: pd.DataFrame, tau: float, direction: Direction) -> dict[str, Any]:
    """Status, note and collapse start of one configuration from its runs and their rows of d_t per generation."""
    speaking = runs[_speaks(runs["run_status"])]
    late = speaking["late_worsening"].to_numpy(dtype=float)
    if 2 * (len(runs) - len(speaking)) >= len(runs):
        status = _worst_of_half(runs["status"])
    else:
        status = verdict(seed_evidence(late, direction), tau)
    note = ONE_SEED if status not in BROKEN and np.isfinite(late).sum() == 1 else ""
    per_generation = rows[rows["run_id"].isin(speaking["run_id"])].groupby("generation", sort=True)["d"]
    evidence = per_generation.agg(lambda d: seed_evidence(d.to_numpy(), direction))
    start = collapse_start(evidence.index.to_numpy(), evidence.to_numpy(), tau)
    return {"status": status, "note": note, "collapse_start": start}


def _with_differences(results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """``results`` with d_t of every generation (column ``d``), computed per run and metric."""
    frame = results.sort_values(["run_id", "metric", "generation"])  # each run's rows contiguous, in order
    d = [
        differences(g["value"].to_numpy(dtype=float), dirs.get(m, Direction()))
        for (_, m), g in frame.groupby(["run_id", "metric"], sort=False)
    ]
    return frame.assign(d=np.concatenate(d) if d else np.array([], dtype=float))


def seed_summary(runs: pd.DataFrame, results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """Per configuration and metric: mean, std and 95% CI over seeds of every SEED_STATS column, the threshold
    tau, and the status, note and collapse start decided from that evidence (see ``DEFINITIONS``).

    ``runs`` is ``run_summary(results, dirs)``; ``results`` gives d_t per generation for the collapse start.
    The late worsening is aggregated over the runs that did not fail or diverge only, as the status uses it.
    """
    runs = runs.assign(late_worsening=runs["late_worsening"].where(_speaks(runs["run_status"])))
    grouped = runs.groupby(RUN_KEYS, sort=True)
    out = grouped.agg(
        seeds=("seed", "size"),
        generations=("generations", "max"),
        score=("score", "mean"),
        status_counts=("status", _counts),
    )
    for stat in SEED_STATS:
        mean, std, n = grouped[stat].mean(), grouped[stat].std(ddof=1), grouped[stat].count()
        low, high = t_interval(mean, std, n)
        out[f"{stat}_mean"], out[f"{stat}_std"], out[f"{stat}_ci_low"], out[f"{stat}_ci_high"] = mean, std, low, high
    values = _with_differences(results, dirs).groupby(RUN_KEYS, sort=True)
    out["threshold"] = [
        threshold(out.at[key, "first_mean"], values.get_group(key)["value"].to_numpy(dtype=float)) for key in out.index
    ]
    verdicts = pd.DataFrame(
        [
            _config_verdict(
                grouped.get_group(key),
                values.get_group(key),
                out.at[key, "threshold"],
                dirs.get(key[RUN_KEYS.index("metric")], Direction()),
            )
            for key in out.index
        ],
        index=out.index,
        columns=["status", "note", "collapse_start"],
    )
    out = out.join(verdicts)
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
    return board.sort_values(
        ["dataset", "metric", "rank", "auc_mean", "model", "policy"], na_position="last", ignore_index=True
    )


def generation_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, metric and generation: mean over seeds and its 95% CI (for the curves)."""
    grouped = results.groupby([*RUN_KEYS, "generation"], sort=True)["value"]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"])
    return out
