"""The grid's real-only control: ``mix`` with lambda = 0, which refits the real data every generation.

Paired with it by seed (same dataset, model, settings, metric and generation), a policy's worsening no longer
includes what simply retraining does (warm-started models keep improving on real data), and the evaluation
noise of generation 0 drops out of the comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The real-only control: this policy with these parameters (the grid's results columns ``policy.*``).
CONTROL_POLICY = "mix"
CONTROL_PARAMS = {"lambda": 0.0}
#: Columns that do not tell runs' set-ups apart (a run's outcome, its identity, its policy).
_NOT_SETUP = {"run_id", "policy", "value", "detail", "status", "config", "d", "badness"}


def is_control(results: pd.DataFrame) -> pd.Series:
    """Rows of the real-only control runs."""
    named = results["policy"].astype(str).str.split("[", n=1).str[0] == CONTROL_POLICY
    for name, value in CONTROL_PARAMS.items():
        column = f"policy.{name}"
        if column not in results:
            return pd.Series(False, index=results.index)
        named &= pd.to_numeric(results[column], errors="coerce").astype(float) == value
    return named


def _setup(results: pd.DataFrame) -> pd.Series:
    """Everything a row's value depends on apart from its policy, as one key: rows sharing it are paired."""
    columns = sorted(c for c in results.columns if c not in _NOT_SETUP and not c.startswith("policy."))
    if not columns:
        return pd.Series(0, index=results.index)
    return results.groupby(columns, dropna=False, sort=False).ngroup()


def paired_control(results: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    """For every row of ``results``: ``column`` of the control's row paired with it (same set-up, seed, metric and
    generation; NaN for the control itself and where the grid has none), and the control's configuration id."""
    key = _setup(results)
    control = is_control(results)
    lookup = pd.DataFrame(
        {"key": key[control], "value": results.loc[control, column], "config": results.loc[control, "config"]}
    )
    lookup = lookup.drop_duplicates("key").set_index("key")
    value = key.map(lookup["value"]).astype(float).where(~control, np.nan)
    config = key.map(lookup["config"]).where(~control)
    return value, config
