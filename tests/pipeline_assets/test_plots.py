"""The per-trial Pillow charts: valid PNGs of the documented size, with axes, legend and title
drawn, deterministic, and sound on edge cases (no timing asserts: cost is measured by hand)."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from pipeline_assets import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WHITE = (255, 255, 255)
STRATEGY, BUY_AND_HOLD = plots._COLOURS[0], plots._COLOURS[1]


def decode(png: bytes) -> Image.Image:
    """The PNG as RGB pixels, after checking it is a complete, valid PNG."""
    assert png.startswith(PNG_SIGNATURE)
    Image.open(io.BytesIO(png)).verify()  # checks chunks and CRCs
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB")


def pixels(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of ``box`` (left, top, right, bottom) as an (h, w, 3) int array."""
    return np.asarray(image.crop(box), dtype=int)


def inked(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """How many pixels of ``box`` are not the white background."""
    return int((pixels(image, box) != WHITE).any(axis=2).sum())


def has_colour(image: Image.Image, box: tuple[int, int, int, int], colour: tuple[int, int, int], tol: int = 24) -> bool:
    return bool((np.abs(pixels(image, box) - np.array(colour)).max(axis=2) <= tol).any())


def equity_curves(n: int = 4320, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    strategy = np.cumprod(1.0 + rng.normal(0.0003, 0.004, n))
    buy_and_hold = np.cumprod(1.0 + rng.normal(0.0001, 0.005, n))
    return strategy, buy_and_hold


def hourly(n: int) -> np.ndarray:
    return np.datetime64("2024-01-01T00:00:00", "us") + np.arange(n) * np.timedelta64(1, "h")


def equity_chart(**kwargs) -> bytes:
    strategy, buy_and_hold = equity_curves()
    return plots.lines_png(
        [("strategy", strategy), ("buy and hold", buy_and_hold)], title="demo#1", drawdown_of=strategy, **kwargs
    )


# --- the equity chart ------------------------------------------------------------------------


def test_equity_chart_is_a_valid_png_of_the_default_size() -> None:
    image = decode(equity_chart())
    assert image.size == plots.LINES_SIZE
    assert plots.LINES_SIZE[0] <= 730  # fits the Events tab's description pane in a 1280 px window


def test_equity_chart_has_title_legend_axes_and_both_curves() -> None:
    image = decode(equity_chart(timestamps=hourly(4320)))
    width, height = image.size
    left, top, bottom = plots._LEFT, plots._TOP, height - plots._BOTTOM
    assert inked(image, (0, 0, 120, top - 4)) > 50, "title"
    legend = (width // 2, 0, width, top - 4)
    assert inked(image, legend) > 200, "legend"
    assert has_colour(image, legend, STRATEGY) and has_colour(image, legend, BUY_AND_HOLD), "legend swatches"
    assert inked(image, (0, top, 22, bottom)) > 50, "rotated y-axis labels"
    assert inked(image, (24, top, left - 2, bottom)) > 100, "y tick labels"
    assert inked(image, (left, bottom + 2, width, bottom + 20)) > 100, "x tick labels"
    assert inked(image, (left, height - 18, width, height)) > 30, "x-axis label"
    plot = (left + 1, top + 1, width - plots._RIGHT - 1, bottom - 1)
    assert has_colour(image, plot, STRATEGY) and has_colour(image, plot, BUY_AND_HOLD), "both curves"
    assert has_colour(image, plot, plots._DRAWDOWN_FILL), "drawdown panel"


def test_timestamps_label_the_x_axis_with_dates_instead_of_bars() -> None:
    strip = None
    for timestamps in (None, hourly(4320)):
        image = decode(equity_chart(timestamps=timestamps))
        height = image.size[1]
        labels = pixels(image, (0, height - plots._BOTTOM + 2, image.size[0], height))
        assert strip is None or not np.array_equal(strip, labels)
        strip = labels


@pytest.mark.parametrize(
    "timestamps",
    [
        hourly(300),
        [dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i) for i in range(300)],
        [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(300)],
        pl.Series("timestamp", hourly(300)),
    ],
    ids=["datetime64", "aware datetimes", "naive datetimes", "polars"],
)
def test_timestamps_in_the_usual_forms_draw_the_same_chart(timestamps) -> None:
    strategy, buy_and_hold = equity_curves(300)
    series = [("paper", strategy), ("buy and hold", buy_and_hold)]
    reference = plots.lines_png(series, drawdown_of=strategy, timestamps=hourly(300))
    assert plots.lines_png(series, drawdown_of=strategy, timestamps=timestamps) == reference


@pytest.mark.parametrize("days", [0.5, 3, 12, 60, 180, 900])
def test_date_ticks_for_every_span(days: float) -> None:
    n = int(days * 24) + 1
    strategy, _ = equity_curves(n)
    image = decode(plots.lines_png([("paper", strategy)], drawdown_of=strategy, timestamps=hourly(n)))
    height = image.size[1]
    assert inked(image, (plots._LEFT, height - plots._BOTTOM + 2, image.size[0], height - 18)) > 50


def test_timestamps_must_be_one_per_bar() -> None:
    with pytest.raises(ValueError, match="one per bar"):
        equity_chart(timestamps=hourly(10))


def test_same_input_same_bytes() -> None:
    assert equity_chart(timestamps=hourly(4320)) == equity_chart(timestamps=hourly(4320))
    values = np.random.default_rng(3).normal(0.01, 0.1, 200)
    assert plots.bars_png(values, label="x", threshold=0.0) == plots.bars_png(values.copy(), label="x", threshold=0.0)


def test_the_old_call_signatures_still_work() -> None:
    strategy, buy_and_hold = equity_curves(500)
    decode(plots.lines_png([("strategy", strategy), ("buy and hold", buy_and_hold)], title="t", drawdown_of=strategy))
    decode(plots.lines_png([("strategy", strategy)]))
    decode(plots.bars_png(strategy - 1.0, label="return per scenario", threshold=0.0))
    decode(plots.bars_png(strategy - 1.0, label="return per scenario"))


def test_without_drawdown_the_chart_is_one_panel_of_its_own_size() -> None:
    strategy, _ = equity_curves(500)
    image = decode(plots.lines_png([("strategy", strategy)]))
    assert image.size == plots.LINES_SIZE_NO_DRAWDOWN
    assert not has_colour(image, (0, 0, *image.size), plots._DRAWDOWN_FILL, tol=4)


def test_size_is_honoured_and_too_small_is_refused() -> None:
    assert decode(equity_chart(size=(900, 420))).size == (900, 420)
    assert decode(plots.bars_png(np.arange(10.0), label="x", size=(400, 200))).size == (400, 200)
    with pytest.raises(ValueError, match="at least"):
        equity_chart(size=(100, 80))


# --- edge cases ------------------------------------------------------------------------------


def test_constant_series_draw_a_flat_line_and_an_empty_drawdown() -> None:
    flat = np.ones(250)
    image = decode(plots.lines_png([("strategy", flat), ("buy and hold", flat * 1.0)], drawdown_of=flat))
    assert image.size == plots.LINES_SIZE
    width, height = image.size
    plot = (plots._LEFT + 1, plots._TOP + 1, width - plots._RIGHT - 1, height - plots._BOTTOM - 1)
    assert has_colour(image, plot, STRATEGY)
    assert inked(image, (24, plots._TOP, plots._LEFT - 2, height - plots._BOTTOM)) > 50, "y ticks around 1"


def test_a_single_bar_is_a_dot() -> None:
    for timestamps in (None, hourly(1)):
        image = decode(
            plots.lines_png([("strategy", [1.0]), ("buy and hold", [1.0])], drawdown_of=[1.0], timestamps=timestamps)
        )
        assert has_colour(image, (plots._LEFT, plots._TOP, image.size[0] - plots._RIGHT, 200), STRATEGY)


def test_series_of_different_lengths_share_the_axis() -> None:
    strategy, buy_and_hold = equity_curves(1000)
    decode(plots.lines_png([("paper", strategy[:400]), ("buy and hold", buy_and_hold)], drawdown_of=strategy[:400]))


def test_a_very_long_series_keeps_its_extremes() -> None:
    n = 500_000
    values = np.ones(n)
    values[123_457] = 0.25  # one bar, a 75 % drawdown
    values[400_001] = 4.0
    index, reduced = plots._columns(values, 640)
    assert reduced.size <= 2 * 640
    assert reduced.min() == 0.25 and reduced.max() == 4.0
    assert index.min() >= 0 and index.max() <= n - 1
    image = decode(plots.lines_png([("strategy", values)], drawdown_of=values, timestamps=hourly(n)))
    width, height = image.size
    # the one-bar drawdown reaches the bottom of the drawdown panel
    bottom_rows = (plots._LEFT + 1, height - plots._BOTTOM - 14, width - plots._RIGHT - 1, height - plots._BOTTOM - 1)
    assert has_colour(image, bottom_rows, plots._RED, tol=40)


def test_short_series_are_drawn_point_by_point() -> None:
    values = np.linspace(1.0, 2.0, 50)
    index, reduced = plots._columns(values, 640)
    assert np.array_equal(index, np.arange(50)) and np.array_equal(reduced, values)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_by_name(bad: float) -> None:
    strategy, _ = equity_curves(100)
    broken = strategy.copy()
    broken[5] = bad
    with pytest.raises(ValueError, match="'buy and hold'.*NaN or infinite"):
        plots.lines_png([("strategy", strategy), ("buy and hold", broken)])
    with pytest.raises(ValueError, match="drawdown_of"):
        plots.lines_png([("strategy", strategy)], drawdown_of=broken)
    with pytest.raises(ValueError, match="NaN or infinite"):
        plots.bars_png(broken - 1.0, label="returns", threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        plots.bars_png(strategy - 1.0, label="returns", threshold=bad)


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError):
        plots.lines_png([])
    with pytest.raises(ValueError, match="no values"):
        plots.lines_png([("strategy", np.array([]))])
    with pytest.raises(ValueError, match="no values"):
        plots.bars_png(np.array([]), label="returns")


def test_a_non_positive_equity_has_no_drawdown() -> None:
    with pytest.raises(ValueError, match="not positive"):
        plots.lines_png([("strategy", [1.0, 0.0])], drawdown_of=[1.0, 0.0])


def test_tick_labels() -> None:
    ticks, step = plots._ticks(0.93, 2.21, 6)
    assert step == 0.25 and ticks[0] == 1.0 and ticks[-1] == 2.0
    assert [plots._number(t, step) for t in ticks] == ["1.00", "1.25", "1.50", "1.75", "2.00"]
    assert plots._percent(-0.1, 0.05) == "-10 %"
    assert plots._percent(-0.075, 0.025) == "-7.5 %"
    assert plots._percent(-1e-17, 0.05) == "0 %"


# --- the stress histogram --------------------------------------------------------------------


def stress_chart(values: np.ndarray | None = None, **kwargs) -> Image.Image:
    if values is None:
        values = np.random.default_rng(7).normal(0.02, 0.1, 200)
    kwargs.setdefault("threshold", 0.0)
    return decode(plots.bars_png(values, label="demo#1 return per scenario", **kwargs))


def test_stress_histogram_has_axes_bars_legend_and_the_threshold_line() -> None:
    image = stress_chart()
    width, height = image.size
    assert image.size == plots.BARS_SIZE
    left, top, bottom = plots._LEFT, plots._TOP, height - plots._BOTTOM
    assert inked(image, (0, 0, 200, top - 4)) > 50, "title"
    assert has_colour(image, (width // 2, 0, width, top - 4), plots._BAR), "legend swatch"
    assert inked(image, (0, top, 22, bottom)) > 50, "rotated y-axis label (count of scenarios)"
    assert inked(image, (24, top, left - 2, bottom)) > 30, "count ticks"
    assert inked(image, (left, bottom + 2, width, bottom + 20)) > 50, "return ticks in %"
    assert inked(image, (left, height - 18, width, height)) > 30, "x-axis label"
    plot = (left + 1, top + 1, width - plots._RIGHT - 1, bottom - 1)
    assert has_colour(image, plot, plots._BAR), "bars"
    assert has_colour(image, plot, plots._RED, tol=40), "threshold line and its label"


def test_a_threshold_away_from_zero_draws_both_lines() -> None:
    image = stress_chart(threshold=-0.25)
    plot = (plots._LEFT + 1, plots._TOP + 1, image.size[0] - plots._RIGHT - 1, image.size[1] - plots._BOTTOM - 1)
    assert has_colour(image, plot, plots._RED, tol=40)
    assert has_colour(image, plot, plots._TEXT, tol=30)


def test_threshold_and_zero_outside_the_data_are_still_shown() -> None:
    values = np.random.default_rng(1).uniform(0.3, 0.6, 200)  # all above zero and the threshold
    image = stress_chart(values, threshold=-0.2)
    plot = (plots._LEFT + 1, plots._TOP + 1, image.size[0] - plots._RIGHT - 1, image.size[1] - plots._BOTTOM - 1)
    assert has_colour(image, plot, plots._RED, tol=40)


@pytest.mark.parametrize(
    ("values", "bins"),
    [(np.full(200, 0.05), 30), (np.array([-0.3]), 30), (np.array([0.0]), 1), (np.linspace(-1, 1, 10_000), 200)],
    ids=["constant", "one value", "one bin", "many values and bins"],
)
def test_histogram_edge_cases(values: np.ndarray, bins: int) -> None:
    image = stress_chart(values, bins=bins)
    plot = (plots._LEFT + 1, plots._TOP + 1, image.size[0] - plots._RIGHT - 1, image.size[1] - plots._BOTTOM - 1)
    assert has_colour(image, plot, plots._BAR)


def test_histogram_in_plain_units() -> None:
    image = decode(
        plots.bars_png(np.arange(50.0), label="trades", percent=False, x_label="trades", y_label="trials (count)")
    )
    assert image.size == plots.BARS_SIZE


def test_matplotlib_charts_are_unchanged() -> None:
    close = np.linspace(100.0, 120.0, 2000)
    decode(plots.price_windows_png([("train", close), ("backtest", close[:500])]))
    decode(plots.funnel_png([("optuna_trial", 10), ("backtest_results", 4)]))
