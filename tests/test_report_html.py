"""index.html from a real store: self-contained, every plugin and grid string escaped, tables, curves, galleries.

The store comes from a tiny grid run in-process with a plugin whose policy and metric are named
``<script>alert(1)</script>`` and whose image dataset exercises the image galleries. The browser test
(test_report_browser.py) opens the page this module builds.
"""

from __future__ import annotations

import base64
import fnmatch
import importlib.util
import io
import re
import shutil
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from benchmark.api.plugins import build_registry
from benchmark.api.registry import Registry
from benchmark.report import html, plots, stats
from benchmark.report.leaderboard import leaderboard_frame, results_frame, summaries, write_report
from benchmark.run.harness import run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store

XSS = "<script>alert(1)</script>"
FAILURE = 'RuntimeError: <img src=x onerror=alert(4)> & "quoted"'
GRID_NAME = 'tiny"<b>&grid'

PLUGIN = '''
"""A test plugin: a tiny image dataset and family, and a policy and a metric with hostile names."""
import numpy as np
import pandas as pd

from benchmark import Dataset, Metric, Model, ModelFamily, Param, Policy, TrainingSet, hookimpl

XSS = "<script>alert(1)</script>"


class Squares(Dataset):
    """1x6x6 images of a bright 3x3 square at a random place."""

    name = "tiny-squares"
    kind = "image"

    def draw(self, n, rng):
        images = np.zeros((n, 1, 6, 6))
        rows, cols = rng.integers(0, 4, size=(2, n))
        for i in range(n):
            images[i, 0, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3] = 1.0
        return images


class PixelModel(Model):
    def __init__(self, shape):
        self.shape, self.mean, self.std = shape, np.zeros(shape), np.ones(shape)

    def fit(self, data, *, warm_start, rng):
        self.mean, self.std = data.mean(axis=0), data.std(axis=0)
        return {}

    def sample(self, n, rng):
        return np.clip(self.mean + self.std * rng.standard_normal((n, *self.shape)), 0, 1)

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        self.mean, self.std = np.asarray(state["mean"]), np.asarray(state["std"])


class PixelGaussian(ModelFamily):
    """Independent Gaussian pixels, clipped to [0, 1]."""

    name = "pixel-gaussian"
    data_kinds = ("image",)

    def create(self, data, context):
        return PixelModel(data.sample_shape)


class Hostile(Policy):
    """Fully synthetic, under a hostile name."""

    name = XSS
    parameters = {"loud": Param(False, bool, "a boolean parameter")}

    def build(self, step):
        n = len(step.real)
        return TrainingSet(step.sample(n), {"synthetic": n})


class HostileMetric(Metric):
    """Spread of the samples, under a hostile name."""

    name = XSS
    higher_is_better = True

    def compute(self, evaluation):
        return float(evaluation.samples.std())


@hookimpl
def register_datasets(register):
    register(Squares)


@hookimpl
def register_model_families(register):
    register(PixelGaussian)


@hookimpl
def register_policies(register):
    register(Hostile)


@hookimpl
def register_metrics(register):
    register(HostileMetric)
'''

GRID = f"""# a comment that closes the pre: </pre><script>alert(3)</script>
name = '{GRID_NAME}'
description = "<img src=x onerror=alert(2)>"
generations = 3
seeds = [0, 1, 2]
n_real = 64
n_test = 64
n_eval = 64

[[datasets]]
name = "eight-gaussians"

[[datasets]]
name = "tiny-squares"

[[models]]
name = "gaussian"

[[models]]
name = "pixel-gaussian"

[[policies]]
name = "mix"
params = {{ lambda = 0.5 }}

[[policies]]
name = "{XSS}"
params = {{ loud = true }}

[[metrics]]
name = "mean-distance"

[[metrics]]
name = "variance-ratio"

[[metrics]]
name = "{XSS}"
"""


