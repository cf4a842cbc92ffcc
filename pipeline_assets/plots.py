"""PNG charts for metadata.

Per-trial charts (equity with drawdown and buy and hold, the stress-scenario histogram, the
paper equity) are drawn with Pillow: a few milliseconds each, where matplotlib costs 40–80 ms,
which over thousands of trials and several stages is minutes. They still read like plots: a
title, a legend naming every series, y-axis tick labels with units (equity as growth of 1,
drawdown and returns in %), a labelled x-axis (bars, or dates when timestamps are given).

Their default size fits where Dagster 1.13's UI shows a markdown image inline, at its natural
pixel size (it never scales one): a materialization's ``description`` in the asset's *Events*
tab. That detail pane is about 730 px wide in a 1280 px window (820 px at 1400) and clips a
description taller than 320 px behind a *Show more* button, so a chart is 720 px wide and at
most 270 px tall, leaving a line for the text above it. ``size=(width, height)`` draws another
size.

One-off charts (shared assets, reports) use matplotlib for its axes and legends.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline_assets.metadata import figure_png

_SIZE = (6.0, 2.6)
#: Long series are thinned to at most this many points for the matplotlib charts.
_MAX_POINTS = 600

#: Default sizes (width, height) in pixels of the Pillow charts.
LINES_SIZE = (720, 270)
LINES_SIZE_NO_DRAWDOWN = (720, 240)
BARS_SIZE = (720, 240)

_WHITE = (255, 255, 255)
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189))
_TEXT, _MUTED = (33, 37, 41), (90, 96, 104)
_AXIS, _GRID, _BASE = (140, 144, 150), (232, 234, 237), (175, 178, 184)
_RED, _DRAWDOWN_FILL = (200, 40, 40), (244, 178, 178)
_BAR = (70, 130, 190)

_TITLE_PT, _TICK_PT = 15, 12
_LEFT, _RIGHT, _TOP = 74, 16, 30  # plot area margins; _TOP leaves the title / legend row
_BOTTOM = 42  # x tick labels and the x-axis label


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_width(text: str, size: int) -> int:
    return math.ceil(_font(size).getlength(text))


@functools.lru_cache(maxsize=64)
def _rotated(text: str, size: int) -> Image.Image:
    """``text`` as a mask turned 90° counter-clockwise (a y-axis label)."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(mask).text((1 - left, 1 - top), text, font=font, fill=255)
    return mask.transpose(Image.Transpose.ROTATE_90)


@dataclass(frozen=True)
class _Panel:
    """A plot area in pixels and the data range it shows on its y-axis."""

    left: int
    top: int
    right: int
    bottom: int
    low: float
    high: float

    def y(self, values: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        return self.bottom - (values - self.low) / span * (self.bottom - self.top)


def _size(size: tuple[int, int] | None, default: tuple[int, int]) -> tuple[int, int]:
    width, height = size or default
    if width < 320 or height < 160:
        raise ValueError(f"a chart needs at least 320 x 160 pixels for its axes, got {width} x {height}")
    return int(width), int(height)


def _finite(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"cannot plot {name}: it has no values")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"cannot plot {name}: {bad} of {array.size} values are NaN or infinite")
    return array


def _nice_step(span: float, target: int) -> float:
    if not span > 0:
        return 1.0
    raw = span / max(1, target)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * magnitude * (1 + 1e-9):
            return factor * magnitude
    return 10.0 * magnitude


def _ticks(low: float, high: float, target: int, *, integer: bool = False) -> tuple[np.ndarray, float]:
    """Round tick values inside [low, high], about ``target`` of them, and their step."""
    step = _nice_step(high - low, target)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(low / step - 1e-9) * step
    ticks = np.arange(first, high + step * 1e-6, step)
    return np.round(ticks / step) * step, step  # no 0.30000000000000004


def _decimals(step: float) -> int:
    """Digits after the point that show every multiple of ``step`` (2.5 needs one)."""
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return digits if abs(round(step, digits) - step) <= step * 1e-6 else digits + 1


def _number(value: float, step: float) -> str:
    text = f"{value:.{_decimals(step)}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _percent(value: float, step: float) -> str:
    """``value`` and ``step`` are fractions (0.05 is 5 %)."""
    return f"{_number(value * 100, step * 100)} %"


def _padded(low: float, high: float, *, floor: float) -> tuple[float, float]:
    span = high - low
    if span <= 0:
        pad = max(abs(high) * 0.01, floor)
        return low - pad, high + pad
    return low - span * 0.05, high + span * 0.05


