"""The regression gate: compare a grid's results (the candidate) with a baseline, configuration by configuration.

Each side is a store or a report folder (its ``results.csv``). Configurations are matched by their spec
(dataset, model and policy labels with their parameters, the metric label, and the run settings of results.csv),
never by run id or ``config``, which change with component versions. For every matched (dataset,
configuration, metric) the statistics of ``benchmark.report.stats`` are compared: the verdict, the level (late
worsening, per seed from ``run_summary``) and the generation-0 quality, each change with its 90% interval
across seeds (paired by seed when both sides ran the same seeds, else Welch). Every test of a comparison is
adjusted together (Benjamini-Hochberg), so when nothing changed the gate fails by chance in at most ALPHA of
comparisons (``tests/test_compare.py`` measures it by simulation). What fails is ``FAIL_RULES``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.api.registry import Registry
from benchmark.errors import RetrainbenchError
from benchmark.report import stats
from benchmark.report.compare_rules import FAIL_RULES
from benchmark.report.stats.hypotheses import interval, p_beyond
from benchmark.run.spec import name_in_label

#: Verdicts that claim a configuration got worse (a change to one of them can fail the gate).
CLAIMED_WORSE = frozenset({"worsening"}) | stats.WORSE
#: The spec of a configuration and metric: what is matched across the two sides (plus the settings).
SPEC = ["dataset", "model", "policy", "metric"]


class CompareError(RetrainbenchError):
    """A side of the comparison cannot be read, or the two sides have nothing in common."""


@dataclass(frozen=True)
class Tolerances:
    """Worsening that matters, per metric label: absolute (metric units) or relative to |generation 0|."""

    absolute: Mapping[str, float] = field(default_factory=dict)
    relative: Mapping[str, float] = field(default_factory=dict)

    def of(self, metric: str, first: float, default: float) -> tuple[float, str]:
        """The tolerance of a metric (by label, then by name, then ``*``) and where it came from."""
        for key in (metric, name_in_label(metric), "*"):
            if key in self.absolute:
                return self.absolute[key], "--tolerance"
            if key in self.relative:
                return self.relative[key] * abs(first), "--tolerance"
        return default, "baseline"


def parse_tolerances(texts: Sequence[str]) -> Tolerances:
    """``METRIC=VALUE`` (metric units) or ``METRIC=P%`` (share of |generation 0|); without ``METRIC=``, every metric."""
    absolute: dict[str, float] = {}
    relative: dict[str, float] = {}
    for text in texts:
        metric, sep, value = text.rpartition("=")
        metric = metric if sep else "*"
        number = value.strip().removesuffix("%")
        try:
            parsed = float(number)
        except ValueError:
            parsed = math.nan
        if not metric or not math.isfinite(parsed) or parsed < 0:
            raise CompareError(f"--tolerance {text!r}: must be METRIC=VALUE or METRIC=P% with a number >= 0")
        if value.strip().endswith("%"):
            relative[metric] = parsed / 100
        else:
            absolute[metric] = parsed
    return Tolerances(absolute, relative)


def parse_fail_on(text: str) -> frozenset[str]:
    """The rules of ``--fail-on``: a comma-separated subset of FAIL_RULES, ``all`` or ``none``."""
    if text.strip() == "all":
        return frozenset(FAIL_RULES)
    if text.strip() == "none":
        return frozenset()
    rules = {r.strip() for r in text.split(",") if r.strip()}
    unknown = sorted(rules - set(FAIL_RULES))
    if unknown or not rules:
        raise CompareError(f"--fail-on {text!r}: rules are {', '.join(FAIL_RULES)}, all or none")
    return frozenset(rules)


def load_results(path: Path) -> pd.DataFrame:
    """A side's results: ``results.csv`` (the file, or in a report folder), else the store at ``path``."""
    from benchmark.report.leaderboard import ID_COLUMNS, results_frame
    from benchmark.run.store import Store

    if not path.exists():
        raise CompareError(f"{path}: no such store, report folder or results.csv")
    csv = path if path.is_file() else path / "results.csv"
    if csv.is_file():
        try:
            results = pd.read_csv(csv, low_memory=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CompareError(f"{csv}: not a results.csv: {reason}") from None
        missing = [c for c in ID_COLUMNS if c not in results.columns]
        if missing:
            raise CompareError(f"{csv}: not a results.csv of this schema: no column {', '.join(missing)}")
        results["value"] = pd.to_numeric(results["value"], errors="coerce").astype(float)
    else:
        results = results_frame(Store(path))
    if results.empty:
        raise CompareError(f"{path}: no results")
    return results


def _canonical(value: Any) -> str:
    """A setting's value as text that reads the same from a CSV and from a store (1 == 1.0, True == 'True')."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, bool | np.bool_) or str(value) in ("True", "False"):
        return str(value).lower()
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _settings_label(results: pd.DataFrame, ignore_settings: bool) -> pd.Series:
    """Per row: the run settings of results.csv as one text (empty with ``ignore_settings``)."""
    from benchmark.run.settings import RESULT_COLUMNS

    columns = [] if ignore_settings else [c for c in RESULT_COLUMNS if c in results.columns]
    if not columns:
        return pd.Series("", index=results.index)
    texts = {c: results[c].map(_canonical) for c in columns}
    labels = [", ".join(f"{c}={texts[c][i]}" for c in columns if texts[c][i]) for i in results.index]
    return pd.Series(labels, index=results.index)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its per-run statistics and leaderboard, keyed by spec."""

    path: Path
    runs: pd.DataFrame
    board: pd.DataFrame
    dirs: Mapping[str, stats.Direction]


def summarize(path: Path, results: pd.DataFrame, registry: Registry | None, ignore_settings: bool) -> Side:
    """The statistics of one side (``leaderboard.summaries``), each row labelled with its spec and settings."""
    from benchmark.report.leaderboard import summaries

    results = results.assign(settings=_settings_label(results, ignore_settings))
    specs = results.drop_duplicates(["config", "metric"])[[*SPEC, "config", "settings"]]
    clash = specs.duplicated([*SPEC, "settings"], keep=False)
    if clash.any():
        row = specs[clash].iloc[0]
        shared = specs[(specs[[*SPEC, "settings"]] == row[[*SPEC, "settings"]]).all(axis=1)]
        raise CompareError(
            f"{path}: configurations {', '.join(shared['config'])} share the spec "
            f"{spec_label(row.to_dict(), not ignore_settings)}: compare one grid at a time"
        )
    settings = specs.set_index(["config", "metric"])["settings"]

    def labelled(frame: pd.DataFrame) -> pd.DataFrame:
        pairs = zip(frame["config"], frame["metric"], strict=True)
        return frame.assign(settings=[settings[pair] for pair in pairs])

    dirs, runs, board = summaries(results, registry)
    return Side(path, labelled(runs), labelled(board), dirs)


@dataclass(frozen=True)
class Change:
    """The change of one per-seed statistic from baseline to candidate: positive is worse."""

    baseline: float
    candidate: float
    change: float
    low: float
    high: float
    se: float
    df: float
    paired: bool


def change(base: pd.Series, cand: pd.Series) -> Change:
    """Mean difference candidate - baseline of per-seed values (indexed by seed) with its 90% interval:
    paired by seed when both sides have the same two or more seeds, else Welch's t (NaN below two a side)."""
    base, cand = base.dropna(), cand.dropna()
    b, c = float(base.mean()) if len(base) else math.nan, float(cand.mean()) if len(cand) else math.nan
    paired = len(base) >= 2 and set(base.index) == set(cand.index)
    if paired:
        d = cand - base.reindex(cand.index)
        se, df = float(d.std(ddof=1)) / math.sqrt(len(d)), float(len(d) - 1)
    elif len(base) >= 2 and len(cand) >= 2:
        vb, vc = float(base.var(ddof=1)) / len(base), float(cand.var(ddof=1)) / len(cand)
        se = math.sqrt(vb + vc)
        df = (vb + vc) ** 2 / (vb**2 / (len(base) - 1) + vc**2 / (len(cand) - 1)) if se > 0 else math.inf
    else:
        se, df = math.nan, math.nan
    low, high = interval(c - b, se, df)
    return Change(b, c, c - b, float(low), float(high), se, df, paired)


def _per_seed(runs: pd.DataFrame, column: str, direction: stats.Direction) -> pd.Series:
    """A statistic of the runs that did not fail or diverge, per seed, turned so that larger is worse:
    the level (|level| with an unknown direction), or the badness of generation 0 (NaN when unknown)."""
    speaking = runs[~runs["run_status"].isin(stats.BROKEN)]
    values = speaking[column].to_numpy(dtype=float)
    if column == "first":
        bad = direction.badness(values)
        values = bad if bad is not None else np.full(len(values), np.nan)
    elif not direction.known:
        values = np.abs(values)
    return pd.Series(values, index=speaking["seed"].to_numpy())


def _broken_share(runs: pd.DataFrame) -> float:
    return float(runs["run_status"].isin(stats.BROKEN).mean()) if len(runs) else 0.0


@dataclass
class Comparison:
    """The outcome: one row per matched (dataset, configuration, metric), and the specs found on one side."""

    baseline: Path
    candidate: Path
    fail_on: frozenset[str]
    rows: pd.DataFrame
    only_baseline: list[str]
    only_candidate: list[str]
    tests: int

    @property
    def failed(self) -> bool:
        return bool(self.rows["fails"].map(bool).any())


def spec_label(row: Mapping[Any, Any], settings_shown: bool = True) -> str:
    """``dataset / model / policy / metric [settings]`` (the settings only where ``settings_shown``)."""
    settings = f" [{row['settings']}]" if settings_shown and row.get("settings") else ""
    return f"{row['dataset']} / {row['model']} / {row['policy']} / {row['metric']}{settings}"


def compare_sides(
    base: Side, cand: Side, fail_on: frozenset[str], tolerances: Tolerances, ignore_settings: bool = False
) -> Comparison:
    """Match the two sides by spec, compare every statistic, adjust every test together, apply ``fail_on``.

    A matched configuration whose ``config`` id differs although its spec and settings match was computed by
    other component versions (a metric's definition may have changed): ``redefined`` says so."""
    keys = [*SPEC, "settings"]
    base_board, cand_board = base.board.set_index(keys), cand.board.set_index(keys)
    common = base_board.index.intersection(cand_board.index)
    only_b = [spec_label(dict(zip(keys, k, strict=True))) for k in base_board.index.difference(cand_board.index)]
    only_c = [spec_label(dict(zip(keys, k, strict=True))) for k in cand_board.index.difference(base_board.index)]
    if len(common) == 0:
        raise CompareError(
            f"{base.path} and {cand.path} have no configuration in common (disjoint grids: "
            f"{len(only_b)} against {len(only_c)} configurations; --ignore-settings matches across settings)"
        )
    metrics = sorted({str(m) for m in common.get_level_values("metric")})
    named = {*tolerances.absolute, *tolerances.relative} - {"*", *metrics, *map(name_in_label, metrics)}
    if named:
        raise CompareError(
            f"--tolerance: no metric {', '.join(sorted(named))} in the comparison ({', '.join(metrics)})"
        )
    base_runs, cand_runs = base.runs.groupby(keys), cand.runs.groupby(keys)
    rows = []
    for key in common.sort_values():
        b, c = base_board.loc[key], cand_board.loc[key]
        rb, rc = base_runs.get_group(key), cand_runs.get_group(key)
        direction = base.dirs.get(str(key[3]), stats.Direction())
        level = change(_per_seed(rb, "late_worsening", direction), _per_seed(rc, "late_worsening", direction))
        quality = change(_per_seed(rb, "first", direction), _per_seed(rc, "first", direction))
        first = float(rb["first"].mean())
        default = float(b["tolerance"]) if np.isfinite(float(b["tolerance"])) else stats.tolerance(first, math.nan)
        tol, source = tolerances.of(str(key[3]), first, default)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "seeds_baseline": int(b["seeds"]),
                "seeds_candidate": int(c["seeds"]),
                "paired": level.paired,
                "verdict_baseline": str(b["status"]),
                "verdict_candidate": str(c["status"]),
                "tolerance": tol,
                "tolerance_from": source,
                **{f"level_{k}": v for k, v in vars(level).items() if k != "paired"},
                **{f"quality_{k}": v for k, v in vars(quality).items() if k != "paired"},
                "p_level": p_beyond(level.change, level.se, level.df, tol),
                "p_shift": p_beyond(level.change, level.se, level.df, 0.0),
                "p_quality": p_beyond(quality.change, quality.se, quality.df, tol),
                "broken_baseline": _broken_share(rb),
                "broken_candidate": _broken_share(rc),
                "redefined": not ignore_settings and str(b["config"]) != str(c["config"]),
            }
        )
    frame = pd.DataFrame(rows)
    tests = ["p_level", "p_shift", "p_quality"]
    q = stats.adjust(frame[tests].to_numpy(dtype=float).ravel()).reshape(len(frame), len(tests))
    for i, name in enumerate(tests):
        frame["q" + name[1:]] = q[:, i]
    frame["fails"] = [_reasons(row, fail_on) for row in frame.to_dict("records")]
    frame["changed"] = (
        frame["fails"].map(bool)
        | (frame["verdict_baseline"] != frame["verdict_candidate"])
        | (frame[["q_level", "q_shift", "q_quality"]].le(stats.ALPHA).any(axis=1))
    )
    return Comparison(base.path, cand.path, fail_on, frame, only_b, only_c, int(np.isfinite(q).sum()))


