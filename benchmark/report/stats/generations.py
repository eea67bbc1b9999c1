"""Per generation across seeds: what the curves of the report (and the reproduction figures) draw."""

from __future__ import annotations

import pandas as pd

from benchmark.report.stats.intervals import t_interval
from benchmark.report.stats.per_run import RUN_KEYS


def generation_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, metric and generation: mean over seeds and its 95% CI (for the curves)."""
    grouped = results.groupby([*RUN_KEYS, "generation"], sort=True)["value"]
    out = grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["n"])
    return out
