"""Results and leaderboards, built from the store alone.

``results.csv`` is tidy: one row per (run, generation, metric) with the run's components and their
parameters as columns. ``leaderboard.csv`` / ``.md`` summarise, per dataset, model, policy and
metric, the value at generation 0 and at the last generation over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark import SCHEMA_VERSION
from benchmark.errors import StoreError
from benchmark.spec import run_spec_from_dict
from benchmark.store import Store

ID_COLUMNS = ["run_id", "dataset", "model", "policy", "seed", "generation", "metric", "value", "detail", "status"]


def results_frame(store: Store, grid: str | None = None) -> pd.DataFrame:
    """Every stored metric value, one row per (run, generation, metric)."""
    store.check(create=False)
    run_ids = store.run_ids()
    if grid is not None:
        grids = store.grids()
        if grid not in grids:
            raise StoreError(f"{store.root}: no grid {grid!r} in this store (grids: {', '.join(grids) or 'none'})")
        wanted = set(grids[grid]["runs"])
        run_ids = [r for r in run_ids if r in wanted]
    rows = []
    for run_id in run_ids:
        spec = store.spec(run_id)
        if spec.get("schema") != SCHEMA_VERSION:
            raise StoreError(f"{store.run_dir(run_id)}: result schema {spec.get('schema')} cannot be mixed with {SCHEMA_VERSION}")
        run = run_spec_from_dict(spec)
        status = (store.status(run_id) or {}).get("status", "pending")
        base = {
            "run_id": run_id,
            "dataset": run.dataset.label,
            "model": run.model.label,
            "policy": run.policy.label,
            "seed": run.seed,
            "status": status,
        }
        for kind, component in (("dataset", run.dataset), ("model", run.model), ("policy", run.policy)):
            base.update({f"{kind}.{k}": v for k, v in component.params})
        for record in store.records(run_id):
            for metric, measured in record["metrics"].items():
                rows.append({**base, "generation": record["generation"], "metric": metric, **measured})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=ID_COLUMNS)
    params = sorted(c for c in frame.columns if c not in ID_COLUMNS)
    return frame[ID_COLUMNS + params].sort_values(["dataset", "model", "policy", "metric", "seed", "generation"], ignore_index=True)


def leaderboard_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, policy, metric): generation 0 and last generation over seeds, and the relative change."""
    keys = ["dataset", "model", "policy", "metric"]
    if results.empty:
        return pd.DataFrame(columns=[*keys, "seeds", "generations", "first", "last", "relative_change", "relative_change_std"])
    per_run = results.sort_values("generation").groupby([*keys, "run_id"], sort=False).agg(
        generations=("generation", "max"), first=("value", "first"), last=("value", "last")
    )
    per_run["relative_change"] = (per_run["last"] - per_run["first"]) / per_run["first"].abs()
    board = per_run.groupby(keys).agg(
        seeds=("first", "size"),
        generations=("generations", "max"),
        first=("first", "mean"),
        last=("last", "mean"),
        relative_change=("relative_change", "mean"),
        relative_change_std=("relative_change", "std"),
    )
    return board.reset_index().sort_values(keys, ignore_index=True)


def write_report(store_root: Path, out: Path, grid: str | None = None) -> list[Path]:
    """Write results.csv, leaderboard.csv and leaderboard.md into ``out``; return their paths."""
    results = results_frame(Store(store_root), grid)
    board = leaderboard_frame(results)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv", out / "leaderboard.csv", out / "leaderboard.md"]
    results.to_csv(paths[0], index=False)
    board.to_csv(paths[1], index=False)
    paths[2].write_text(board.to_markdown(index=False, floatfmt=".4g") + "\n", encoding="utf-8")
    return paths
