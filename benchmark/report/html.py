"""index.html: one self-contained page (inline CSS and JS, figures as PNG data URIs, no URL of any kind).

This module prepares the data only: plain rows of text, numbers and figures already encoded as data
URIs. The page's structure is in ``templates/*.html.j2``, its style and behaviour in ``assets/report.css``
and ``assets/report.js``, all read as package resources. The templates autoescape, so every string that
comes from the store (plugin names and parameters, grid files, reasons, package names) is escaped in that
one place, and the only markup is the templates' own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

import jinja2
import numpy as np
import pandas as pd

from benchmark import SCHEMA_VERSION
from benchmark.report import plots, stats
from benchmark.report.tables import Column, board_columns, fmt
from benchmark.run.spec import run_spec_from_dict
from benchmark.run.store import RunStatus, Store, Unfinished

#: Row classes for verdicts and run statuses (only these fixed names ever become a class attribute).
_ROW_CLASS = {s: s for s in (*stats.SEVERITY, RunStatus.DONE, Unfinished.PENDING)}

T = TypeVar("T")

# ---------------------------------------------------------------- what the templates read


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, for a number the key it sorts by (``repr`` of the float, for data-sort), its classes."""

    text: str
    sort_key: str | None
    css_class: str


@dataclass(frozen=True)
class Row:
    css_class: str
    cells: list[Cell]


@dataclass(frozen=True)
class Table:
    """A table whose headers sort it (see templates/macros.html.j2)."""

    ident: str
    headers: list[str]
    rows: list[Row]


@dataclass(frozen=True)
class PerDataset(Generic[T]):
    """The entries of one dataset, shown under its heading."""

    dataset: str
    entries: list[T]


@dataclass(frozen=True)
class MetricBoard:
    metric: str
    direction: str
    table: Table


@dataclass(frozen=True)
class CurveFigure:
    model: str
    uri: str
    seeds: int


@dataclass(frozen=True)
class GalleryRow:
    """One configuration's samples: a PNG data URI per shown generation, None where none was kept."""

    label: str
    seed: int
    pictures: list[str | None]


@dataclass(frozen=True)
class Gallery:
    model: str
    generations: list[int]
    rows: list[GalleryRow]


@dataclass(frozen=True)
class GridInfo:
    name: str
    path: str
    runs: int
    source: str
    machine: list[tuple[str, str]]
    packages: list[tuple[str, str]]


def sortable_table(columns: Sequence[Column], row_classes: Sequence[str] | None = None, table_id: str = "") -> Table:
    """The rows of a sortable table: a column is numeric (right-aligned, keys in data-sort) as it says, or else
    when every key is a number."""
    numeric = [
        c.numeric
        if c.numeric is not None
        else all(k is None or isinstance(k, float) for k in c.keys) and any(k is not None for k in c.keys)
        for c in columns
    ]
    rows = []
    for i in range(len(columns[0].texts) if columns else 0):
        cells = [
            Cell(
                c.texts[i],
                repr(c.keys[i]) if isinstance(c.keys[i], float) else None,
                " ".join(n for n in ("num" if is_numeric else "", "status" if c.header == "status" else "") if n),
            )
            for c, is_numeric in zip(columns, numeric, strict=True)
        ]
        rows.append(Row(_ROW_CLASS.get(row_classes[i], "") if row_classes else "", cells))
    return Table(table_id, [c.header for c in columns], rows)


