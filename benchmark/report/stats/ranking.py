"""The leaderboard's order: ``rank`` per dataset and metric (see "rank" in ``DEFINITIONS``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from benchmark.report.stats.directions import Direction
from benchmark.report.stats.verdicts import SEVERITY


def rank(board: pd.DataFrame, dirs: Mapping[str, Direction]) -> pd.DataFrame:
    """Add ``rank`` (1 = most stable, per dataset and metric) and order rows by it: by verdict, then by how far
    the upper end of the level's interval lies from the tolerance (in tolerances; |level| with an unknown
    direction). Quality (generation 0) is not part of it."""
    board = board.copy()
    board["direction"] = [dirs.get(m, Direction()).describe() for m in board["metric"]]
    known = np.array([dirs.get(m, Direction()).known for m in board["metric"]], dtype=bool)
    upper = (
        board["level_ci_high"].astype(float).where(known, np.maximum(board["level_ci_high"], -board["level_ci_low"]))
    )
    board["severity"] = [SEVERITY.index(s) for s in board["status"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        board["margin"] = upper / board["tolerance"].astype(float)
    keys = ["dataset", "metric", "severity", "margin", "model", "policy"]
    order = board.sort_values(keys, na_position="last")
    positions = order.groupby(["dataset", "metric"], sort=False).cumcount() + 1
    board["rank"] = pd.array([pd.NA] * len(board), dtype="Int64")
    board.loc[order.index, "rank"] = positions.astype("Int64")
    board = board.drop(columns=["severity", "margin"])
    return board.sort_values(["dataset", "metric", "rank"], ignore_index=True)
