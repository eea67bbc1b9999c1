"""Pictures of the HTML report as PNG data URIs: nothing is written to a file, nothing has a URL.

Curves are matplotlib figures (``matplotlib.figure.Figure`` on the Agg canvas, not pyplot, so no global
backend or state is touched), drawn with mathtext off: a ``$`` in a plugin's name is text. Galleries
are drawn straight into pixel arrays and PNG-encoded, which is much faster than one axes per panel.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmark.run.loop import GALLERY_IMAGES  # every image the store keeps is shown

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

#: At most this many generations per gallery row (evenly spaced, first and last included).
GALLERY_COLUMNS = 6
#: As many for decoded text, whose cells are wider than a picture: the table then fits a 1280 px page.
GALLERY_TEXT_COLUMNS = 4
#: Axis limits of a scatter panel: (xmin, xmax), (ymin, ymax).
Limits = tuple[tuple[float, float], tuple[float, float]]
_STYLE: dict[RcKeyType, Any] = {"text.parse_math": False, "font.size": 10, "axes.titlesize": 11}
_DPI = 90
#: PNG metadata: no "Software" entry, so a picture's bytes do not depend on the matplotlib version.
_METADATA: dict[str, Any] = {"Software": None}


def shown_generations(last: int, columns: int = GALLERY_COLUMNS) -> list[int]:
    """Generations a gallery shows: all of 0..last, or ``columns`` of them evenly spaced with both ends."""
    if last + 1 <= columns:
        return list(range(last + 1))
    return sorted({int(g) for g in np.rint(np.linspace(0, last, columns))})


#: One colour per line across the whole report, assigned in the report's fixed order of lines (Tableau 10, then
#: the lighter Tableau 20 shades): the same policy has the same colour in every panel, legend and table.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
#: Values spanning more than this ratio (and all positive) are drawn on a log scale.
LOG_SPAN = 100.0


def natural_key(text: str) -> list[tuple[int, float | str]]:
    """Sort key that orders numbers inside labels by value: ``mix[lambda=2.0]`` before ``mix[lambda=10.0]``."""
    parts = re.split(r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)", text)
    return [(0, float(p)) if i % 2 else (1, p) for i, p in enumerate(parts) if p]


def line_colours(labels: Iterable[str]) -> dict[str, str]:
    """The report's colour of each line label, in natural order (so swept values come in order)."""
    ordered = sorted(set(labels), key=natural_key)
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(ordered)}


@dataclass(frozen=True)
class Panel:
    """One metric's panel: its title, the bounds of its values (None: unbounded) and per line the generation
    from which that configuration is worse (marked on its curve)."""

    metric: str
    title: str
    low: float | None = None
    high: float | None = None
    worse_from: Mapping[str, int] = field(default_factory=dict)


def bounds(higher_is_better: bool | None, optimum: float | None) -> tuple[float | None, float | None]:
    """Where a metric's values end, from its declared direction: a lower-is-better metric cannot go below its
    optimum (a distance is >= 0), a higher-is-better one above it (a coverage is <= 1); else no bound is known."""
    if optimum is None or higher_is_better is None:
        return None, None
    return (optimum, None) if higher_is_better is False else (None, optimum)


def _log_scale(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and bool((finite > 0).all()) and float(finite.max() / finite.min()) > LOG_SPAN


def curves(frame: pd.DataFrame, panels: Sequence[Panel], colours: Mapping[str, str], lines: str = "line") -> str:
    """``curve_figure`` as a PNG data URI (with a palette: a third of the bytes)."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = curve_figure(frame, panels, colours, lines)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata=_METADATA)
    return "data:image/png;base64," + base64.b64encode(_quantized(buffer.getvalue())).decode("ascii")


def curve_figure(
    frame: pd.DataFrame, panels: Sequence[Panel], colours: Mapping[str, str], lines: str = "line"
) -> Figure:
    """One panel per metric: mean over seeds across generations, one line per ``lines`` value, 95% CI band
    clipped at the metric's bounds, a cross where the configuration becomes worse; log scale where the means
    span more than ``LOG_SPAN`` and are positive. The legend is the page's (colours are ``colours``).

    ``frame`` has columns metric, generation, mean, ci_low, ci_high and ``lines``. The layout is fixed
    (constrained layout would double the drawing time). Draw it inside ``rc_context(_STYLE)``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    panel, title = 2.9, 0.4  # inches: 4.2 x 2.9 in panels are 378 x 261 px
    width, height = 4.2 * columns, rows * (panel + title) + 0.45
    fig = Figure(figsize=(width, height), dpi=_DPI)
    fig.subplots_adjust(
        left=0.75 / width,
        right=1 - 0.15 / width,
        top=1 - title / height,
        bottom=0.5 / height,
        wspace=0.32,
        hspace=title / panel + 0.2,
    )
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, spec in zip(axes, panels, strict=False):  # the axes left over are hidden below
        shown = frame[frame["metric"] == spec.metric]
        log = _log_scale(shown["mean"].to_numpy(dtype=float))
        floor = float(shown["mean"][shown["mean"] > 0].min()) / 10 if log else -np.inf
        low_bound = max(floor, -np.inf if spec.low is None else spec.low)
        high_bound = np.inf if spec.high is None else spec.high
        for name, group in shown.groupby(lines, sort=False):
            group = group.sort_values("generation")
            x = group["generation"].to_numpy(dtype=float)
            y = group["mean"].to_numpy(dtype=float)
            colour = colours[str(name)]
            ax.plot(x, y, marker="o", markersize=3, linewidth=1.6, color=colour)
            low, high = group["ci_low"].to_numpy(dtype=float), group["ci_high"].to_numpy(dtype=float)
            if np.isfinite(low).any():
                low, high = np.clip(low, low_bound, high_bound), np.clip(high, low_bound, high_bound)
                ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)
            start = spec.worse_from.get(str(name))
            if start is not None and (x == start).any():
                at = y[x == start]
                ax.plot([start], at[:1], marker="X", markersize=10, color=colour, markeredgecolor="black")
        if log:  # tick labels as plain numbers: mathtext is off, so the default 10^k labels would show as markup
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(spec.title)
        ax.set_xlabel("generation", labelpad=1)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return fig


