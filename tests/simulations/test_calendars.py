"""Calendars and dated windows (simulations/calendars.py, simulations/market.py) on data shaped like
the real thing: FX hourly bars with weekends, Christmas and New Year; US-equity daily and hourly
bars with holidays and early closes; crypto around the clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import exchange_calendars
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.calendars import market_calendar
from simulations.constants import MIN_BARS_PER_WINDOW, TRAIN_WINDOW_END_ATTR
from simulations.errors import ConfigurationError, MarketDataError, TrainWindowOverlapError, TrialDataError
from simulations.market import check_declared_train_end, cut_windows, load_market_file, pin_window_dates
from simulations.window_dates import WindowDates

UTC = dt.UTC
CALENDAR_NAMES = frozenset(exchange_calendars.get_calendar_names())


def _bars(stamps: pl.Series, seed: int = 3) -> pl.DataFrame:
    n = stamps.len()
    close = 1.1 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.0, 1e-3, n)))
    return pl.DataFrame(
        {"timestamp": stamps, "open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
         "volume": np.ones(n)}
    )


def _hours(start: dt.datetime, end: dt.datetime) -> pl.Series:
    return pl.datetime_range(start, end, interval="1h", closed="left", time_zone="UTC", eager=True)


def fx_hourly(start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Hourly FX bars as a dealer publishes them: the week runs Sunday 17:00 to Friday 17:00 New
    York, and no bars from 17:00 the day before to 17:00 on 25 December and 1 January."""
    hours = _hours(start, end)
    session_day = (hours.dt.convert_time_zone("America/New_York") + dt.timedelta(hours=7)).dt.date()
    open_ = (session_day.dt.weekday() <= 5) & ~(
        ((session_day.dt.month() == 12) & (session_day.dt.day() == 25))
        | ((session_day.dt.month() == 1) & (session_day.dt.day() == 1))
    )
    return _bars(hours.filter(open_))


def equity_daily(start: str, end: str) -> pl.DataFrame:
    """SPY-like daily bars stamped with the session's date (00:00 UTC), one per NYSE session."""
    sessions = exchange_calendars.get_calendar("XNYS", start=start, end=end).sessions
    return _bars(pl.Series("timestamp", list(sessions.date)).cast(pl.Datetime("us", "UTC")), seed=5)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fx") / "EURUSD.csv"
    fx_hourly(dt.datetime(2023, 10, 2, tzinfo=UTC), dt.datetime(2024, 2, 1, tzinfo=UTC)).write_csv(path)
    return path


def test_fx_hourly_with_weekends_christmas_and_new_year_passes_the_24_5_calendar_strictly(fx: Path) -> None:
    frame = load_market_file(path=fx, calendar="24/5", gap_tolerance=1.0)
    # The data does have the closures the calendar excuses: no bar on Christmas Day in New York.
    new_york = frame["timestamp"].dt.convert_time_zone("America/New_York")
    assert not ((new_york.dt.date() == dt.date(2023, 12, 25)) & (new_york.dt.hour() < 17)).any()
    assert (new_york.dt.weekday() == 6).sum() == 0 and frame.height > 2000


def test_fx_on_the_default_24_7_calendar_fails_naming_the_key_and_the_calendar_to_set(fx: Path) -> None:
    with pytest.raises(MarketDataError) as caught:
        load_market_file(path=fx, calendar="24/7")
    message = str(caught.value)
    assert str(fx) in message and "rule missing_bars" in message and "row " in message
    assert "market.gap_tolerance_bars = 4" in message
    assert "set market.calendar to '24/5'" in message


def test_39_missing_hourly_bars_fail_on_the_right_calendar_with_row_rule_and_a_working_value(
    fx: Path, tmp_path: Path
) -> None:
    frame = pl.read_csv(fx)
    holed = frame.filter((pl.int_range(pl.len()) < 500) | (pl.int_range(pl.len()) >= 539))
    holed.write_csv(path := tmp_path / "holed.csv")
    with pytest.raises(MarketDataError) as caught:
        load_market_file(path=path, calendar="24/5")
    message = str(caught.value)
    assert "row 501: rule missing_bars" in message and "39 bar(s) missing while calendar '24/5' is open" in message
    assert "40 would accept every gap" in message
    assert load_market_file(path=path, calendar="24/5", gap_tolerance=40).height == holed.height


