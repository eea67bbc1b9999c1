"""Pictures of the HTML report as PNG data URIs: nothing is written to a file, nothing has a URL.

Curves are matplotlib figures (``matplotlib.figure.Figure`` on the Agg canvas, not pyplot, so no global
backend or state is touched), drawn with mathtext off: a ``$`` in a plugin's name is text. Galleries
are drawn straight into pixel arrays and PNG-encoded, which is much faster than one axes per panel.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmark.run.loop import GALLERY_IMAGES  # every image the store keeps is shown

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: At most this many generations per gallery row (evenly spaced, first and last included).
GALLERY_COLUMNS = 6
#: Axis limits of a scatter panel: (xmin, xmax), (ymin, ymax).
Limits = tuple[tuple[float, float], tuple[float, float]]
_STYLE: dict[RcKeyType, Any] = {"text.parse_math": False, "font.size": 8, "axes.titlesize": 8, "legend.fontsize": 7}
_DPI = 90
#: PNG metadata: no "Software" entry, so a picture's bytes do not depend on the matplotlib version.
_METADATA: dict[str, Any] = {"Software": None}


def shown_generations(last: int, columns: int = GALLERY_COLUMNS) -> list[int]:
    """Generations a gallery shows: all of 0..last, or ``columns`` of them evenly spaced with both ends."""
    if last + 1 <= columns:
        return list(range(last + 1))
    return sorted({int(g) for g in np.rint(np.linspace(0, last, columns))})


def curves(frame: pd.DataFrame, metrics: Sequence[str], titles: Sequence[str], lines: str = "policy") -> str:
    """One panel per metric: mean over seeds across generations, one line per ``lines`` value, 95% CI band.

    ``frame`` has columns metric, generation, mean, ci_low, ci_high and ``lines``. The layout is fixed
    (constrained layout would double the drawing time).
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    names = list(dict.fromkeys(frame[lines]))
    legend_columns = min(3, len(names))
    legend_rows = -(-len(names) // legend_columns)
    panel, title, legend = 2.3, 0.35, 0.2 * legend_rows + 0.45  # inches
    width, height = 3.4 * columns, rows * (panel + title) + legend
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), dpi=_DPI)
        fig.subplots_adjust(
            left=0.6 / width,
            right=1 - 0.15 / width,
            top=1 - title / height,
            bottom=(legend + 0.1) / height,
            wspace=0.3,
            hspace=title / panel + 0.25,
        )
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
        for ax, metric, heading in zip(axes, metrics, titles, strict=False):  # the axes left over are hidden below
            for name, group in frame[frame["metric"] == metric].groupby(lines, sort=False):
                group = group.sort_values("generation")
                x = group["generation"].to_numpy(dtype=float)
                ax.plot(x, group["mean"].to_numpy(dtype=float), marker="o", markersize=3, color=colors[name])
                low, high = group["ci_low"].to_numpy(dtype=float), group["ci_high"].to_numpy(dtype=float)
                if np.isfinite(low).any():
                    ax.fill_between(x, low, high, color=colors[name], alpha=0.18, linewidth=0)
            ax.set_title(heading)
            ax.set_xlabel("generation", labelpad=1)
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
        for ax in axes[len(metrics) :]:
            ax.set_visible(False)
        handles = [Line2D([], [], color=colors[n], marker="o", markersize=3) for n in names]
        fig.legend(handles, names, loc="lower center", ncols=legend_columns, frameon=False)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata=_METADATA)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_uri(picture: np.ndarray) -> str:
    """An (H, W) or (H, W, 3) float picture in [0, 1] as a PNG data URI (encoded without drawing a figure)."""
    from matplotlib import image

    buffer = io.BytesIO()
    image.imsave(buffer, np.clip(picture, 0, 1), format="png", cmap="gray", vmin=0, vmax=1, metadata=_METADATA)
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
