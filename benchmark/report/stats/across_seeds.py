"""Statistics of a configuration across its seeds, and its verdict from them: the rows of leaderboard.csv."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd

from benchmark.report.stats.chains import Chain, chain
from benchmark.report.stats.control import paired_control
from benchmark.report.stats.directions import Direction
from benchmark.report.stats.hypotheses import ALPHA, adjust, claim_pvalues, interval, seeds_needed
from benchmark.report.stats.intervals import t_interval
from benchmark.report.stats.per_run import RUN_KEYS, differences
from benchmark.report.stats.verdicts import BROKEN, SEVERITY, WORSE, Claims, tolerance, verdict, worse_from

#: Per-run statistics that get a mean, std and confidence interval across seeds.
SEED_STATS = ("first", "last", "relative_change", "slope", "auc", "late_worsening")
#: Note on a configuration whose verdict rests on one run.
ONE_SEED = "1 seed: intervals from its evaluation noise only"
#: The p-value columns of leaderboard.csv, Benjamini-Hochberg adjusted across the report, one per claim.
CLAIMS = ("q_worse", "q_within", "q_moving", "q_settled")


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


def _with_chains(results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """``results`` with d_t against generation 0 (``d``), the badness b_t (signed value with an unknown
    direction), and e_t against the paired real-only control where the grid has one (``e``, else NaN)."""
    frame = results.sort_values(["run_id", "metric", "generation"])  # each run's rows contiguous, in order
    d, bad = [], []
    for (_, m), g in frame.groupby(["run_id", "metric"], sort=False):
        direction = dirs.get(str(m), Direction())
        values = g["value"].to_numpy(dtype=float)
        d.append(differences(values, direction))
        b = direction.badness(values)
        bad.append(values if b is None else b)
    empty = np.array([], dtype=float)
    frame = frame.assign(d=np.concatenate(d) if d else empty, badness=np.concatenate(bad) if bad else empty)
    control, control_config = paired_control(frame, "badness")
    return frame.assign(e=frame["badness"] - control, control_config=control_config)


def _reference(rows: pd.DataFrame, seeds: int) -> str:
    """What the configuration is compared with: the control when every seed has it at every generation."""
    paired = rows["e"].notna()
    return "control" if paired.all() and rows.loc[paired, "seed"].nunique() == seeds else "generation 0"


def _chains(rows: pd.DataFrame, reference: str) -> list[tuple[np.ndarray, np.ndarray, Chain]]:
    """Per seed: generations, e_t and its chain against the reference."""
    column, anchored = ("e", False) if reference == "control" else ("d", True)
    out = []
    for _, g in rows.sort_values(["seed", "generation"]).groupby("seed", sort=True):
        t, e = g["generation"].to_numpy(), g[column].to_numpy(dtype=float)
        out.append((t, e, chain(t, e, anchored)))
    return out


def _across(values: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, standard deviation, standard error and degrees of freedom of finite per-seed values."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan"), float("nan"), 0.0
    sd = float(values.std(ddof=1))
    return float(values.mean()), sd, sd / math.sqrt(len(values)), float(len(values) - 1)


def _evidence(chains: list[tuple[np.ndarray, np.ndarray, Chain]]) -> dict[str, float]:
    """Level and drift with standard errors: across seeds, or from the one chain's own noise."""
    found = [c for _, _, c in chains]
    if len(found) == 1:
        c = found[0]
        return {"level": c.level, "level_sd": np.nan, "level_se": c.level_se, "drift": c.drift,
                "drift_se": c.drift_se, "df": float(c.df)}  # fmt: skip
    level, level_sd, level_se, df = _across(np.array([c.level for c in found]))
    drift, _, drift_se, drift_df = _across(np.array([c.drift for c in found]))
    if drift_df != df:
        drift_se = np.nan
    return {"level": level, "level_sd": level_sd, "level_se": level_se, "drift": drift, "drift_se": drift_se, "df": df}