def test_us_equity_daily_with_new_year_and_holidays_passes_xnys_and_a_missing_week_fails(tmp_path: Path) -> None:
    daily = equity_daily("2022-06-01", "2024-06-28")
    assert dt.datetime(2024, 1, 1, tzinfo=UTC) not in daily["timestamp"].to_list()
    daily.write_csv(path := tmp_path / "SPY.csv")
    assert load_market_file(path=path, calendar="XNYS", gap_tolerance=1.0).height == daily.height
    week = (pl.col("timestamp") >= dt.datetime(2023, 3, 6, tzinfo=UTC)) & (
        pl.col("timestamp") < dt.datetime(2023, 3, 13, tzinfo=UTC)
    )
    daily.filter(~week).write_csv(holed := tmp_path / "SPY_holed.csv")
    with pytest.raises(MarketDataError, match=r"rule missing_sessions: .*5 session\(s\) of calendar 'XNYS' missing "
                       r"\(the first on 2023-03-06\).*6 would accept"):
        load_market_file(path=holed, calendar="XNYS")


def test_us_equity_hourly_bars_with_an_early_close_pass_xnys(tmp_path: Path) -> None:
    schedule = exchange_calendars.get_calendar("XNYS", start="2023-11-20", end="2023-11-30").schedule
    stamps = [
        t for open_, close in zip(schedule["open"], schedule["close"], strict=True)
        for t in pl.datetime_range(open_.to_pydatetime(), close.to_pydatetime(), interval="1h", closed="left",
                                   time_zone="UTC", eager=True).to_list()
    ]
    assert dt.datetime(2023, 11, 24, 17, 30, tzinfo=UTC) in stamps  # the half day after Thanksgiving
    assert dt.datetime(2023, 11, 24, 18, 30, tzinfo=UTC) not in stamps
    _bars(pl.Series("timestamp", stamps)).write_csv(path := tmp_path / "SPY_hourly.csv")
    assert load_market_file(path=path, calendar="XNYS", gap_tolerance=1.0).height == len(stamps)


def test_crypto_around_the_clock_passes_24_7_and_an_outage_fails(tmp_path: Path) -> None:
    bars = _bars(_hours(dt.datetime(2024, 12, 20, tzinfo=UTC), dt.datetime(2025, 1, 10, tzinfo=UTC)))
    bars.write_csv(path := tmp_path / "BTCUSD.csv")
    assert load_market_file(path=path, gap_tolerance=1.0).height == bars.height
    bars.filter((pl.int_range(pl.len()) < 100) | (pl.int_range(pl.len()) >= 106)).write_csv(out := tmp_path / "o.csv")
    with pytest.raises(MarketDataError, match=r"row 101: rule missing_bars: symbol 'o': 6 bar\(s\) missing"):
        load_market_file(path=out)


@settings(max_examples=40, deadline=None)
@given(code=st.text(max_size=8).filter(lambda c: not {c.strip(), c.strip().upper()} & {*CALENDAR_NAMES, "24/7", "24/5"}))
def test_an_unknown_calendar_is_a_configuration_error_naming_the_key(code: str) -> None:
    with pytest.raises(ConfigurationError, match="market.calendar"):
        market_calendar(code=code)


@settings(max_examples=40, deadline=None)
@given(tolerance=st.one_of(st.floats(max_value=0.999), st.just(float("nan")), st.booleans(), st.text(max_size=3)))
def test_a_tolerance_below_one_bar_is_refused_before_reading_naming_the_key_and_a_working_value(tolerance) -> None:
    with pytest.raises(ConfigurationError, match=r"market.gap_tolerance_bars must be null .* e\.g\. 4"):
        load_market_file(path="never-read.csv", gap_tolerance=tolerance)


# --------------------------------------------------------------------------- dated windows