def load_plugin(folder: Path) -> ModuleType:
    """The hostile plugin as a module object (not put on sys.path, so nothing leaks into other tests)."""
    path = folder / "hostile_plugin.py"
    path.write_text(PLUGIN, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("hostile_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_store(folder: Path) -> tuple[Path, Registry]:
    """Run the tiny grid into ``folder/store`` with the hostile plugin; return the store and that registry."""
    registry = build_registry([load_plugin(folder)], autoload=True)
    assert not registry.failures, registry.failures
    grid = parse_grid(tomllib.loads(GRID), registry, where="tiny.toml", source=GRID)
    store = folder / "store"
    summary = run_grid(grid, Store(store), registry.get("executor", "inline").component({}), registry, progress=False)
    assert summary.counts == {"done": 12}, summary.describe()
    fail_one_run(Store(store))
    return store, registry


def fail_one_run(store: Store) -> str:
    """Leave one run as the harness leaves a run that raised in generation 2, with a hostile reason; its id."""
    run_id = next(
        r
        for r in store.run_ids()
        if (spec := store.spec(r))["dataset"]["name"] == "tiny-squares"
        and spec["policy"]["name"] == "mix"
        and spec["seed"] == 2
    )
    for t in (2, 3):
        shutil.rmtree(store.run_dir(run_id) / f"gen-{t:04d}")
    store.finish(run_id, "failed", generations=3, reason=FAILURE)
    return run_id


class Page(HTMLParser):
    """What the tests look at in a page: elements with attributes, and the text a reader sees."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.script = ""
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script += data
        else:
            self.text.append(data)

    def tags(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.elements if tag == name]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Registry]:
    return build_store(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page(built, tmp_path_factory) -> tuple[str, Page]:
    store, registry = built
    out = tmp_path_factory.mktemp("out")
    write_report(store, out, grid=GRID_NAME, registry=registry)
    text = (out / "index.html").read_text(encoding="utf-8")
    return text, Page(text)


def test_page_is_self_contained(page):
    text, parsed = page
    for tag, attrs in parsed.elements:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "poster", "srcset", "data"):
                assert value is not None and value.startswith(("data:", "#")), (tag, name, value[:80])
    lowered = text.lower()
    for needle in ("http:", "https:", "ftp:", "file:", "url(", "@import", "<iframe", "<object", "<embed"):
        assert needle not in lowered, needle
    assert len(parsed.tags("script")) == 1 and not parsed.tags("script")[0]  # ours: inline, no src
    ids = [attrs["id"] for _, attrs in parsed.elements if "id" in attrs]
    assert len(ids) == len(set(ids))  # in-page links and the script's lookups need unique ids
    for asset in ("report.css", "report.js"):  # inlined as the package files are (escaping would break quotes)
        assert (resources.files("benchmark.report") / "assets" / asset).read_text(encoding="utf-8") in text


def test_a_wheel_carries_the_templates_and_assets():
    """Every file the page is built from matches the package-data globs of pyproject.toml."""
    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    package = root / "benchmark" / "report"
    files = [
        p.relative_to(package).as_posix() for folder in ("assets", "templates") for p in (package / folder).iterdir()
    ]
    assert {"assets/report.css", "assets/report.js", "templates/index.html.j2"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs["benchmark.report"])] == []


def test_a_gallery_panel_without_generation_0_samples_uses_its_own_axes():
    """Points are drawn on the axes of generation 0; when that kept no samples, on their own instead."""
    points = np.random.default_rng(0).normal(size=(64, 2))
    panel = decode(html._picture(points, None))
    assert panel.shape[:2] == (150, 150) and (panel[1:-1, 1:-1, :3] < 0.9).any()  # dots inside the frame
    assert html._picture(None, None) is None and html._picture(points[:0], None) is None  # "not kept"


def test_every_plugin_and_grid_string_is_escaped(page):
    text, parsed = page
    # no element and no event handler came from a plugin or the grid file
    assert {tag for tag, _ in parsed.elements} <= {
        "html",
        "head",
        "meta",
        "link",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "h3",
        "h4",
        "p",
        "nav",
        "a",
        "section",
        "details",
        "summary",
        "dl",
        "dt",
        "dd",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "span",
        "br",
        "figure",
        "figcaption",
        "img",
        "pre",
        "script",
        "ul",
        "li",
        "select",
        "option",
    }
    assert not [name for _, attrs in parsed.elements for name in attrs if name.startswith("on")]
    assert "alert" not in parsed.script
    shown = "".join(parsed.text)
    assert shown.count(XSS) >= 10  # leaderboard headings, policy cells, curve titles, gallery rows, the grid source
    assert f"{XSS}[loud=True]" in shown
    assert f"grid {GRID_NAME}" in shown
    assert "<img src=x onerror=alert(2)>" in shown and "</pre><script>alert(3)</script>" in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert FAILURE in shown  # the failed run's reason, in the runs table


def test_a_failed_run_is_reported_with_what_it_stored(built):
    store, with_plugin = built
    _, runs, board = summaries(results_frame(Store(store)), with_plugin)
    failed = runs[runs["run_status"] == "failed"]
    assert set(failed["status"]) == {"failed"} and set(failed["generations"]) == {1}
    assert len(failed) == 3 and set(failed["seed"]) == {2}  # one run, three metrics
    mix = board[(board["dataset"] == "tiny-squares") & (board["policy"] == "mix[lambda=0.5]")]
    assert set(mix["status_counts"].str.contains("1 failed")) == {True}
    assert set(mix["generations"]) == {3} and set(mix["seeds"]) == {3}
    # one failed seed of three: the two others decide the status, with an interval
    assert not mix["status"].isin(["failed", "diverged"]).any()
    assert not mix["note"].str.contains(stats.ONE_SEED, regex=False).any()


def test_the_page_states_the_rules_it_applies(page):
    """Every definition verbatim, and the columns the status is decided from beside it."""
    _, parsed = page
    shown = "".join(parsed.text)
    for term, definition in stats.DEFINITIONS:
        assert term in shown and definition in shown
    headers = [t for t in parsed.text if t in ("level", "tolerance", "status", "worse from")]
    assert set(headers) == {"level", "tolerance", "status", "worse from"}


def test_tables_plots_and_galleries_are_present(page):
    text, parsed = page
    tables = [a for a in parsed.tags("table") if a.get("class") == "sortable"]
    # leaderboards: 2 datasets x 3 metrics, and the runs table
    assert len(tables) == 2 * 3 + 1
    assert {a.get("id") for a in tables} >= {"run-table", "board-0-0", "board-1-2"}
    images = [a["src"] for a in parsed.tags("img")]
    assert all(src.startswith("data:image/png;base64,") for src in images)
    curves = [a for a in parsed.tags("img") if a.get("alt", "").startswith("curves of")]
    assert len(curves) == 2  # one figure per dataset and model
    samples = [decode(a["src"]) for a in parsed.tags("img") if a.get("class") == "sample"]
    # 2 datasets x 1 model x 2 policies x 4 generations
    assert len(samples) == 16
    shapes = sorted({s.shape[:2] for s in samples})
    # scatter panels are 150 px; 64 images of 6x6 tile 8 to a side with 1-px gaps: 8 * 7 - 1 = 55 px
    assert shapes == [(55, 55), (150, 150)]
    for heading in (
        "Leaderboards",
        "Metrics across generations",
        "Samples across generations",
        "Runs",
        "Grid and machine",
        "package versions",
        "machine",
    ):
        assert f">{heading}<" in text


def decode(uri: str) -> np.ndarray:
    from matplotlib import image

    return image.imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")


def test_directions_fall_back_when_the_plugin_is_gone(built, registry):
    """The store alone rebuilds the report; without the plugin its metric's direction is unknown (and a change
    either way counts: it is still ranked by stability)."""
    store, with_plugin = built
    results = results_frame(Store(store))
    for plugin, direction in ((with_plugin, "higher is better"), (registry, "direction unknown")):
        board = leaderboard_frame(results, plugin)
        hostile = board[board["metric"] == XSS]
        assert set(hostile["direction"]) == {direction}
        assert hostile["rank"].notna().all()
        assert board.loc[board["metric"] == "mean-distance", "rank"].notna().all()


@pytest.mark.slow
def test_cli_report_rebuilds_from_the_store(built, run_cli, tmp_path):
    store, _ = built
    out = tmp_path / "cli-out"
    result = run_cli(["report", "--store", store, "--out", out, "--grid", GRID_NAME])
    assert result.code == 0, result.err
    assert result.out.split() == [
        str(out / n) for n in ("results.csv", "runs.csv", "leaderboard.csv", "leaderboard.md", "index.html")
    ]


def test_the_page_opens_with_the_question_and_the_answer(page, built):
    """The grid's description first (escaped), then per dataset a model x policy matrix of the headline metric
    (the grid's first metric with a direction: mean-distance) with each cell's verdict and signed level."""
    text, _ = page
    assert text.index('class="question"') < text.index('id="answer"') < text.index('id="leaderboard"')
    assert "&lt;img src=x onerror=alert(2)&gt;" in text.split('class="question"', 1)[1].split("</p>", 1)[0]
    store, registry = built
    board = leaderboard_frame(results_frame(Store(store), GRID_NAME), registry)
    headline = board[(board["metric"] == "mean-distance") & (board["dataset"] == "eight-gaussians")]
    view = text.split('<div class="view" data-view="0">', 1)[1].split("</table>", 1)[0]
    assert "mean-distance (lower is better)" in view
    for row in headline.to_dict("records"):  # every configuration's cell: its verdict and its level, signed
        cell = f'<td class="verdict {row["status"]}" '
        assert cell in view and f'<span class="level">{row["level_mean"]:+.3g}</span>' in view
        runs = f'<span class="runs">runs: {row["status_counts"]}</span>'  # what each seed says, under "inconclusive"
        assert (runs in view) == (row["status"] == "inconclusive")
    findings_text = text.split('<ul class="findings">', 1)[1].split("</ul>", 1)[0]
    assert "eight-gaussians, mean-distance (lower is better): 2 configurations" in findings_text


def test_one_colour_per_policy_in_the_whole_page(page):
    """Every label carrying data-policy (matrix heads, curve legends, gallery rows) has the same swatch colour
    wherever it appears, and two policies never share one."""
    text, _ = page
    pairs = re.findall(r'data-policy="([^"]*)"><span class="swatch" style="background-color: (#[0-9a-f]{6})"', text)
    seen: dict[str, set[str]] = {}
    for label, colour in pairs:
        seen.setdefault(label, set()).add(colour)
    assert len(seen) == 2 and all(len(c) == 1 for c in seen.values())
    assert len({c for cs in seen.values() for c in cs}) == 2
    assert len(pairs) >= 2 * (2 + 2 + 2)  # per dataset: matrix heads, a curve legend, gallery rows


def test_colours_follow_the_natural_order_of_labels():
    """Swept values get colours in the order of their values (2 before 10), whatever order they come in."""
    colours = plots.line_colours(["mix[lambda=10.0]", "replace", "mix[lambda=2.0]", "accumulate"])
    order = ["accumulate", "mix[lambda=2.0]", "mix[lambda=10.0]", "replace"]
    assert colours == dict(zip(order, plots.PALETTE, strict=False))


def _figure_frame(values: dict[str, list[float]], half_width: float) -> pd.DataFrame:
    rows = [
        {"metric": "d", "line": line, "generation": t, "mean": v, "ci_low": v - half_width, "ci_high": v + half_width}
        for line, series in values.items()
        for t, v in enumerate(series)
    ]
    return pd.DataFrame(rows)


def test_curves_clip_bands_use_log_scale_mark_worse_and_keep_colours():
    import matplotlib

    frame = _figure_frame({"a": [0.01, 0.02, 0.03], "b": [0.5, 0.4, 0.3]}, half_width=1.0)
    colours = {"a": "#123456", "b": "#abcdef"}
    low, high = plots.bounds(False, 0.0)  # a distance: lower is better, optimum 0
    assert (
        (low, high) == (0.0, None)
        and plots.bounds(True, 1.0) == (None, 1.0)
        and plots.bounds(None, 1.0)
        == (
            None,
            None,
        )
    )
    with matplotlib.rc_context(plots._STYLE):
        fig = plots.curve_figure(frame, [plots.Panel("d", "d", low, high, {"b": 2})], colours)
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"  # 0.01..0.5 spans less than two decades
    band_ys = np.concatenate([np.asarray(path.vertices)[:, 1] for band in ax.collections for path in band.get_paths()])
    assert band_ys.min() == 0.0 and band_ys.max() == pytest.approx(1.5)  # clipped at 0 only: no upper bound
    marks = [line for line in ax.lines if line.get_marker() == "X"]
    assert len(marks) == 1 and np.asarray(marks[0].get_xdata())[0] == 2 and marks[0].get_color() == "#abcdef"
    assert {line.get_color() for line in ax.lines if line.get_marker() == "o"} == {"#123456", "#abcdef"}
    spanning = _figure_frame({"a": [0.001, 0.01, 1.0]}, half_width=0.5)
    with matplotlib.rc_context(plots._STYLE):
        fig = plots.curve_figure(spanning, [plots.Panel("d", "d")], colours)
    assert fig.axes[0].get_yscale() == "log"
    fig.canvas.draw()  # its tick labels are plain numbers (mathtext is off: 10^k markup would show as text)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert labels and all("$" not in t for t in labels) and "0.01" in labels


def _board_row(model: str, policy: str, config: str, status: str, level: float) -> dict:
    return {
        "dataset": "d",
        "metric": "m",
        "direction": "lower is better",
        "model": model,
        "policy": policy,
        "config": config,
        "status": status,
        "status_counts": "",
        "reference": "control",
        "level_mean": level,
        "level_ci_low": level - 0.1,
        "level_ci_high": level + 0.1,
        "drift_mean": 0.0,
        "drift_ci_low": -0.1,
        "drift_ci_high": 0.1,
        "tolerance": 0.2,
        "collapse_start": float("nan"),
    }


def test_a_grid_sweeping_two_parameters_gets_a_phase_diagram():
    """gmm components x mix lambda: a verdict and a level heatmap, lambda across, components down; replace (one
    configuration per model) sweeps only the model's parameter and gets none."""
    rows: list[dict[str, object]] = []
    params: list[dict[str, object]] = []
    for k in (2, 8):
        for lam in (0.5, 2.0, 1.0):
            config = f"c{k}-{lam}"
            status = "collapsed" if lam == 2.0 and k == 2 else "stable"
            rows.append(_board_row(f"gmm[components={k}]", f"mix[lambda={lam}]", config, status, lam * k / 10))
            params.append({"config": config, "model.components": k, "policy.lambda": lam})
        rows.append(_board_row(f"gmm[components={k}]", "replace", f"r{k}", "worse", 1.0))
        params.append({"config": f"r{k}", "model.components": k, "policy.lambda": None})
    board, results = pd.DataFrame(rows), pd.DataFrame(params)
    (dataset,) = html._answers(board, results, plots.line_colours(board["policy"]), ["m"])
    (view,) = dataset.entries
    assert view.headline and [c.label for c in view.matrix.columns][:3] == [
        "mix[lambda=0.5]",
        "mix[lambda=1.0]",
        "mix[lambda=2.0]",
    ]
    (phase,) = view.phases
    assert phase.title == "gmm / mix"
    assert [c.label for c in phase.verdicts.columns] == ["lambda=0.5", "lambda=1.0", "lambda=2.0"]
    assert [label for label, _ in phase.verdicts.rows] == ["2", "8"]
    verdicts, levels, low_levels = phase.verdicts.rows[0][1], phase.levels.rows[1][1], phase.levels.rows[0][1]
    assert [c and c.verdict for c in verdicts] == ["stable", "stable", "collapsed"]
    assert [c and c.text for c in levels] == ["+0.4", "+0.8", "+1.6"]
    shades = [c and c.shade for c in low_levels]  # levels 0.1, 0.2, 0.4 against a tolerance of 0.2
    assert shades[:2] == ["#ffffff", "#ffffff"] and shades[2] not in ("", "#ffffff")  # within it: white


def test_parameters_swept_together_are_one_axis_of_the_phase_diagram():
    """ddpm width and depth swept as pairs (a good and a weak first model) x mix lambda: one diagram, the pairs down;
    a grid whose two model parameters vary independently has three axes and gets none."""

    def phases(pairs: list[tuple[int, int]]) -> list[html.PhaseDiagram]:
        rows: list[dict[str, object]] = []
        params: list[dict[str, object]] = []
        for width, depth in pairs:
            for lam in (1.0, 4.0):
                config = f"w{width}d{depth}-{lam}"
                model = f"ddpm[depth={depth},width={width}]"
                rows.append(_board_row(model, f"mix[lambda={lam}]", config, "stable", 0.0))
                params.append({"config": config, "model.depth": depth, "model.width": width, "policy.lambda": lam})
        (dataset,) = html._answers(pd.DataFrame(rows), pd.DataFrame(params), {}, ["m"])
        (view,) = dataset.entries
        return view.phases

    (phase,) = phases([(128, 3), (16, 1)])
    assert phase.verdicts.corner == "depth,width \\ lambda"
    assert [label for label, _ in phase.verdicts.rows] == ["depth=1 width=16", "depth=3 width=128"]
    assert [c.label for c in phase.verdicts.columns] == ["lambda=1.0", "lambda=4.0"]
    assert phases([(128, 3), (16, 1), (16, 3)]) == []
