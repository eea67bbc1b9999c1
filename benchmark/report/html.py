"""index.html: one self-contained page (inline CSS and JS, figures as PNG data URIs, no URL of any kind).

This module prepares the data only: plain rows of text, numbers and figures already encoded as data
URIs. The page's structure is in ``templates/*.html.j2``, its style and behaviour in ``assets/report.css``
and ``assets/report.js``, all read as package resources. The templates autoescape, so every string that
comes from the store (plugin names and parameters, grid files, reasons, package names) is escaped in that
one place, and the only markup is the templates' own.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

import jinja2
import numpy as np
import pandas as pd

from benchmark import SCHEMA_VERSION
from benchmark.report import plots, stats
from benchmark.report.findings import findings, headline_metric, signed
from benchmark.report.tables import REFERENCE, Column, board_columns, fmt, status_text, with_ci
from benchmark.run.settings import RESULT_COLUMNS
from benchmark.run.spec import name_in_label, run_spec_from_dict
from benchmark.run.store import RunStatus, Store, Unfinished

#: Row classes for verdicts and run statuses (only these fixed names ever become a class attribute).
_ROW_CLASS = {s: s for s in (*stats.SEVERITY, RunStatus.DONE, Unfinished.PENDING)}

T = TypeVar("T")

# ---------------------------------------------------------------- what the templates read


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, for a number the key it sorts by (``repr`` of the float, for data-sort), its classes.
    A note is cut to one line on the page, its whole text in its tooltip."""

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
class Swatch:
    """A line label with its colour, the same everywhere in the report (``data-policy`` in the page)."""

    label: str
    colour: str


@dataclass(frozen=True)
class Verdict:
    """A cell of a verdict matrix or phase diagram: its verdict (a class name), the level it shows, a tooltip and,
    for the heatmap of the level, its background colour."""

    verdict: str
    text: str
    title: str
    shade: str = ""
    #: Under an inconclusive verdict, what the runs say one by one ("2 worse, 1 collapsed"): the reader sees
    #: that every seed worsened although three seeds cannot bound by how much.
    runs: str = ""


@dataclass(frozen=True)
class Matrix:
    """Rows of labelled cells under labelled columns (None: no such configuration)."""

    corner: str
    columns: list[Swatch]
    rows: list[tuple[str, list[Verdict | None]]]


@dataclass(frozen=True)
class PhaseDiagram:
    """Verdict and level over the two parameters a model x policy pair sweeps."""

    title: str
    verdicts: Matrix
    levels: Matrix


@dataclass(frozen=True)
class MetricView:
    """The answer for one dataset and metric: the model x policy matrix and the phase diagrams."""

    metric: str
    direction: str
    headline: bool
    matrix: Matrix
    phases: list[PhaseDiagram]


@dataclass(frozen=True)
class CurveFigure:
    model: str
    uri: str
    seeds: int
    legend: list[Swatch]


@dataclass(frozen=True)
class GalleryRow:
    """One configuration's samples: a PNG data URI (or decoded text, for sequence data) per shown generation, None
    where none was kept."""

    label: Swatch
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
    description: str
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
                " ".join(
                    n for n in ("num" if is_numeric else "", c.header if c.header in ("status", "note") else "") if n
                ),
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
                sortable_table(board_columns(group, verdict_first=True), list(group["status"]), f"board-{d}-{m}"),
            )
            for m, (metric, group) in enumerate(by_dataset.groupby("metric", sort=True))
        ]
        out.append(PerDataset(str(dataset), boards))
    return out


def _cell(row: Mapping[Any, Any], metric: str) -> Verdict:
    """A configuration's verdict and level; the tooltip holds the intervals (kept short: there is one per cell)."""
    start, reference = row["collapse_start"], REFERENCE.get(row["reference"], row["reference"])
    title = (
        f"{status_text(row)}; level {with_ci(row['level_mean'], row['level_ci_low'], row['level_ci_high'])} "
        f"vs {reference}; drift {with_ci(row['drift_mean'], row['drift_ci_low'], row['drift_ci_high'])}; "
        f"tolerance {fmt(row['tolerance'])}" + ("" if pd.isna(start) else f"; worse from {int(start)}")
    )
    counts = row["status_counts"] if row["status"] == "inconclusive" else ""
    runs = counts if isinstance(counts, str) else ""
    return Verdict(_ROW_CLASS.get(row["status"], ""), signed(row["level_mean"]), title, runs=runs)


