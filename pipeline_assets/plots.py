"""Small PNG plots for metadata.

Per-trial charts are drawn with Pillow: one trial's equity chart costs about a millisecond,
where matplotlib costs 40–80 ms, which over a thousand trials and several stages is minutes.
One-off charts (shared assets, reports) use matplotlib for its axes and legends.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pipeline_assets.metadata import figure_png

_SIZE = (6.0, 2.6)
#: Long series are thinned to at most this many points: at these sizes a 4,000-bar curve and
#: its thinned copy look the same, and drawing costs scale with the points.
_MAX_POINTS = 600
_WIDTH, _PANEL, _MARGIN = 480, 120, 6
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189))
_GREY, _RED, _TEXT = (200, 200, 200), (214, 39, 40), (40, 40, 40)


def _thin(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, values.size // _MAX_POINTS)
    index = np.arange(0, values.size, step)
    return index, values[index]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def _panel_points(values: np.ndarray, low: float, high: float, top: int, n: int) -> list[tuple[float, float]]:
    index, thinned = _thin(values)
    span = high - low or 1.0
    xs = _MARGIN + index / max(1, n - 1) * (_WIDTH - 2 * _MARGIN)
    ys = top + _MARGIN + (1.0 - (thinned - low) / span) * (_PANEL - 2 * _MARGIN)
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def lines_png(
    series: Sequence[tuple[str, np.ndarray]], *, title: str = "", drawdown_of: np.ndarray | None = None
) -> bytes:
    """Line chart of ``series`` (label, values) with an optional drawdown panel below."""
    panels = 2 if drawdown_of is not None else 1
    image = Image.new("RGB", (_WIDTH, _PANEL * panels + 14), "white")
    draw = ImageDraw.Draw(image)
    top = 14
    stacked = np.concatenate([np.asarray(v, dtype=float) for _, v in series])
    low, high = float(stacked.min()), float(stacked.max())
    n = max(len(v) for _, v in series)
    draw.rectangle((0, top, _WIDTH - 1, top + _PANEL - 1), outline=_GREY)
    legend = []
    for (label, values), colour in zip(series, _COLOURS, strict=False):
        draw.line(_panel_points(np.asarray(values, dtype=float), low, high, top, n), fill=colour, width=1)
        legend.append(label)
    draw.text((2, 1), f"{title}  {' / '.join(legend)}  [{low:.3g} .. {high:.3g}]".strip(), fill=_TEXT)
    if drawdown_of is not None:
        equity = np.asarray(drawdown_of, dtype=float)
        drawdown = -(1.0 - equity / np.maximum.accumulate(equity))
        top2 = top + _PANEL
        draw.rectangle((0, top2, _WIDTH - 1, top2 + _PANEL - 1), outline=_GREY)
        points = _panel_points(drawdown, float(drawdown.min()), 0.0, top2, equity.size)
        draw.polygon([(points[0][0], top2 + _MARGIN), *points, (points[-1][0], top2 + _MARGIN)], fill=(240, 150, 150))
        draw.text((4, top2 + _PANEL - 14), f"drawdown, max {-drawdown.min():.1%}", fill=_RED)
    return _png(image)


def bars_png(values: np.ndarray, *, label: str, threshold: float | None = None, bins: int = 30) -> bytes:
    """Histogram of ``values`` with an optional threshold marker."""
    values = np.asarray(values, dtype=float)
    counts, edges = np.histogram(values, bins=bins)
    image = Image.new("RGB", (_WIDTH, _PANEL + 28), "white")
    draw = ImageDraw.Draw(image)
    top, height = 14, _PANEL
    width = (_WIDTH - 2 * _MARGIN) / bins
    peak = max(1, int(counts.max()))
    for i, count in enumerate(counts):
        x0 = _MARGIN + i * width
        y0 = top + height - count / peak * (height - _MARGIN)
        draw.rectangle((x0, y0, x0 + width - 1, top + height), fill=_COLOURS[0])
    if threshold is not None and edges[0] <= threshold <= edges[-1]:
        x = _MARGIN + (threshold - edges[0]) / (edges[-1] - edges[0] or 1.0) * (_WIDTH - 2 * _MARGIN)
        draw.line([(x, top), (x, top + height)], fill=_RED, width=2)
    draw.text((2, 1), f"{label}: {values.size} values, max count {peak}", fill=_TEXT)
    draw.text((2, top + height + 2), f"{edges[0]:.3g}", fill=_TEXT)
    draw.text((_WIDTH - 60, top + height + 2), f"{edges[-1]:.3g}", fill=_TEXT)
    return _png(image)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported only by the few charts that use it:
    every run worker imports this module, and matplotlib costs tens of MiB per process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def price_windows_png(windows: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """Close prices of consecutive windows, each in its own colour (matplotlib, drawn once)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=_SIZE)
    offset = 0
    for name, close in windows:
        index, values = _thin(close)
        ax.plot(index + offset, values, linewidth=0.8, label=name)
        offset += close.size
    ax.set_xlabel("bar")
    ax.set_ylabel("close")
    ax.legend(loc="upper left", fontsize=7)
    try:
        return figure_png(fig)
    finally:
        plt.close(fig)


def funnel_png(stages: Sequence[tuple[str, int]]) -> bytes:
    """Horizontal bars of trial counts per stage (matplotlib, drawn once per report)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=_SIZE)
    names = [name for name, _ in stages][::-1]
    counts = [count for _, count in stages][::-1]
    ax.barh(names, counts, color="tab:blue")
    for y, count in enumerate(counts):
        ax.text(count, y, f" {count}", va="center", fontsize=7)
    ax.set_xlabel("trials")
    try:
        return figure_png(fig)
    finally:
        plt.close(fig)
