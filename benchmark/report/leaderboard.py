"""Results and leaderboards, built from the store alone (nothing is rerun).

``write_report`` writes into the out folder:

* ``results.csv``: tidy, one row per (run, generation, metric), with the run's components, its
  configuration id (the run spec without the seed: runs that differ only by seed share it), its
  settings (``n_real``, ``device``, ...: those ``benchmark.run.settings`` marks as columns) and
  every component parameter as a ``dataset.*`` / ``model.*`` / ``policy.*`` column;
* ``runs.csv``: per run and metric, the stability statistics of ``benchmark.report.stats``;
* ``leaderboard.csv`` / ``leaderboard.md``: per dataset, metric and configuration, those statistics
  across seeds (mean, std, 95% CI, seeds) and the rank;
* ``index.html``: a self-contained page with the tables, curves, sample galleries and the grid.

The statistics, the statuses and the ranking score are defined in ``benchmark.report.stats``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import SCHEMA_VERSION
from benchmark.api.registry import Registry
from benchmark.errors import StoreError
from benchmark.files import write_all_atomic
from benchmark.report import stats, tables
from benchmark.report.findings import metric_order
from benchmark.run.settings import RESULT_COLUMNS
from benchmark.run.spec import run_spec_from_dict
from benchmark.run.store import Store, Unfinished

ID_COLUMNS = [
    "run_id",
    "dataset",
    "model",
    "policy",
    "seed",
    "generation",
    "metric",
    "value",
    "detail",
    "status",
    "config",
]


def selected_runs(store: Store, grid: str | None = None) -> list[str]:
    """The store's run ids (those of ``grid`` only, if given), after refusing any other result schema."""
    store.check(create=False)
    run_ids = store.run_ids()
    grids = store.grids()  # read (and checked) before anything is computed
    if grid is not None:
        if grid not in grids:
            raise StoreError(f"{store.root}: no grid {grid!r} in this store (grids: {', '.join(grids) or 'none'})")
        wanted = set(grids[grid]["runs"])
        run_ids = [r for r in run_ids if r in wanted]
    for run_id in run_ids:
        schema = store.spec(run_id).get("schema")
        if schema != SCHEMA_VERSION:
            raise StoreError(
                f"{store.run_dir(run_id) / 'run.json'}: result schema {schema!r}, but this report is of schema "
                f"{SCHEMA_VERSION}: a report never mixes schema versions (use a retrainbench of that schema, or "
                "another store)"
            )
    return run_ids


