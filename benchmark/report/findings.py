"""The report's answers in words: the headline metric of each dataset and a few sentences with their numbers.

leaderboard.md and index.html state the same sentences (each escapes them its own way).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmark.report import stats
from benchmark.run.spec import run_spec_from_dict
from benchmark.run.store import Store

#: The verdicts that say a configuration got worse (or is getting worse).
BAD = stats.WORSE | stats.BROKEN | {"worsening"}


def metric_order(store: Store, run_ids: Iterable[str]) -> list[str]:
    """The metric labels in the grid's order (each run lists its metrics as the grid file does)."""
    order: dict[str, None] = {}
    for run_id in run_ids:
        order.update(dict.fromkeys(m.label for m in run_spec_from_dict(store.spec(run_id)).metrics))
    return list(order)


def headline_metric(board: pd.DataFrame, order: Sequence[str] = ()) -> str | None:
    """A dataset's headline metric: the grid's first metric with a known direction (else its first metric)."""
    present = list(dict.fromkeys([*(m for m in order if m in set(board["metric"])), *sorted(board["metric"])]))
    directed = set(board.loc[board["direction"] != stats.Direction().describe(), "metric"])
    return next((m for m in present if m in directed), present[0] if present else None)


def signed(value: Any) -> str:
    """A level with its sign in 3 significant digits ('' when missing): ``+0.123``, ``-1.5e-05``."""
    return "" if value is None or pd.isna(value) else f"{float(value):+.3g}"


def _who(row: Mapping[Hashable, Any]) -> str:
    return f"{row['model']} / {row['policy']}"


def _headline(dataset: str, metric: str, group: pd.DataFrame) -> list[str]:
    """Sentences on one dataset's headline metric: the tally, the worst configuration and the best stable one."""
    rows = group.to_dict("records")
    counts = group["status"].value_counts()
    tally = ", ".join(f"{counts[s]} {s}" for s in stats.SEVERITY if s in counts)
    lines = [f"{dataset}, {metric} ({group['direction'].iloc[0]}): {len(group)} configurations: {tally}."]
    bad = [r for r in rows if r["status"] in BAD]
    if bad:
        worst = max(bad, key=lambda r: (stats.SEVERITY.index(r["status"]), np.nan_to_num(r["level_mean"], nan=-np.inf)))
        start = worst["collapse_start"]
        if pd.isna(worst["level_mean"]):  # failed or diverged runs left no level to state
            per_run = worst.get("status_counts")
            runs = f" ({per_run})" if isinstance(per_run, str) and per_run else ""
            lines.append(f"Worst: {_who(worst)}, {worst['status']}{runs}: no level to compare.")
        else:
            lines.append(
                f"Worst: {_who(worst)}, {worst['status']}, level {signed(worst['level_mean'])} {metric} "
                f"against {worst['reference']}"
                + ("" if pd.isna(start) else f", worse from generation {int(start)}")
                + "."
            )
    stable = [r for r in rows if r["status"] == "stable"]
    if stable:
        best = min(stable, key=lambda r: abs(r["level_mean"]))
        names = ", ".join(sorted({str(r["policy"]) for r in stable}))
        lines.append(
            f"Stable (level and late drift within the tolerance) with at least one model: {names}; closest to its "
            f"reference: {_who(best)}, level {signed(best['level_mean'])} {metric}."
        )
    return lines


def findings(board: pd.DataFrame, order: Sequence[str] = ()) -> list[str]:
    """A few sentences with the report's answers: verdict counts, the tests made, and per dataset its headline
    metric's tally, worst and best configurations with their numbers."""
    if board.empty:
        return []
    counts = board["status"].value_counts()
    overall = ", ".join(f"{counts[s]} {s}" for s in stats.SEVERITY if s in counts)
    lines = [
        f"{len(board)} cells (configuration x metric): {overall}.",
        f"The verdicts rest on {stats.tests_made(board)} tests, adjusted together (Benjamini-Hochberg): "
        f"at most {stats.ALPHA:.0%} of the claims are expected to be false.",
    ]
    for dataset, group in board.groupby("dataset", sort=True):
        metric = headline_metric(group, order)
        if metric is not None:
            lines += _headline(str(dataset), metric, group[group["metric"] == metric])
    return lines