def test_appending_bars_never_moves_train_or_backtest_and_grows_forward(fx: Path) -> None:
    frame = load_market_file(path=fx, calendar="24/5")
    older = frame.filter(pl.col("timestamp") < dt.datetime(2024, 1, 20, tzinfo=UTC))
    dates = pin_window_dates(frame=older, train_days=60, backtest_days=30, forward_days=10)
    before = cut_windows(frame=older, dates=dates)
    after = cut_windows(frame=frame, dates=dates)
    assert after.train.sha256 == before.train.sha256 and after.backtest.sha256 == before.backtest.sha256
    # ... nor how they are annualised, though the appended weeks have their own share of weekend.
    assert after.backtest.periods_per_year == before.backtest.periods_per_year
    assert after.forward.n_bars > before.forward.n_bars
    assert after.forward.start == before.forward.start
    # Pinning again on the longer data would have moved every window: that is what the record prevents.
    assert pin_window_dates(frame=frame, train_days=60, backtest_days=30, forward_days=10) != dates


def test_explicit_dates_cut_at_those_instants_and_round_trip(fx: Path) -> None:
    frame = load_market_file(path=fx, calendar="24/5")
    dates = WindowDates(
        train_start=dt.datetime(2023, 10, 2, tzinfo=UTC),
        backtest_start=dt.datetime(2023, 12, 1, tzinfo=UTC),
        forward_start=dt.datetime(2024, 1, 2, tzinfo=UTC),
    )
    windows = cut_windows(frame=frame, dates=dates)
    assert windows.backtest.start >= dates.backtest_start > windows.train.end
    assert windows.forward.start >= dates.forward_start > windows.backtest.end
    assert WindowDates.from_dict(dates.as_dict()) == dates


def test_a_window_too_short_names_its_key_and_a_start_that_works(fx: Path) -> None:
    frame = load_market_file(path=fx, calendar="24/5")
    last = frame["timestamp"][-1]
    dates = WindowDates(
        train_start=dt.datetime(2023, 10, 2, tzinfo=UTC),
        backtest_start=dt.datetime(2023, 12, 1, tzinfo=UTC),
        forward_start=last,
    )
    with pytest.raises(MarketDataError) as caught:
        cut_windows(frame=frame, dates=dates)
    message = str(caught.value)
    assert f"the forward window holds 1 bar(s); it needs at least {MIN_BARS_PER_WINDOW}" in message
    working = dt.datetime.fromisoformat(message.split("forward_start to ")[1].split(" or earlier")[0])
    assert cut_windows(frame=frame, dates=WindowDates(dates.train_start, dates.backtest_start, working)).forward.n_bars \
        == MIN_BARS_PER_WINDOW
    with pytest.raises(MarketDataError, match="after market.windows.train_start"):
        cut_windows(frame=frame, dates=WindowDates(dt.datetime(2020, 1, 1, tzinfo=UTC), dates.backtest_start, working))


def test_a_declared_train_end_inside_the_backtest_window_is_a_typed_error(fx: Path) -> None:
    windows = cut_windows(
        frame=load_market_file(path=fx, calendar="24/5"),
        dates=WindowDates(
            train_start=dt.datetime(2023, 10, 2, tzinfo=UTC),
            backtest_start=dt.datetime(2023, 12, 1, tzinfo=UTC),
            forward_start=dt.datetime(2024, 1, 2, tzinfo=UTC),
        ),
    )
    check_declared_train_end(user_attrs={}, windows=windows)
    check_declared_train_end(user_attrs={TRAIN_WINDOW_END_ATTR: windows.train.end.isoformat()}, windows=windows)
    with pytest.raises(TrainWindowOverlapError, match=r"inside the backtest window .* re-tune on bars up to "
                       + windows.train.end.isoformat().replace("+", r"\+")):
        check_declared_train_end(user_attrs={TRAIN_WINDOW_END_ATTR: "2023-12-15T00:00:00"}, windows=windows)
    with pytest.raises(TrialDataError, match="is not an ISO-8601 timestamp"):
        check_declared_train_end(user_attrs={TRAIN_WINDOW_END_ATTR: "last tuesday"}, windows=windows)