def _onset(chains: list[tuple[np.ndarray, np.ndarray, Chain]], tol: float, known: bool) -> int | None:
    """The generation the configuration is worse from: the lower end of the interval of e_t across seeds
    (|e_t| with an unknown direction; with one seed its own e_t) beyond the tolerance at CONSECUTIVE generations."""
    series = [pd.Series(e if known else np.abs(e), index=t) for t, e, _ in chains]
    frame = pd.concat(series, axis=1)
    if frame.shape[1] == 1:
        return worse_from(frame.index.to_numpy(), frame.iloc[:, 0].to_numpy(), tol)
    low, _ = interval(
        frame.mean(axis=1), frame.std(axis=1, ddof=1) / np.sqrt(frame.count(axis=1)), frame.count(axis=1) - 1
    )
    return worse_from(frame.index.to_numpy(), low, tol)


def _settle_note(found: Mapping[str, Any], claims: Claims, seeds: int) -> str:
    """What would settle an undecided level or trend: more seeds (about how many, for the level), or more
    generations; and whether the interval alone decides it, the adjustment for the report's tests not."""
    ev, tol, raw = found["evidence"], found["tolerance"], found["p"]
    parts = []
    if not (claims.worse or claims.within):
        low, high = interval(ev["level"], ev["level_se"], ev["df"])
        span = f"level {float(low):.3g}..{float(high):.3g}"
        if min(raw[0], raw[1]) <= ALPHA:
            parts.append(f"more seeds: {span} clears the tolerance {tol:.3g} alone, not after the adjustment")
        else:
            need = seeds_needed(ev["level"], ev["level_sd"], tol) if seeds > 1 else None
            more = f"about {need} seeds" if need is not None and need > seeds else "more seeds"
            parts.append(f"{more}: {span} spans the tolerance {tol:.3g}")
    if not (claims.moving or claims.settled):
        low, high = interval(ev["drift"], ev["drift_se"], ev["df"])
        span = f"late drift {float(low):.3g}..{float(high):.3g}"
        alone = " alone, not after the adjustment" if min(raw[2], raw[3]) <= ALPHA else ""
        verb = "clears" if alone else "spans"
        parts.append(f"more generations or seeds: {span} {verb} the tolerance{alone}")
    return "; ".join(parts)


def _configuration(runs: pd.DataFrame, rows: pd.DataFrame, floor: float, direction: Direction) -> dict[str, Any]:
    """A configuration's evidence (level, drift, tolerance, raw p-values of its claims) before the adjustment."""
    speaking = runs[_speaks(runs["run_status"])]
    out: dict[str, Any] = {"noise_floor": floor, "broken": None}
    if 2 * (len(runs) - len(speaking)) >= len(runs):
        out["broken"] = _worst_of_half(runs["status"])
        return out
    rows = rows[rows["run_id"].isin(speaking["run_id"])]
    reference = _reference(rows, len(speaking))
    chains = _chains(rows, reference)
    ev = _evidence(chains)
    tol = tolerance(float(speaking["first"].mean()), floor)
    p = claim_pvalues(ev["level"], ev["level_se"], ev["drift"], ev["drift_se"], ev["df"], tol, direction.known)
    low, high = interval(ev["level"], ev["level_se"], ev["df"])
    drift_low, drift_high = interval(ev["drift"], ev["drift_se"], ev["df"])
    out.update(
        reference=reference,
        tolerance=tol,
        level_mean=ev["level"],
        level_ci_low=float(low),
        level_ci_high=float(high),
        drift_mean=ev["drift"],
        drift_ci_low=float(drift_low),
        drift_ci_high=float(drift_high),
        p=p,
        evidence=ev,
        chains=chains,
        seeds_speaking=len(speaking),
        worse_runs=int(speaking["status"].isin(WORSE).sum()),
    )
    return out