def _typed(values: pd.Series) -> pd.Series:
    """A parameter column with a nullable dtype that keeps the parameter's type (missing values are NA)."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if not present:
        return values.astype(object)
    if kinds == {bool}:
        return values.astype("boolean")
    if kinds == {int}:
        return values.astype("Int64")
    if kinds <= {int, float}:
        return values.astype("Float64")
    if kinds == {str}:
        return values.astype("string")
    return values.astype(object)


def results_frame(store: Store, grid: str | None = None) -> pd.DataFrame:
    """Every stored metric value, one row per (run, generation, metric).

    For a ``grid``, only its runs and only the generations it asked for: a longer grid sharing its
    runs may have stored more.
    """
    rows = []
    last = store.grids().get(grid, {}).get("generations") if grid is not None else None
    for run_id in selected_runs(store, grid):
        run = run_spec_from_dict(store.spec(run_id))
        status = (store.status(run_id) or {}).get("status", Unfinished.PENDING)
        base: dict[str, Any] = {
            "run_id": run_id,
            "dataset": run.dataset.label,
            "model": run.model.label,
            "policy": run.policy.label,
            "seed": run.seed,
            "status": status,
            "config": run.config_id,
            **run.columns(),
        }
        for kind, component in (("dataset", run.dataset), ("model", run.model), ("policy", run.policy)):
            base.update({f"{kind}.{k}": v for k, v in component.params})
        for record in store.records(run_id):
            if last is not None and record["generation"] > last:
                break
            for metric, measured in record["metrics"].items():
                rows.append(
                    {
                        **base,
                        "generation": record["generation"],
                        "metric": metric,
                        "value": measured.get("value"),
                        "detail": measured.get("detail", ""),
                    }
                )
    if not rows:
        return pd.DataFrame(columns=[*ID_COLUMNS, *RESULT_COLUMNS])
    params = sorted({c for row in rows for c in row} - {*ID_COLUMNS, *RESULT_COLUMNS})
    frame = pd.DataFrame({c: [row.get(c) for row in rows] for c in ID_COLUMNS})
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    for column in [*RESULT_COLUMNS, *params]:  # from the Python values: a missing one cannot turn ints into floats
        frame[column] = _typed(pd.Series([row.get(column) for row in rows], dtype=object))
    return frame.sort_values(["dataset", "model", "policy", "metric", "seed", "generation"], ignore_index=True)


def summaries(
    results: pd.DataFrame, registry: Registry | None = None
) -> tuple[dict[str, stats.Direction], pd.DataFrame, pd.DataFrame]:
    """Metric directions, per-run statistics and the ranked leaderboard of a results frame."""
    dirs = stats.directions(results["metric"].unique(), registry)
    runs = stats.run_summary(results, dirs)
    return dirs, runs, stats.rank(stats.seed_summary(runs, results, dirs), dirs)


def leaderboard_frame(results: pd.DataFrame, registry: Registry | None = None) -> pd.DataFrame:
    """Per dataset, metric and configuration: statistics across seeds and the rank (see ``report.stats``)."""
    return summaries(results, registry)[2]


#: Leaderboard columns in the order of leaderboard.csv.
BOARD_COLUMNS = [
    "dataset",
    "metric",
    "rank",
    "model",
    "policy",
    "status",
    "status_counts",
    "note",
    "reference",
    "level_mean",
    "level_ci_low",
    "level_ci_high",
    "drift_mean",
    "drift_ci_low",
    "drift_ci_high",
    "tolerance",
    "noise_floor",
    "collapse_start",
    *stats.CLAIMS,
    "seeds",
    "generations",
    "score",
    *(f"{s}_{k}" for s in stats.SEED_STATS for k in ("mean", "std", "ci_low", "ci_high")),
    "direction",
    "config",
]


def write_report(store_root: Path, out: Path, grid: str | None = None, registry: Registry | None = None) -> list[Path]:
    """Write results.csv, runs.csv, leaderboard.csv, leaderboard.md and index.html into ``out``; return their paths.

    ``registry`` gives metric directions (default: the installed plugins); metrics it lacks get an unknown direction.
    """
    from benchmark.report.html import render_report

    if registry is None:
        from benchmark.api.plugins import default_registry

        registry = default_registry()
    store = Store(store_root)
    results = results_frame(store, grid)
    dirs, runs, board = summaries(results, registry)
    title = f"retrainbench leaderboard: grid {grid}" if grid else "retrainbench leaderboard"
    run_ids = selected_runs(store, grid)
    order = metric_order(store, run_ids)  # the grid's metrics in its order: the first directed one is the headline
    page = render_report(store, run_ids, results, runs, board, dirs, title=title, grid=grid, order=order)
    contents = [
        results.to_csv(index=False),
        runs.to_csv(index=False),
        board[BOARD_COLUMNS].to_csv(index=False),
        tables.markdown(board, title, order) + "\n",
        page,
    ]
    paths = [out / name for name in ("results.csv", "runs.csv", "leaderboard.csv", "leaderboard.md", "index.html")]
    # only once the whole store was read, and all five or none: a damaged store or a full disk leaves the old
    # report whole, not some files new and one cut short
    write_all_atomic([(path, text.encode("utf-8")) for path, text in zip(paths, contents, strict=True)])
    return paths