def _reasons(row: Mapping[Any, Any], fail_on: frozenset[str]) -> list[str]:
    """Which FAIL_RULES a compared row breaks, each as a short phrase."""
    out = []
    severity = stats.SEVERITY.index
    if "failure" in fail_on and row["broken_candidate"] > row["broken_baseline"]:
        out.append(f"failed or diverged runs {row['broken_baseline']:.0%} -> {row['broken_candidate']:.0%}")
    worse_verdict = row["verdict_candidate"] in CLAIMED_WORSE and severity(row["verdict_candidate"]) > severity(
        row["verdict_baseline"]
    )
    if "verdict" in fail_on and worse_verdict and row["q_shift"] <= stats.ALPHA:
        out.append(f"verdict {row['verdict_baseline']} -> {row['verdict_candidate']}")
    if "level" in fail_on and row["q_level"] <= stats.ALPHA:
        out.append(f"level +{row['level_change']:.3g} > tolerance {row['tolerance']:.3g}")
    if "quality" in fail_on and row["q_quality"] <= stats.ALPHA:
        out.append(f"generation 0 +{row['quality_change']:.3g} worse > tolerance {row['tolerance']:.3g}")
    return out


def compare(
    baseline: Path,
    candidate: Path,
    registry: Registry | None = None,
    fail_on: frozenset[str] = frozenset(FAIL_RULES),
    tolerances: Tolerances | None = None,
    ignore_settings: bool = False,
) -> Comparison:
    """Compare two stores or report folders (see the module docstring); raises CompareError on bad input."""
    sides = [summarize(path, load_results(path), registry, ignore_settings) for path in (baseline, candidate)]
    return compare_sides(sides[0], sides[1], fail_on, tolerances or Tolerances(), ignore_settings)
