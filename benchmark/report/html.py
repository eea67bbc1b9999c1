"""index.html: one self-contained page (inline CSS and JS, figures as PNG data URIs, no URL of any kind).

Every string that comes from the store (plugin names and parameters, grid files, reasons, package
names) goes through ``esc`` on its way into the page; the only markup is this module's own.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmark import SCHEMA_VERSION
from benchmark.report import plots, stats
from benchmark.report.tables import Column, board_columns, fmt
from benchmark.run.spec import run_spec_from_dict
from benchmark.run.store import Store


def esc(value: Any) -> str:
    """HTML-escaped text, quotes included (safe in element content and in quoted attributes)."""
    return html.escape(str(value), quote=True)


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5em 3em; color: #1d1d1f; background: #fff; }
h1 { margin-top: .8em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.6em; } h4 { margin: 1.2em 0 .4em; }
nav a { margin-right: 1.2em; }
dl.defs dt { font-weight: 600; } dl.defs dd { margin: 0 0 .5em 1.5em; }
table { border-collapse: collapse; margin: .4em 0 1em; font-size: 12.5px; }
th, td { border: 1px solid #d8d8d8; padding: .25em .55em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; background: #f3f4f6; position: sticky; top: 0; }
table.sortable th:hover { background: #e5e7eb; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: .75em; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: .75em; }
tr.stable td.status { background: #e7f6ea; } tr.degraded td.status { background: #fff4d6; }
tr.collapsed td.status { background: #fde2e1; } tr.diverged td.status, tr.failed td.status { background: #e9d5ff; }
figure { margin: .5em 0 1.5em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
table.gallery td, table.gallery th { padding: 2px; text-align: center; vertical-align: middle; }
table.gallery img.sample { display: block; width: 150px; height: auto; image-rendering: pixelated; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 12px; }
.muted { color: #666; }
div.scroll { overflow-x: auto; }
"""

# Sorts a table by the clicked header: cells with a numeric key in data-sort by number, other cells by
# their text (natural order: "x2" before "x10"), empty cells last; a second click reverses.
_JS = """
(function () {
  "use strict";
  function key(cell) {
    if (cell.hasAttribute("data-sort")) { return Number(cell.getAttribute("data-sort")); }
    var text = cell.textContent.trim();
    return text === "" ? null : text;
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") { return a - b; }
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function sortBy(table, header, column) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var a = key(r.cells[column]), b = key(s.cells[column]);
      if (a === null || b === null) { return (a === null) - (b === null); }
      return ascending ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.tabIndex = 0;
      header.title = "sort by this column";
      header.addEventListener("click", function () { sortBy(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header, column); }
      });
    });
  });
}());
"""

#: Row classes for statuses (only these fixed names ever become a class attribute).
_STATUS_CLASS = {s: s for s in (*stats.SEVERITY, "done", "pending")}


def _cell(text: str, key: float | str | None, numeric: bool, extra: str = "") -> str:
    classes = " ".join(c for c in ("num" if numeric else "", extra) if c)
    attrs = f' class="{classes}"' if classes else ""
    if isinstance(key, float):
        attrs += f' data-sort="{key!r}"'
    return f"<td{attrs}>{esc(text)}</td>"


def sortable_table(columns: Sequence[Column], row_classes: Sequence[str] | None = None, table_id: str = "") -> str:
    """A table whose headers sort it; cells are escaped text, numeric keys go into data-sort (text sorts as shown)."""
    numeric = [
        c.numeric
        if c.numeric is not None
        else all(k is None or isinstance(k, float) for k in c.keys) and any(k is not None for k in c.keys)
        for c in columns
    ]
    head = "".join(f'<th scope="col">{esc(c.header)}</th>' for c in columns)
    rows = []
    count = len(columns[0].texts) if columns else 0
    for i in range(count):
        cls = _STATUS_CLASS.get(row_classes[i], "") if row_classes else ""
        cells = "".join(
            _cell(c.texts[i], c.keys[i], numeric[j], "status" if c.header == "status" else "")
            for j, c in enumerate(columns)
        )
        rows.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f'<table class="sortable"{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _figure(uri: str, alt: str, caption: str) -> str:
    return f'<figure><img src="{esc(uri)}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>'