def _y_axis(
    draw: ImageDraw.ImageDraw, image: Image.Image, panel: _Panel, *, label: str, percent: bool, target: int
) -> None:
    """Grid lines, tick labels and the rotated axis label of one panel."""
    ticks, step = _ticks(panel.low, panel.high, target)
    font = _font(_TICK_PT)
    for tick, y in zip(ticks, panel.y(ticks), strict=True):
        y = round(float(y))
        draw.line([(panel.left, y), (panel.right, y)], fill=_GRID)
        text = _percent(tick, step) if percent else _number(tick, step)
        draw.text((panel.left - 6, y), text, font=font, fill=_MUTED, anchor="rm")
    mask = _rotated(label, _TICK_PT)
    if mask.height <= panel.bottom - panel.top + 12:  # a label longer than a small panel is left out
        x, y = 4, (panel.top + panel.bottom - mask.height) // 2
        image.paste(_MUTED, (x, y, x + mask.width, y + mask.height), mask)
    draw.rectangle((panel.left, panel.top, panel.right, panel.bottom), outline=_AXIS)


def _columns(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Index positions and values of a curve reduced to at most two points per pixel column.

    Each column keeps its minimum and its maximum, in the order they occur: a 50,000-bar curve
    keeps every peak and trough (a drawdown's bottom is never thinned away) and costs what a
    ~1,500-point curve costs.
    """
    n = values.size
    if n <= 2 * width:
        return np.arange(n, dtype=float), values
    per = math.ceil(n / width)
    columns = math.ceil(n / per)
    padded = np.concatenate([values, np.full(columns * per - n, values[-1])]).reshape(columns, per)
    low_at, high_at = padded.argmin(axis=1), padded.argmax(axis=1)
    rows = np.arange(columns)
    low, high = padded[rows, low_at], padded[rows, high_at]
    low_first = low_at <= high_at
    first = np.where(low_first, low, high)
    second = np.where(low_first, high, low)
    centre = np.minimum(rows * per + (per - 1) / 2.0, n - 1)
    return np.repeat(centre, 2), np.column_stack([first, second]).ravel()


def _x_pixels(index: np.ndarray, n: int, left: int, right: int) -> np.ndarray:
    if n <= 1:
        return np.full(index.shape, (left + right) / 2.0)
    return left + index / (n - 1) * (right - left)


def _curve(draw: ImageDraw.ImageDraw, panel: _Panel, values: np.ndarray, n: int, colour: tuple, width: int) -> None:
    index, reduced = _columns(values, panel.right - panel.left)
    xs = _x_pixels(index, n, panel.left, panel.right)
    ys = panel.y(reduced)
    if values.size == 1:
        x, y = float(xs[0]), float(ys[0])
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        return
    draw.line(np.column_stack([xs, ys]).ravel().tolist(), fill=colour, width=width)


def _as_datetimes(timestamps: Any, n: int) -> np.ndarray:
    """``timestamps`` as UTC ``datetime64[s]``; aware datetimes are converted to UTC."""
    array = np.asarray(timestamps)
    if array.dtype == object:
        items = [t.astimezone(dt.UTC).replace(tzinfo=None) if getattr(t, "tzinfo", None) else t for t in array]
        array = np.asarray(items, dtype="datetime64[us]")
    array = array.astype("datetime64[s]")
    if array.ndim != 1 or array.size != n:
        raise ValueError(f"timestamps must be one per bar: {n} bars, got shape {array.shape}")
    return array


#: Calendar tick steps: (unit, count) for datetime64; months and years count calendar units.
_TIME_STEPS = (
    ("m", 15), ("m", 30), ("h", 1), ("h", 2), ("h", 3), ("h", 6), ("h", 12),
    ("D", 1), ("D", 2), ("D", 7), ("D", 14), ("M", 1), ("M", 2), ("M", 3), ("M", 6), ("Y", 1), ("Y", 2), ("Y", 5),
)  # fmt: skip
_SECONDS = {"m": 60, "h": 3600, "D": 86400, "M": 2_629_746, "Y": 31_556_952}


def _time_ticks(times: np.ndarray, target: int) -> tuple[np.ndarray, str]:
    """Calendar-aligned tick times within ``times`` and their strftime format."""
    start, end = times[0], times[-1]
    span = max(1.0, float((end - start) / np.timedelta64(1, "s")))
    fitting = [(u, c) for u, c in _TIME_STEPS if span / (_SECONDS[u] * c) <= target]
    unit, count = fitting[0] if fitting else ("Y", max(1, round(span / _SECONDS["Y"] / target)))
    first = start.astype(f"datetime64[{unit}]")
    if unit in ("M", "Y"):
        first = first + (-first.astype(np.int64)) % count
    else:
        first = first - first.astype(np.int64) % count
    ticks = np.arange(first, end.astype(f"datetime64[{unit}]") + 1, count).astype("datetime64[s]")
    ticks = ticks[(ticks >= start) & (ticks <= end)]
    if ticks.size == 0:  # a span shorter than the smallest step: label the first bar
        return times[:1], "%Y-%m-%d %H:%M"
    fmt = "%Y-%m-%d %H:%M" if unit in ("m", "h") else ("%Y-%m" if unit in ("M", "Y") else "%Y-%m-%d")
    if unit in ("m", "h") and span <= 86400:
        fmt = "%H:%M"
    return ticks, fmt


def _x_axis(draw: ImageDraw.ImageDraw, panel: _Panel, n: int, timestamps: Any, height: int) -> None:
    """Tick labels and label of the x-axis under ``panel``: bar numbers, or dates."""
    font = _font(_TICK_PT)
    plot_width = panel.right - panel.left
    if timestamps is None:
        ticks, _ = _ticks(0.0, float(max(0, n - 1)), 6, integer=True) if n > 1 else (np.zeros(1), 1.0)
        positions, labels, name = ticks, [f"{int(t):,}" for t in ticks], "bar"
    else:
        times = _as_datetimes(timestamps, n)
        tick_times, fmt = _time_ticks(times, max(2, plot_width // 100))
        positions = np.searchsorted(times, tick_times).astype(float)
        labels = [t.item().strftime(fmt) for t in tick_times]
        name = "date (UTC)" if "%d" in fmt or "%m" in fmt else "time (UTC)"
    xs = _x_pixels(np.asarray(positions, dtype=float), n, panel.left, panel.right)
    last_right = -1.0
    for x, label in zip(xs.tolist(), labels, strict=True):
        half = _text_width(label, _TICK_PT) / 2
        x_text = min(max(x, panel.left + half), panel.right - half)
        if x_text - half < last_right + 8:
            continue  # never overlap two labels
        draw.line([(x, panel.bottom), (x, panel.bottom + 4)], fill=_AXIS)
        draw.text((x_text, panel.bottom + 6), label, font=font, fill=_MUTED, anchor="mt")
        last_right = x_text + half
    draw.text(((panel.left + panel.right) / 2, height - 4), name, font=font, fill=_MUTED, anchor="md")


def _header(draw: ImageDraw.ImageDraw, width: int, title: str, legend: Sequence[tuple[str, tuple, str]]) -> None:
    """The title on the left and the legend (label, colour, "line" | "box") on the right."""
    tick_font = _font(_TICK_PT)
    x = width - _RIGHT
    for label, colour, kind in reversed(legend):
        x -= _text_width(label, _TICK_PT)
        draw.text((x, 14), label, font=tick_font, fill=_TEXT, anchor="lm")
        x -= 24
        if kind == "line":
            draw.line([(x, 14), (x + 18, 14)], fill=colour, width=3)
        else:
            draw.rectangle((x + 2, 8, x + 16, 20), fill=colour)
        x -= 14
    room = x - 8
    title = title.strip()
    while title and _text_width(title, _TITLE_PT) > room:
        title = title[:-4] + "..." if len(title) > 3 else ""
    draw.text((8, 14), title, font=_font(_TITLE_PT), fill=_TEXT, anchor="lm")


def _blend(ink: tuple[int, ...], paper: tuple[int, ...], share: float) -> tuple[int, ...]:
    return tuple(round(p + (i - p) * share) for i, p in zip(ink, paper, strict=True))


@functools.lru_cache(maxsize=1)
def _palette() -> Image.Image:
    """The charts' colours and the anti-aliasing shades between them and their background.

    Drawn in RGB, saved with this fixed palette: the PNG is half the size of an RGB one and
    quicker to encode, and white stays exactly white (shades too close to it are left out, so
    Pillow's 5-bit colour lookup cannot pick one for the background).
    """
    inks = (_TEXT, _MUTED, _AXIS, _GRID, _BASE, _RED, _DRAWDOWN_FILL, _BAR, *_COLOURS)
    shades = [_blend(ink, _WHITE, k / 7) for ink in inks for k in range(1, 8)]
    shades += [_blend(_RED, _DRAWDOWN_FILL, k / 7) for k in range(1, 7)]
    colours = [_WHITE, *dict.fromkeys(c for c in shades if min(c) < 244)]
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for colour in colours for v in colour])
    return palette


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.quantize(palette=_palette(), dither=Image.Dither.NONE).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def lines_png(
    series: Sequence[tuple[str, np.ndarray]],
    *,
    title: str = "",
    drawdown_of: np.ndarray | None = None,
    timestamps: Any = None,
    y_label: str = "equity (growth of 1)",
    baseline: float | None = 1.0,
    size: tuple[int, int] | None = None,
) -> bytes:
    """Line chart of ``series`` (label, values) with an optional drawdown panel below.

    ``series`` share the x-axis by index (bar 0 is the left edge); the legend names each one,
    the y-axis is ``y_label`` (equity as growth of 1 by default) with a line at ``baseline``
    (the starting equity) when it is in range. ``drawdown_of`` (an equity
    curve) adds a panel of its drawdown from the running peak, in %. ``timestamps`` (one per bar
    of the longest series: datetime64, datetimes or a polars/pandas datetime series, UTC) label
    the x-axis with dates instead of bar numbers. Values must be finite (ValueError otherwise).
    """
    if not series:
        raise ValueError("cannot plot: no series")
    curves = [(str(label), _finite(values, f"series {label!r}")) for label, values in series]
    width, height = _size(size, LINES_SIZE if drawdown_of is not None else LINES_SIZE_NO_DRAWDOWN)
    n = max(values.size for _, values in curves)
    image = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(image)
    right, bottom = width - _RIGHT, height - _BOTTOM

    drawdown = None
    if drawdown_of is not None:
        equity = _finite(drawdown_of, "drawdown_of")
        if (equity <= 0).any():
            raise ValueError("cannot plot the drawdown of an equity curve that is not positive")
        drawdown = equity / np.maximum.accumulate(equity) - 1.0
        dd_height = max(44, round((bottom - _TOP) * 0.3))
        main_bottom = bottom - dd_height - 8
    else:
        main_bottom = bottom

    stacked = np.concatenate([values for _, values in curves])
    low, high = _padded(float(stacked.min()), float(stacked.max()), floor=0.01)
    main = _Panel(_LEFT, _TOP, right, main_bottom, low, high)
    _y_axis(draw, image, main, label=y_label, percent=False, target=5)
    if baseline is not None and main.low < baseline < main.high:
        y = round(float(main.y(np.array(float(baseline)))))
        draw.line([(main.left, y), (main.right, y)], fill=_BASE)
    colours = [_COLOURS[i % len(_COLOURS)] for i in range(len(curves))]
    for (_, values), colour in reversed(list(zip(curves, colours, strict=True))):
        _curve(draw, main, values, n, colour, 2)
    legend = [(label, colour, "line") for (label, _), colour in zip(curves, colours, strict=True)]

    axis_panel = main
    if drawdown is not None:
        worst = float(drawdown.min())
        low = worst - max(-worst * 0.08, 0.002) if worst < 0 else -0.01
        panel = _Panel(_LEFT, main_bottom + 8, right, bottom, low, 0.0)
        _y_axis(draw, image, panel, label="drawdown", percent=True, target=2)
        index, reduced = _columns(drawdown, panel.right - panel.left)
        xs = _x_pixels(index, n, panel.left, panel.right)
        ys = panel.y(reduced)
        top = float(panel.y(np.array(0.0)))
        outline = np.column_stack([xs, ys]).ravel().tolist()
        if drawdown.size > 1:
            draw.polygon([xs[0], top, *outline, xs[-1], top], fill=_DRAWDOWN_FILL)
            draw.line(outline, fill=_RED, width=1)
        draw.rectangle((panel.left, panel.top, panel.right, panel.bottom), outline=_AXIS)
        note = f"max drawdown {_percent(-worst, 0.001)}"
        box = draw.textbbox((panel.left + 6, panel.bottom - 4), note, font=_font(_TICK_PT), anchor="ld")
        draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 1), fill=_WHITE)
        draw.text((panel.left + 6, panel.bottom - 4), note, font=_font(_TICK_PT), fill=_RED, anchor="ld")
        legend.append(("drawdown", _DRAWDOWN_FILL, "box"))
        axis_panel = panel
    _x_axis(draw, axis_panel, n, timestamps, height)
    _header(draw, width, title, legend)
    return _png(image)


def bars_png(
    values: np.ndarray,
    *,
    label: str,
    threshold: float | None = None,
    bins: int = 30,
    x_label: str = "return per scenario (%)",
    y_label: str = "scenarios (count)",
    percent: bool = True,
    size: tuple[int, int] | None = None,
) -> bytes:
    """Histogram of ``values`` titled ``label``, with a labelled zero and threshold line.

    ``values`` are fractions shown in % (``percent=False``: as they are). The x-axis always
    includes 0 and ``threshold``; the header says how many values there are and what share lies
    above the threshold (above 0 without one). Values must be finite (ValueError otherwise).
    """
    values = _finite(values, repr(label))
    if threshold is not None and not math.isfinite(threshold):
        raise ValueError(f"cannot plot {label!r}: threshold {threshold!r} is not finite")
    width, height = _size(size, BARS_SIZE)
    image = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(image)
    right, bottom = width - _RIGHT, height - _BOTTOM

    v_low, v_high = float(values.min()), float(values.max())
    if v_high <= v_low:
        pad = max(abs(v_low) * 0.05, 0.005 if percent else 0.5)
        v_low, v_high = v_low - pad, v_high + pad
    counts, edges = np.histogram(values, bins=max(1, bins), range=(v_low, v_high))
    marks = [0.0] + ([float(threshold)] if threshold is not None else [])
    x_low, x_high = _padded(min(v_low, *marks), max(v_high, *marks), floor=0.005)
    peak = int(counts.max())
    panel = _Panel(_LEFT, _TOP, right, bottom, 0.0, max(peak * 1.25, 1.0))  # headroom for the line labels

    def x_of(value: np.ndarray | float) -> np.ndarray:
        return panel.left + (np.asarray(value, dtype=float) - x_low) / (x_high - x_low) * (panel.right - panel.left)

    _y_axis(draw, image, panel, label=y_label, percent=False, target=4)
    lefts, rights, tops = x_of(edges[:-1]), x_of(edges[1:]), panel.y(counts.astype(float))
    gap = 1 if (rights[0] - lefts[0]) >= 4 else 0
    for x0, x1, y0, count in zip(lefts.tolist(), rights.tolist(), tops.tolist(), counts.tolist(), strict=True):
        if count:
            draw.rectangle((round(x0), round(y0), max(round(x0), round(x1) - 1 - gap), panel.bottom - 1), fill=_BAR)
    draw.rectangle((panel.left, panel.top, panel.right, panel.bottom), outline=_AXIS)

    font = _font(_TICK_PT)
    x_ticks, x_step = _ticks(x_low, x_high, max(2, (panel.right - panel.left) // 110))
    for tick, x in zip(x_ticks.tolist(), x_of(x_ticks).tolist(), strict=True):
        draw.line([(x, panel.bottom), (x, panel.bottom + 4)], fill=_AXIS)
        text = _percent(tick, x_step) if percent else _number(tick, x_step)
        draw.text((x, panel.bottom + 6), text, font=font, fill=_MUTED, anchor="mt")
    draw.text(((panel.left + panel.right) / 2, height - 4), x_label, font=font, fill=_MUTED, anchor="md")

    def mark(value: float, colour: tuple, text: str, row: int) -> None:
        x = round(float(x_of(value)))
        for y in range(panel.top + 1, panel.bottom, 6):  # dashed
            draw.line([(x, y), (x, min(y + 3, panel.bottom - 1))], fill=colour, width=2)
        y = panel.top + 4 + row * 16
        if x + 6 + _text_width(text, _TICK_PT) < panel.right - 4:
            draw.text((x + 6, y), text, font=font, fill=colour, anchor="la")
        else:  # no room on the right of the line
            draw.text((x - 6, y), text, font=font, fill=colour, anchor="ra")

    def fmt(value: float) -> str:
        return f"{value * 100:.3g} %" if percent else f"{value:.4g}"

    if threshold is None or threshold != 0.0:
        mark(0.0, _TEXT, "0 %" if percent else "0", 0)
    if threshold is not None:
        mark(float(threshold), _RED, f"threshold {fmt(threshold)}", 1 if threshold != 0.0 else 0)
    cut = float(threshold) if threshold is not None else 0.0
    share = float((values > cut).mean())
    what = y_label.split(" (")[0]
    summary = f"{values.size:,} {what}: {share * 100:.0f} % above {fmt(cut)}, median {fmt(float(np.median(values)))}"
    _header(draw, width, label, [(summary, _BAR, "box")])
    return _png(image)


def _thin(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = max(1, values.size // _MAX_POINTS)
    index = np.arange(0, values.size, step)
    return index, values[index]


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
