"""The leaderboard's order: ``rank`` per dataset and metric (see "rank" in ``DEFINITIONS``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from benchmark.report.stats.directions import Direction
from benchmark.report.stats.verdicts import BROKEN


def rank(board: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """Add ``rank`` (1 = best, per dataset and metric) and order rows by it; see "rank" in ``DEFINITIONS``."""
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