def _quantized(png: bytes, colours: int = 128) -> bytes:
    """A figure's PNG with an adaptive palette: a third of the bytes, no visible change on flat-colour plots."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as picture:
        reduced = picture.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    reduced.save(out, format="PNG", optimize=True)
    return out.getvalue()


def png_uri(picture: np.ndarray) -> str:
    """An (H, W) or (H, W, 3) float picture in [0, 1] as a PNG data URI (encoded without drawing a figure):
    grey as 8-bit grey, colour with a palette (a scatter has a few dozen colours: half the bytes of RGB)."""
    from PIL import Image

    pixels = np.rint(np.clip(np.nan_to_num(picture), 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)  # uint8: grey for (H, W), RGB for (H, W, 3)
    if pixels.ndim == 3:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mosaic(images: np.ndarray) -> np.ndarray:
    """Images (n, c, h, w) in [0, 1] tiled into one (H, W) or (H, W, 3) picture, a 1-pixel gap between tiles."""
    images = np.clip(np.nan_to_num(images[:GALLERY_IMAGES].astype(np.float32)), 0, 1)
    n, c, h, w = images.shape
    side = int(np.ceil(np.sqrt(n)))
    canvas = np.ones((c, side * (h + 1) - 1, side * (w + 1) - 1), dtype=np.float32)
    for i, picture in enumerate(images):
        r, q = divmod(i, side)
        canvas[:, r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = picture
    if c == 1:
        return canvas[0]
    return np.moveaxis(canvas[:3] if c >= 3 else np.repeat(canvas[:1], 3, axis=0), 0, -1)


def limits(points: np.ndarray) -> Limits:
    """Axis limits around the central 99% of ``points`` (n, d) on the first two coordinates, padded 15%."""
    points = points[:, :2] if points.shape[1] >= 2 else np.repeat(points[:, :1], 2, axis=1)
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return (-1.0, 1.0), (-1.0, 1.0)
    low, high = np.quantile(points, 0.005, axis=0), np.quantile(points, 0.995, axis=0)
    pad = 0.15 * np.maximum(high - low, 1e-9)
    return (float(low[0] - pad[0]), float(high[0] + pad[0])), (float(low[1] - pad[1]), float(high[1] + pad[1]))


_INK = np.array([0.12, 0.34, 0.62])  # the colour of points and bars


def _frame(size: int) -> np.ndarray:
    canvas = np.ones((size, size, 3))
    canvas[[0, -1], :, :] = canvas[:, [0, -1], :] = 0.75
    return canvas


def scatter(points: np.ndarray, xlim: tuple[float, float], ylim: tuple[float, float], size: int = 150) -> np.ndarray:
    """Points (n, d) drawn on their first two coordinates as a (size, size, 3) picture; denser pixels are darker.

    Points outside the limits are left out (so drift out of the frame shows as missing points). 1-D data
    becomes a histogram over ``xlim``.
    """
    canvas = _frame(size)
    points = points.reshape(len(points), -1).astype(np.float64)
    points = points[np.isfinite(points).all(axis=1)]
    if points.shape[1] == 1:
        counts, _ = np.histogram(points[:, 0], bins=size - 2, range=xlim)
        heights = np.round(counts / max(counts.max(), 1) * (size - 4)).astype(int)
        for x, height in enumerate(heights):
            if height:
                canvas[size - 1 - height : size - 1, x + 1] = _INK
        return canvas
    col = (points[:, 0] - xlim[0]) / (xlim[1] - xlim[0]) * (size - 3) + 1
    row = (ylim[1] - points[:, 1]) / (ylim[1] - ylim[0]) * (size - 3) + 1
    keep = (col >= 1) & (col <= size - 2) & (row >= 1) & (row <= size - 2)
    col, row = np.round(col[keep]).astype(int), np.round(row[keep]).astype(int)
    hits = np.zeros((size, size))
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):  # 2x2-pixel dots
        np.add.at(hits, (np.minimum(row + dr, size - 2), np.minimum(col + dc, size - 2)), 1.0)
    ink = 1 - np.exp(-1.2 * hits)  # opacity grows with the number of dots on a pixel
    return canvas * (1 - ink[..., None]) + _INK * ink[..., None]