def _decide(found: dict[str, Any], q: np.ndarray, direction: Direction) -> dict[str, Any]:
    """Verdict, note and the generation it is worse from, from the adjusted p-values of its claims."""
    if found["broken"] is not None:
        return {"status": found["broken"], "note": "", "collapse_start": None}
    claims = Claims(*(bool(v <= ALPHA) for v in q))
    status = verdict(claims)
    n = found["seeds_speaking"]
    notes = [ONE_SEED] if n == 1 else []
    if status == "stable" and 2 * found["worse_runs"] >= n:  # the seeds' own verdicts contradict "stable"
        status = "inconclusive"
        notes.append(f"{found['worse_runs']} of {n} runs worse alone")
    if status in ("inconclusive", "worse", "worsening"):
        note = _settle_note(found, claims, n)
        notes += [note] if note else []
    start = _onset(found["chains"], found["tolerance"], direction.known) if status in WORSE else None
    return {"status": status, "note": "; ".join(notes), "collapse_start": start}


def _noise_floors(runs: pd.DataFrame, control_config: pd.Series) -> pd.Series:
    """Per configuration and metric: the pooled evaluation noise of its control's runs where the grid has a
    control, else of its own (root mean square of the runs' noise, over those that did not fail or diverge)."""
    speaking = runs[_speaks(runs["run_status"])]
    own = speaking.groupby(["dataset", "metric", "config"])["noise"].agg(
        lambda s: float(np.sqrt(np.nanmean(s**2))) if s.notna().any() else np.nan
    )
    floors: dict[tuple[str, str, str], float] = {}
    for key, value in own.items():
        dataset, metric, config = (str(k) for k in cast(tuple[Any, ...], key))
        partner = control_config.get((dataset, metric, config))
        source = (dataset, metric, partner) if isinstance(partner, str) else (dataset, metric, config)
        floors[(dataset, metric, config)] = float(own.get(source, value))
    return pd.Series(floors, dtype=float)


def seed_summary(runs: pd.DataFrame, results: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """Per configuration and metric: mean, std and 95% CI over seeds of every SEED_STATS column, the level and
    late drift against the reference with their 90% intervals, the tolerance, the adjusted p-values of the
    claims, and the verdict, note and the generation it is worse from (see ``DEFINITIONS``).

    ``runs`` is ``run_summary(results, dirs)``. The claims of all configurations are adjusted together
    (Benjamini-Hochberg), so a verdict depends on how many tests the report makes.
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
    rows = _with_chains(results, dirs)
    controls = rows.dropna(subset=["control_config"]).groupby(["dataset", "metric", "config"])["control_config"].first()
    floors = _noise_floors(runs, controls)
    by_config = rows.groupby(RUN_KEYS, sort=True)
    found = [
        _configuration(
            grouped.get_group(key),
            by_config.get_group(key),
            float(floors.get((key[0], key[1], key[2]), np.nan)),
            dirs.get(key[1], Direction()),
        )
        for key in out.index
    ]
    raw = np.array([f.get("p", (np.nan,) * len(CLAIMS)) for f in found], dtype=float).reshape(len(found), len(CLAIMS))
    q = adjust(raw.ravel()).reshape(raw.shape)
    decided = [_decide(f, qi, dirs.get(key[1], Direction())) for f, qi, key in zip(found, q, out.index, strict=True)]
    for column in ("reference", "noise_floor", "tolerance", "level_mean", "level_ci_low", "level_ci_high",
                   "drift_mean", "drift_ci_low", "drift_ci_high"):  # fmt: skip
        out[column] = [f.get(column, np.nan if column != "reference" else "") for f in found]
    for i, column in enumerate(CLAIMS):
        out[column] = q[:, i] if len(found) else []
    for column in ("status", "note", "collapse_start"):
        out[column] = [d[column] for d in decided]
    out["collapse_start"] = out["collapse_start"].astype("Int64")
    return out.reset_index()


def tests_made(board: pd.DataFrame) -> int:
    """How many tests the report's verdicts rest on (the claims adjusted together)."""
    return int(board[list(CLAIMS)].notna().to_numpy().sum()) if len(board) else 0