def _unique_labels(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as a display label within each dataset and model, suffixed with the config id where
    one label covers several configurations there (same labels, settings outside the label differ)."""
    within = ["dataset", "model", column]
    pairs = frame[[*within, "config"]].drop_duplicates()
    ambiguous = set(map(tuple, pairs.loc[pairs.duplicated(within, keep=False), within].to_numpy()))
    keys = list(zip(*(frame[c] for c in within), strict=True))
    return pd.Series(
        [f"{k[-1]} ({c})" if k in ambiguous else k[-1] for k, c in zip(keys, frame["config"], strict=True)],
        index=frame.index,
        dtype=object,
    )


# ---------------------------------------------------------------- sections


def _leaderboards(board: pd.DataFrame) -> list[PerDataset[MetricBoard]]:
    out = []
    for d, (dataset, by_dataset) in enumerate(board.groupby("dataset", sort=True)):
        boards = [
            MetricBoard(
                str(metric),
                str(group["direction"].iloc[0]),
                sortable_table(board_columns(group), list(group["status"]), f"board-{d}-{m}"),
            )
            for m, (metric, group) in enumerate(by_dataset.groupby("metric", sort=True))
        ]
        out.append(PerDataset(str(dataset), boards))
    return out


def _curves(results: pd.DataFrame, dirs: Mapping[str, stats.Direction]) -> list[PerDataset[CurveFigure]]:
    if results.empty:
        return []
    summary = stats.generation_summary(results)
    summary["line"] = _unique_labels(summary, "policy")
    out = []
    for dataset, by_dataset in summary.groupby("dataset", sort=True):
        figures = []
        for model, group in by_dataset.groupby("model", sort=True):
            metrics = sorted(group["metric"].unique())
            titles = [f"{m} ({dirs.get(m, stats.Direction()).describe()})" for m in metrics]
            uri = plots.curves(group, metrics, titles, lines="line")
            figures.append(CurveFigure(str(model), uri, int(group["n"].max())))
        out.append(PerDataset(str(dataset), figures))
    return out


def _picture(samples: np.ndarray | None, limits: plots.Limits | None) -> str | None:
    """Kept samples as a PNG data URI: images as a mosaic, points on ``limits`` (their own if None)."""
    if samples is None or not len(samples):
        return None
    if samples.ndim == 4:
        return plots.png_uri(plots.mosaic(samples))
    axes = limits if limits is not None else plots.limits(samples.reshape(len(samples), -1))
    return plots.png_uri(plots.scatter(samples, *axes))


def _galleries(store: Store, runs: pd.DataFrame) -> list[PerDataset[Gallery]]:
    """Per dataset and model: one row per configuration (its smallest seed), one column per shown generation."""
    if runs.empty:
        return []
    first = runs.sort_values("seed").drop_duplicates(["config"])
    first = first.assign(row=_unique_labels(first, "policy"))
    out = []
    for dataset, by_dataset in first.groupby("dataset", sort=True):
        galleries = []
        for model, group in by_dataset.groupby("model", sort=True):
            generations = plots.shown_generations(int(group["generations"].max()))
            records = group.sort_values("row").to_dict("records")
            kept = {(str(r["run_id"]), t): store.gallery(str(r["run_id"]), t) for r in records for t in generations}
            reference = [a.reshape(len(a), -1) for (_, t), a in kept.items() if t == generations[0] and a is not None]
            limits = plots.limits(np.concatenate(reference)) if reference else None  # the first generation's axes
            rows = [
                GalleryRow(
                    str(r["row"]), int(r["seed"]), [_picture(kept[str(r["run_id"]), t], limits) for t in generations]
                )
                for r in records
            ]
            galleries.append(Gallery(str(model), generations, rows))
        out.append(PerDataset(str(dataset), galleries))
    return out


def _runs_table(store: Store, run_ids: Iterable[str]) -> Table | None:
    """Every selected run with how it ended, including runs that stored nothing (and so are in no other table)."""
    rows = []
    for run_id in run_ids:
        run, status = run_spec_from_dict(store.spec(run_id)), store.status(run_id) or {}
        finished = store.finished_generations(run_id)
        rows.append(
            {
                "run": run_id,
                "dataset": run.dataset.label,
                "model": run.model.label,
                "policy": run.policy.label,
                "seed": run.seed,
                "status": status.get("status", Unfinished.PENDING),
                "last generation": finished[-1] if finished else None,
                "reason": status.get("reason", ""),
            }
        )
    if not rows:
        return None
    numeric = ("seed", "last generation")
    columns = [
        Column(
            header,
            [fmt(r[header]) for r in rows],
            [float(r[header]) if header in numeric and r[header] is not None else None for r in rows],
        )
        for header in rows[0]
    ]
    return sortable_table(columns, [r["status"] for r in rows], "run-table")


def _grids(store: Store, grid: str | None) -> list[GridInfo]:
    grids = store.grids()
    chosen = {grid: grids[grid]} if grid in grids else grids
    out = []
    for name, info in chosen.items():
        env = info.get("environment") or {}
        keys = ("python", "platform", "machine", "processor", "cpus", "executor", "started")
        out.append(
            GridInfo(
                name=str(name),
                path=str(info.get("path", "")),
                runs=len(info.get("runs", [])),
                source=str(info.get("source", "")),
                machine=[(k, fmt(env.get(k))) for k in keys],
                packages=[(str(k), str(v)) for k, v in sorted((env.get("packages") or {}).items())],
            )
        )
    return out


@functools.cache
def _templates() -> jinja2.Environment:
    """The templates, read from this package's ``templates`` folder; autoescaped, and a missing name is an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("benchmark.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _asset(name: str) -> str:
    """A file of this package's ``assets`` folder (the page's CSS and JavaScript)."""
    return (resources.files("benchmark.report") / "assets" / name).read_text(encoding="utf-8")


def render_report(
    store: Store,
    run_ids: Sequence[str],
    results: pd.DataFrame,
    runs: pd.DataFrame,
    board: pd.DataFrame,
    dirs: Mapping[str, stats.Direction],
    *,
    title: str,
    grid: str | None = None,
) -> str:
    """The whole page as a string."""
    statuses = pd.Series([(store.status(r) or {}).get("status", Unfinished.PENDING) for r in run_ids]).value_counts()
    context: dict[str, Any] = {
        "title": title,
        "css": _asset("report.css"),
        "js": _asset("report.js"),
        "run_total": len(run_ids),
        "run_counts": ", ".join(f"{n} {s}" for s, n in statuses.items()) or "none",
        "schema": SCHEMA_VERSION,
        "definitions": stats.DEFINITIONS,
        "leaderboards": _leaderboards(board),
        "curves": _curves(results, dirs),
        "galleries": _galleries(store, runs),
        "runs_table": _runs_table(store, run_ids),
        "grids": _grids(store, grid),
    }
    return _templates().get_template("index.html.j2").render(context)