def _unique_labels(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as a display label within each dataset and model, suffixed with the config id where
    one label covers several configurations there (same labels, settings outside the label differ)."""
    within = ["dataset", "model", column]
    pairs = frame[[*within, "config"]].drop_duplicates()
    ambiguous = set(map(tuple, pairs.loc[pairs.duplicated(within, keep=False), within].to_numpy()))
    keys = list(zip(*(frame[c] for c in within)))
    return pd.Series(
        [f"{k[-1]} ({c})" if k in ambiguous else k[-1] for k, c in zip(keys, frame["config"])],
        index=frame.index,
        dtype=object,
    )


# ---------------------------------------------------------------- sections


def _definitions() -> str:
    items = "".join(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>" for term, text in stats.DEFINITIONS)
    return f'<details><summary>How to read these numbers</summary><dl class="defs">{items}</dl></details>'


def _leaderboards(board: pd.DataFrame) -> str:
    if board.empty:
        return "<p>No results in the store yet.</p>"
    parts = []
    for d, (dataset, by_dataset) in enumerate(board.groupby("dataset", sort=True)):
        parts.append(f"<h3>{esc(dataset)}</h3>")
        for m, (metric, group) in enumerate(by_dataset.groupby("metric", sort=True)):
            direction = group["direction"].iloc[0]
            parts.append(f'<h4>{esc(metric)} <span class="muted">({esc(direction)})</span></h4>')
            table = sortable_table(board_columns(group), list(group["status"]), f"board-{d}-{m}")
            parts.append(f'<div class="scroll">{table}</div>')
    return "".join(parts)


def _curves(results: pd.DataFrame, dirs: Mapping[str, stats.Direction]) -> str:
    if results.empty:
        return "<p>No results in the store yet.</p>"
    summary = stats.generation_summary(results)
    summary["line"] = _unique_labels(summary, "policy")
    parts = []
    for dataset, by_dataset in summary.groupby("dataset", sort=True):
        parts.append(f"<h3>{esc(dataset)}</h3>")
        for model, group in by_dataset.groupby("model", sort=True):
            metrics = sorted(group["metric"].unique())
            titles = [f"{m} ({dirs.get(m, stats.Direction()).describe()})" for m in metrics]
            seeds = int(group["n"].max())
            uri = plots.curves(group, metrics, titles, lines="line")
            caption = (
                f"{dataset} / {model}: every metric across generations, one line per policy: mean over "
                f"seeds (up to {seeds}) with its 95% confidence band (Student t)."
            )
            parts.append(f"<h4>{esc(model)}</h4>" + _figure(uri, f"curves of {dataset} / {model}", caption))
    return "".join(parts)


def _gallery_cell(samples: np.ndarray | None, limits: tuple | None) -> str:
    if samples is None or not len(samples):
        return '<td class="muted">not kept</td>'
    picture = plots.mosaic(samples) if samples.ndim == 4 else plots.scatter(samples, *limits)
    return f'<td><img class="sample" src="{esc(plots.png_uri(picture))}" alt="samples"></td>'


def _galleries(store: Store, runs: pd.DataFrame) -> str:
    """Per dataset and model, a table: one row per policy, one column per shown generation."""
    if runs.empty:
        return "<p>No results in the store yet.</p>"
    first = runs.sort_values("seed").drop_duplicates(["config"])  # one run per configuration: its smallest seed
    first = first.assign(row=_unique_labels(first, "policy"))
    parts = []
    for dataset, by_dataset in first.groupby("dataset", sort=True):
        parts.append(f"<h3>{esc(dataset)}</h3>")
        for model, group in by_dataset.groupby("model", sort=True):
            generations = plots.shown_generations(int(group["generations"].max()))
            group = group.sort_values("row")
            kept = {(r.run_id, t): store.gallery(r.run_id, t) for r in group.itertuples() for t in generations}
            reference = [a.reshape(len(a), -1) for (_, t), a in kept.items() if t == generations[0] and a is not None]
            limits = plots.limits(np.concatenate(reference)) if reference and reference[0].ndim == 2 else None
            head = "".join(f"<th>generation {t}</th>" for t in generations)
            body = "".join(
                f'<tr><th scope="row">{esc(r.row)}<br><span class="muted">seed {r.seed}</span></th>'
                + "".join(_gallery_cell(kept[r.run_id, t], limits) for t in generations)
                + "</tr>"
                for r in group.itertuples()
            )
            caption = (
                "Samples kept after each shown generation, one row per policy (the smallest seed of each "
                "configuration). Points: the first two coordinates, all panels on the axes of the first "
                "generation (points outside are left out; darker pixels hold more points); images: a mosaic."
            )
            parts.append(
                f'<h4>{esc(model)}</h4><table class="gallery"><thead><tr><th>policy</th>{head}</tr></thead>'
                f'<tbody>{body}</tbody></table><p class="muted">{esc(caption)}</p>'
            )
    return "".join(parts)


def _runs_table(store: Store, run_ids: Iterable[str]) -> str:
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
                "status": status.get("status", "pending"),
                "last generation": finished[-1] if finished else None,
                "reason": status.get("reason", ""),
            }
        )
    if not rows:
        return "<p>No runs.</p>"
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


def _grids(store: Store, grid: str | None) -> str:
    grids = store.grids()
    chosen = {grid: grids[grid]} if grid in grids else grids
    if not chosen:
        return "<p>No grid recorded in this store.</p>"
    parts = []
    for name, info in chosen.items():
        env = info.get("environment") or {}
        keys = ("python", "platform", "machine", "processor", "cpus", "executor", "started")
        machine = [(k, env.get(k)) for k in keys]
        machine_rows = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(fmt(v))}</td></tr>' for k, v in machine)
        packages = sorted((env.get("packages") or {}).items())
        package_rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in packages)
        parts.append(
            f'<h3>grid {esc(name)} <span class="muted">({esc(info.get("path", ""))}, '
            f"{len(info.get('runs', []))} runs)</span></h3>"
            f"<pre>{esc(info.get('source', ''))}</pre>"
            f"<h4>machine</h4><table>{machine_rows}</table>"
            f"<h4>package versions</h4><table><thead><tr><th>package</th><th>version</th></tr></thead>"
            f"<tbody>{package_rows}</tbody></table>"
        )
    return "".join(parts)


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
    statuses = pd.Series([(store.status(r) or {}).get("status", "pending") for r in run_ids]).value_counts()
    summary = ", ".join(f"{n} {s}" for s, n in statuses.items()) or "none"
    sections = [
        ("leaderboard", "Leaderboards", _definitions() + _leaderboards(board)),
        ("curves", "Metrics across generations", _curves(results, dirs)),
        ("galleries", "Samples across generations", _galleries(store, runs)),
        ("runs", "Runs", _runs_table(store, run_ids)),
        ("grid", "Grid and machine", _grids(store, grid)),
    ]
    nav = "".join(f'<a href="#{ident}">{esc(heading)}</a>' for ident, heading, _ in sections)
    body = "".join(
        f'<section id="{ident}"><h2>{esc(heading)}</h2>{content}</section>' for ident, heading, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p>{len(run_ids)} runs ({esc(summary)}), result schema {SCHEMA_VERSION}. "
        "Every table sorts by a click on its header.</p>"
        f"<nav>{nav}</nav>{body}<script>{_JS}</script></body></html>\n"
    )