def _level_shade(level: float, tolerance: float) -> str:
    """Background of a level in the heatmap: white within the tolerance, to red at 4 tolerances worse, blue better."""
    if pd.isna(level) or pd.isna(tolerance) or tolerance <= 0:
        return ""
    x = float(np.clip((abs(level) - tolerance) / (3 * tolerance), 0, 1))
    ink = np.array([214, 39, 40]) if level > 0 else np.array([31, 119, 180])
    rgb = np.rint(255 - (255 - ink) * 0.75 * x).astype(int)
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _matrix(group: pd.DataFrame, colours: Mapping[str, str], metric: str) -> Matrix:
    """Model x policy: each configuration's verdict and level."""
    cells = {(r["model"], r["column"]): _cell(r, metric) for r in group.to_dict("records")}
    policies = sorted(set(group["column"]), key=plots.natural_key)
    models = sorted(set(group["model"]), key=plots.natural_key)
    return Matrix(
        "model \\ policy",
        [Swatch(p, colours.get(p, "")) for p in policies],
        [(m, [cells.get((m, p)) for p in policies]) for m in models],
    )


def _sweeps(group: pd.DataFrame, params: pd.DataFrame) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(model name / policy name, x, y, rows) for each model x policy pair whose configurations differ along exactly
    two axes (x: the policy's where it has one). Parameters that change together, one value of each always with the
    same value of the other (a network's width and depth swept as pairs), are one axis."""
    out = []
    rows = group.join(params, on="config")
    pairs = rows.assign(
        pair=[f"{name_in_label(m)} / {name_in_label(p)}" for m, p in zip(rows["model"], rows["policy"], strict=True)]
    )
    for pair, by_pair in pairs.groupby("pair", sort=True):
        swept = [c for c in params.columns if by_pair[c].astype(str).nunique() > 1]
        by_pair, axes = _axes(by_pair, swept)
        if len(axes) == 2:
            x, y = sorted(axes, key=lambda c: (not c.startswith("policy."), c))
            out.append((str(pair), x, y, by_pair))
    return out


def _axes(rows: pd.DataFrame, swept: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The swept columns grouped into axes; an axis of several columns becomes one column "kind.a,b" of values
    "a=1 b=2"."""
    values = rows[swept].astype(str)
    groups: list[list[str]] = []
    for column in swept:
        for members in groups:
            head = members[0]
            same_kind = head.split(".", 1)[0] == column.split(".", 1)[0]
            pairs = len(values[[head, column]].drop_duplicates())
            if same_kind and pairs == values[head].nunique() == values[column].nunique():  # one-to-one
                members.append(column)
                break
        else:
            groups.append([column])
    axes = []
    for members in groups:
        if len(members) == 1:
            axes.append(members[0])
            continue
        kind = members[0].split(".", 1)[0]
        names = [m.split(".", 1)[-1] for m in members]
        axis = f"{kind}.{','.join(names)}"
        rows = rows.assign(
            **{axis: [" ".join(f"{n}={v}" for n, v in zip(names, r, strict=True)) for r in values[members].values]}
        )
        axes.append(axis)
    return rows, axes


def _phases(group: pd.DataFrame, params: pd.DataFrame, metric: str) -> list[PhaseDiagram]:
    diagrams = []
    for pair, x, y, rows in _sweeps(group, params):
        xs = sorted(set(rows[x].astype(str)), key=plots.natural_key)
        ys = sorted(set(rows[y].astype(str)), key=plots.natural_key)
        found = {(str(r[y]), str(r[x])): r for r in rows.to_dict("records")}
        heads = [Swatch(v if "," in x else f"{x.split('.', 1)[-1]}={v}", "") for v in xs]
        corner = f"{y.split('.', 1)[-1]} \\ {x.split('.', 1)[-1]}"
        verdicts = [(v, [_cell(found[v, u], metric) if (v, u) in found else None for u in xs]) for v in ys]
        levels = [
            (
                v,
                [
                    Verdict(
                        "",
                        signed(r["level_mean"]),
                        _cell(r, metric).title,
                        _level_shade(r["level_mean"], r["tolerance"]),
                    )
                    if (r := found.get((v, u))) is not None
                    else None
                    for u in xs
                ],
            )
            for v in ys
        ]
        diagrams.append(PhaseDiagram(pair, Matrix(corner, heads, verdicts), Matrix(corner, heads, levels)))
    return diagrams


def _config_params(results: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, the parameters a grid can sweep: component parameters and settings that are columns."""
    columns = [c for c in results.columns if c.split(".", 1)[0] in ("dataset", "model", "policy") and "." in c]
    columns += [c for c in RESULT_COLUMNS if c in results.columns]
    return results.drop_duplicates("config").set_index("config")[columns]


def _answers(
    board: pd.DataFrame, results: pd.DataFrame, colours: Mapping[str, str], order: Sequence[str]
) -> list[PerDataset[MetricView]]:
    """Per dataset, one view per metric (the headline first): the verdict matrix and the phase diagrams."""
    if board.empty:
        return []
    params = _config_params(results)
    board = board.assign(column=_unique_labels(board, "policy"))
    out = []
    for dataset, by_dataset in board.groupby("dataset", sort=True):
        headline = headline_metric(by_dataset, order)
        metrics = sorted(set(by_dataset["metric"]), key=lambda m: (m != headline, *_order_key(m, order)))
        views = []
        for metric in metrics:
            group = by_dataset[by_dataset["metric"] == metric]
            views.append(
                MetricView(
                    str(metric),
                    str(group["direction"].iloc[0]),
                    metric == headline,
                    _matrix(group, colours, str(metric)),
                    _phases(group, params, str(metric)),
                )
            )
        out.append(PerDataset(str(dataset), views))
    return out


def _order_key(metric: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(metric) if metric in order else len(order), metric)


def _curves(
    results: pd.DataFrame,
    board: pd.DataFrame,
    dirs: Mapping[str, stats.Direction],
    colours: Mapping[str, str],
    order: Sequence[str],
) -> list[PerDataset[CurveFigure]]:
    if results.empty:
        return []
    summary = stats.generation_summary(results)
    summary["line"] = _unique_labels(summary, "policy")
    board = board.assign(line=_unique_labels(board, "policy"))
    starts = {
        (r["dataset"], r["model"], r["metric"], r["line"]): int(r["collapse_start"])
        for r in board.to_dict("records")
        if not pd.isna(r["collapse_start"])
    }
    out = []
    for dataset, by_dataset in summary.groupby("dataset", sort=True):
        headline = headline_metric(board[board["dataset"] == dataset], order)
        figures = []
        for model, group in by_dataset.groupby("model", sort=True):
            metrics = sorted(group["metric"].unique(), key=lambda m: (m != headline, *_order_key(m, order)))
            lines = sorted(set(group["line"]), key=plots.natural_key)
            panels = []
            for metric in metrics:
                direction = dirs.get(metric, stats.Direction())
                low, high = plots.bounds(direction.higher_is_better, direction.optimum)
                marks = {line: starts[k] for line in lines if (k := (dataset, model, metric, line)) in starts}
                panels.append(plots.Panel(metric, f"{metric} ({direction.describe()})", low, high, marks))
            uri = plots.curves(group, panels, colours, lines="line")
            legend = [Swatch(line, colours[line]) for line in lines]
            figures.append(CurveFigure(str(model), uri, int(group["n"].max()), legend))
        out.append(PerDataset(str(dataset), figures))
    return out


def _picture(samples: np.ndarray | None, limits: plots.Limits | None) -> str | None:
    """Kept samples as a PNG data URI: images as a mosaic, points on ``limits`` (their own if None); text (sequence
    data, kept decoded) as its lines, which the page shows as text."""
    if samples is None or not len(samples):
        return None
    if samples.dtype.kind == "U":
        return "\n".join(str(line) for line in samples)
    if samples.ndim == 4:
        return plots.png_uri(plots.mosaic(samples))
    axes = limits if limits is not None else plots.limits(samples.reshape(len(samples), -1))
    return plots.png_uri(plots.scatter(samples, *axes))


def _kept_text(store: Store, records: Iterable[Mapping[Any, Any]]) -> bool:
    """Whether the runs kept decoded text (sequence data): the first generation-0 samples any of them kept."""
    for record in records:
        kept = store.gallery(str(record["run_id"]), 0)
        if kept is not None:
            return kept.dtype.kind == "U"
    return False


def _galleries(store: Store, runs: pd.DataFrame, colours: Mapping[str, str]) -> list[PerDataset[Gallery]]:
    """Per dataset and model: one row per configuration (its smallest seed), one column per shown generation."""
    if runs.empty:
        return []
    first = runs.sort_values("seed").drop_duplicates(["config"])
    first = first.assign(row=_unique_labels(first, "policy"))
    out = []
    for dataset, by_dataset in first.groupby("dataset", sort=True):
        galleries = []
        for model, group in by_dataset.groupby("model", sort=True):
            records = sorted(group.to_dict("records"), key=lambda r: plots.natural_key(str(r["row"])))
            columns = plots.GALLERY_TEXT_COLUMNS if _kept_text(store, records) else plots.GALLERY_COLUMNS
            generations = plots.shown_generations(int(group["generations"].max()), columns)
            kept = {(str(r["run_id"]), t): store.gallery(str(r["run_id"]), t) for r in records for t in generations}
            reference = [
                a.reshape(len(a), -1)
                for (_, t), a in kept.items()
                if t == generations[0] and a is not None and a.dtype.kind != "U"
            ]
            limits = plots.limits(np.concatenate(reference)) if reference else None  # the first generation's axes
            rows = [
                GalleryRow(
                    Swatch(str(r["row"]), colours.get(str(r["row"]), "")),
                    int(r["seed"]),
                    [_picture(kept[str(r["run_id"]), t], limits) for t in generations],
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
        try:
            description = str(tomllib.loads(str(info.get("source", ""))).get("description", ""))
        except tomllib.TOMLDecodeError:  # a grid file that parsed when it ran; its text may since be edited away
            description = ""
        out.append(
            GridInfo(
                name=str(name),
                path=str(info.get("path", "")),
                description=description,
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
    order: Sequence[str] = (),
) -> str:
    """The whole page as a string; ``order``: the grid's metrics in its order (the first directed one is the
    headline of each dataset)."""
    statuses = pd.Series([(store.status(r) or {}).get("status", Unfinished.PENDING) for r in run_ids]).value_counts()
    grids = _grids(store, grid)
    lines = set(_unique_labels(board, "policy")) if not board.empty else set()
    colours = plots.line_colours(lines | set(_unique_labels(runs, "policy") if not runs.empty else ()))
    context: dict[str, Any] = {
        "title": title,
        "css": _asset("report.css"),
        "js": _asset("report.js"),
        "run_total": len(run_ids),
        "run_counts": ", ".join(f"{n} {s}" for s, n in statuses.items()) or "none",
        "schema": SCHEMA_VERSION,
        "definitions": stats.DEFINITIONS,
        "verdicts": list(stats.SEVERITY),
        "questions": [g.description for g in grids if g.description],
        "findings": findings(board, order),
        "answers": _answers(board, results, colours, order),
        "leaderboards": _leaderboards(board),
        "curves": _curves(results, board, dirs, colours, order),
        "galleries": _galleries(store, runs, colours),
        "runs_table": _runs_table(store, run_ids),
        "grids": grids,
    }
    return _templates().get_template("index.html.j2").render(context)
