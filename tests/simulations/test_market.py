"""Synthetic market, file validation and fixed windows (simulations/market.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulations.backtest import backtest_strategy, run_backtest
from simulations.constants import (
    DEFAULT_BACKTEST_DAYS,
    DEFAULT_FORWARD_DAYS,
    DEFAULT_SYNTHETIC_DAYS,
    DEFAULT_TRAIN_DAYS,
    SYNTHETIC_BAR_SECONDS,
    SYNTHETIC_BAR_VOL,
    SYNTHETIC_PERIODS_PER_YEAR,
    SYNTHETIC_START_ISO,
)
from simulations.errors import ConfigurationError, MarketDataError
from simulations.market import (
    MARKET_COLUMNS,
    REQUIRED_FILE_COLUMNS,
    MarketWindows,
    generate_synthetic_market,
    load_market_file,
    split_windows,
    window_hash,
)
from simulations.metrics import sharpe_ratio
from simulations.strategies import BUILT_IN_STRATEGIES

HOUR_US = 3_600_000_000


# --------------------------------------------------------------------------- synthetic market


def test_synthetic_market_schema_and_ohlc_invariants(synthetic_frame: pl.DataFrame) -> None:
    frame = synthetic_frame
    assert tuple(frame.columns) == MARKET_COLUMNS
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame.height == DEFAULT_SYNTHETIC_DAYS * 24
    assert frame["timestamp"][0] == dt.datetime.fromisoformat(SYNTHETIC_START_ISO)
    assert (frame["timestamp"].dt.epoch("us").diff().drop_nulls() == SYNTHETIC_BAR_SECONDS * 1_000_000).all()
    prices = frame.select("open", "high", "low", "close").to_numpy()
    assert (prices > 0).all() and (frame["volume"].to_numpy() > 0).all()
    o, h, low, c = prices.T
    assert (h >= np.maximum(o, c)).all()
    assert (low <= np.minimum(o, c)).all()


def test_synthetic_market_is_bit_identical_for_a_seed() -> None:
    first = generate_synthetic_market(seed=11, n_days=30)
    again = generate_synthetic_market(seed=11, n_days=30)
    other = generate_synthetic_market(seed=12, n_days=30)
    assert first.equals(again)
    assert first["close"].to_numpy().tobytes() == again["close"].to_numpy().tobytes()
    assert not first["close"].equals(other["close"])


def test_synthetic_market_has_clustered_fat_tailed_volatility(synthetic_frame: pl.DataFrame) -> None:
    returns = np.diff(np.log(synthetic_frame["close"].to_numpy()))
    assert 0.7 * SYNTHETIC_BAR_VOL < returns.std() < 1.5 * SYNTHETIC_BAR_VOL
    centred = returns - returns.mean()
    assert np.mean(centred**4) / np.mean(centred**2) ** 2 > 4.0  # raw kurtosis; normal is 3
    magnitude = np.abs(returns) - np.abs(returns).mean()
    lag1 = np.dot(magnitude[1:], magnitude[:-1]) / np.dot(magnitude, magnitude)
    assert lag1 > 0.05  # volatility clustering: |r| is autocorrelated


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed"),
        ({"n_days": 0}, "n_days"),
        ({"symbol": ""}, "symbol"),
        ({"start": dt.datetime(2024, 1, 1)}, "timezone-aware"),
    ],
)
def test_synthetic_market_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        generate_synthetic_market(**kwargs)


def _momentum(lookback: int, vol_lookback: int = 168) -> tuple:
    return BUILT_IN_STRATEGIES.build(
        name="momentum", params={"lookback": lookback, "vol_lookback": vol_lookback, "target_bar_vol": 0.004}
    )


def test_momentum_chosen_on_train_has_positive_backtest_sharpe_with_default_seed(windows: MarketWindows) -> None:
    def window_sharpe(lookback: int, name: str) -> float:
        strategy, params = _momentum(lookback)
        window = getattr(windows, name)
        result = backtest_strategy(
            strategy=strategy, params=params, close=window.close, history=windows.history_before(name=name)
        )
        return float(sharpe_ratio(returns=result.net_returns[1:], periods_per_year=window.periods_per_year))

    chosen = max((24, 48, 120, 240, 480), key=lambda lookback: window_sharpe(lookback, "train"))
    assert window_sharpe(chosen, "backtest") > 0.0


def _random_params(rng: np.random.Generator, name: str) -> dict:
    params = {}
    for key, (kind, low, high, log) in BUILT_IN_STRATEGIES.get(name=name).search_space().items():
        u = rng.random()
        value = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if log else low + u * (high - low)
        params[key] = int(round(value)) if kind == "int" else float(value)
    return params


def test_calibration_momentum_edge_and_no_edge_for_random_params() -> None:
    """Across 24 seeds: a 240-bar momentum earns Sharpe ~1 net; random params earn ~0 gross."""
    closes = np.stack([generate_synthetic_market(seed=seed)["close"].to_numpy() for seed in range(200, 224)])
    skip = 481  # longest warm-up in the comparison, so every strategy is scored on the same bars

    def mean_sharpe(positions: np.ndarray, fee_bps: float) -> float:
        result = run_backtest(close=closes, positions=positions, fee_bps=fee_bps, slippage_bps=fee_bps / 2)
        returns = result.net_returns[:, skip:]
        # A random mean-reversion entry can be unreachable (|z| is bounded for short windows): flat, Sharpe 0.
        return float(np.mean(sharpe_ratio(returns=returns, periods_per_year=SYNTHETIC_PERIODS_PER_YEAR)))

    strategy, params = _momentum(240)
    momentum = mean_sharpe(strategy.positions(close=closes, params=params), fee_bps=2.0)
    assert 0.5 < momentum < 1.5

    rng = np.random.default_rng(0)
    gross, net = [], []
    for draw in range(20):
        name = ("momentum", "mean_reversion")[draw % 2]
        strategy, params = BUILT_IN_STRATEGIES.build(name=name, params=_random_params(rng, name))
        positions = strategy.positions(close=closes, params=params)
        gross.append(mean_sharpe(positions, fee_bps=0.0))
        net.append(mean_sharpe(positions, fee_bps=2.0))
    assert abs(np.mean(gross)) < 0.3
    assert np.mean(net) < 0.0


# --------------------------------------------------------------------------- loading files


def test_round_trip_csv_and_parquet(tmp_path: Path) -> None:
    frame = generate_synthetic_market(seed=3, n_days=3)
    frame.write_csv(tmp_path / "bars.csv")
    frame.write_parquet(tmp_path / "bars.parquet")
    assert load_market_file(path=tmp_path / "bars.csv").equals(frame)
    assert load_market_file(path=tmp_path / "bars.parquet").equals(frame)


def test_symbol_defaults_to_file_stem_and_headers_are_case_insensitive(tmp_path: Path) -> None:
    frame = generate_synthetic_market(seed=3, n_days=1).drop("symbol")
    frame.rename({column: column.upper() for column in frame.columns}).write_csv(tmp_path / "BTCUSD.csv")
    loaded = load_market_file(path=tmp_path / "BTCUSD.csv")
    assert loaded["symbol"].unique().to_list() == ["BTCUSD"]
    assert loaded.select(REQUIRED_FILE_COLUMNS).equals(frame.select(REQUIRED_FILE_COLUMNS))


def test_multi_symbol_file_with_interleaved_rows(tmp_path: Path) -> None:
    first = generate_synthetic_market(seed=1, n_days=2, symbol="AAA")
    second = generate_synthetic_market(seed=2, n_days=2, symbol="BBB")
    pl.concat([first, second]).sort("timestamp", "symbol").write_parquet(tmp_path / "both.parquet")
    loaded = load_market_file(path=tmp_path / "both.parquet")
    assert loaded.equals(pl.concat([first, second]))


def test_iso_strings_with_offsets_and_naive_strings_are_utc(tmp_path: Path) -> None:
    rows = "timestamp,open,high,low,close,volume\n"
    (tmp_path / "z.csv").write_text(rows + "2024-01-01T02:00:00+02:00,1,2,1,1,5\n2024-01-01T03:00:00+02:00,1,2,1,1,5\n")
    (tmp_path / "n.csv").write_text(rows + "2024-01-01 00:00:00,1,2,1,1,5\n2024-01-01 01:00:00,1,2,1,1,5\n")
    for name in ("z.csv", "n.csv"):
        loaded = load_market_file(path=tmp_path / name)
        assert loaded["timestamp"][0] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_weekday_data_passes_the_default_tolerance_on_24_7_and_annualises_to_weekdays(tmp_path: Path) -> None:
    days = pl.date_range(dt.date(2020, 1, 1), dt.date(2023, 12, 31), eager=True)
    weekdays = days.filter(days.dt.weekday() <= 5)
    n = weekdays.len()
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.01, n)))
    pl.DataFrame(
        {"timestamp": weekdays, "open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": np.ones(n)}
    ).write_csv(tmp_path / "SPX.csv")
    frame = load_market_file(path=tmp_path / "SPX.csv")
    windows = split_windows(frame=frame, train_days=700, backtest_days=400, forward_days=200)
    assert windows.backtest.bar_seconds == 86_400.0
    assert windows.backtest.periods_per_year == pytest.approx(365.25 * 5 / 7, rel=0.01)
    with pytest.raises(MarketDataError, match="rule missing_sessions.*set market.calendar to '24/5'"):
        load_market_file(path=tmp_path / "SPX.csv", gap_tolerance=2.0)
    assert load_market_file(path=tmp_path / "SPX.csv", gap_tolerance=1.0, calendar="24/5").height == n
    assert load_market_file(path=tmp_path / "SPX.csv", gap_tolerance=None).height == n


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("bars.txt", "x", "unsupported_format"),
        ("absent.csv", None, "missing_file"),
        ("empty.csv", "timestamp,open,high,low,close,volume\n", "empty_file"),
        ("dup.csv", "timestamp,Open,open,high,low,close,volume\n", "duplicate_columns"),
        ("one.csv", "timestamp,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n", "too_few_bars"),
        ("bad.parquet", "not parquet", "unreadable_file"),
    ],
)
def test_file_level_rules(tmp_path: Path, name: str, content: str | None, rule: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(MarketDataError, match=rf"{re.escape(name)}: rule {rule}"):
        load_market_file(path=tmp_path / name)


# Each defect the loader knows: (rule, needs text cells, whether the message names a row).
DEFECTS = {
    "missing_columns": (False, False),
    "null_value": (False, True),
    "unparsable_timestamp": (True, True),
    "unparsable_number": (True, True),
    "non_finite_value": (False, True),
    "non_positive_price": (False, True),
    "negative_volume": (False, True),
    "high_below_low": (False, True),
    "high_below_open_close": (False, True),
    "low_above_open_close": (False, True),
    "duplicate_timestamp": (False, True),
    "unsorted_timestamps": (False, True),
    "missing_bars": (False, True),
}
BASE_FRAME = generate_synthetic_market(seed=99, n_days=2)
BAR_COUNT = BASE_FRAME.height


def _with_defect(rule: str, row: int, column: str, as_text: bool) -> tuple[pl.DataFrame, int]:
    """The base frame with one defect at 0-based ``row``; returns the frame and the 1-based row to report."""
    data = {name: BASE_FRAME[name].to_list() for name in BASE_FRAME.columns}
    price = column if column in ("open", "high", "low", "close") else "close"
    o, h, l, c = (data[name][row] for name in ("open", "high", "low", "close"))
    reported = row + 1
    if rule == "null_value":
        data[column][row] = None
    elif rule == "non_finite_value":
        data[price][row] = float("nan") if row % 2 else float("inf")
    elif rule == "non_positive_price":
        data[price][row] = 0.0 if row % 2 else -1.0
    elif rule == "negative_volume":
        data["volume"][row] = -1.0
    elif rule == "high_below_low":
        data["high"][row] = l * 0.5
    elif rule == "high_below_open_close":
        data["high"][row] = (max(o, c) + min(o, c)) / 2
    elif rule == "low_above_open_close":
        data["low"][row] = (max(o, c) + min(o, c)) / 2
    elif rule == "duplicate_timestamp":
        data["timestamp"][row] = data["timestamp"][row - 1]
    elif rule == "unsorted_timestamps":
        data["timestamp"][row - 1], data["timestamp"][row] = data["timestamp"][row], data["timestamp"][row - 1]
    elif rule == "missing_bars":
        for name in data:
            del data[name][row : row + 6]
    frame = pl.DataFrame(data, schema=BASE_FRAME.schema)
    if as_text:
        frame = frame.with_columns(pl.all().cast(pl.String))
        if rule == "unparsable_timestamp":
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == row).then(pl.lit("31/31/2024 25h")).otherwise(pl.col("timestamp"))
                .alias("timestamp")
            )
        else:
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == row).then(pl.lit("12,5x")).otherwise(pl.col(price)).alias(price)
            )
    if rule == "missing_columns":
        frame = frame.drop(column if column in REQUIRED_FILE_COLUMNS else "close")
    return frame, reported


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=st.sampled_from(sorted(DEFECTS)),
    row=st.integers(min_value=1, max_value=BAR_COUNT - 8),
    column=st.sampled_from(["timestamp", "open", "high", "low", "close", "volume"]),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_every_defect_raises_market_data_error_naming_file_row_and_rule(
    rule: str, row: int, column: str, suffix: str
) -> None:
    as_text, names_row = DEFECTS[rule]
    frame, reported = _with_defect(rule, row, column, as_text)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"defect{suffix}"
        if suffix == ".csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        with pytest.raises(MarketDataError) as caught:
            load_market_file(path=path)
    message = str(caught.value)
    assert f"rule {rule}" in message
    assert str(path) in message
    if names_row:
        assert f"row {reported}:" in message


# --------------------------------------------------------------------------- windows


def test_default_windows_are_contiguous_chronological_and_hashed(windows: MarketWindows) -> None:
    parts = (windows.train, windows.backtest, windows.forward)
    assert [w.name for w in parts] == ["train", "backtest", "forward"]
    assert [w.n_bars for w in parts] == [24 * DEFAULT_TRAIN_DAYS, 24 * DEFAULT_BACKTEST_DAYS, 24 * DEFAULT_FORWARD_DAYS]
    for before, after in zip(parts, parts[1:]):
        assert after.start - before.end == dt.timedelta(hours=1)
    for window in parts:
        assert window.bar_seconds == SYNTHETIC_BAR_SECONDS
        assert window.periods_per_year == SYNTHETIC_PERIODS_PER_YEAR
        assert window.close.dtype == np.float64 and not window.close.flags.writeable
        assert re.fullmatch(r"[0-9a-f]{64}", window.sha256)
    assert len(set(windows.hashes.values())) == 3
    assert np.array_equal(windows.history_before(name="forward"), np.concatenate([windows.train.close, windows.backtest.close]))
    assert windows.history_before(name="train").size == 0


def test_window_hash_is_the_documented_byte_layout() -> None:
    stamps = np.array([0, HOUR_US], dtype=np.int64)
    values = {name: np.array([1.0, 2.0]) + offset for offset, name in enumerate(("open", "high", "low", "close", "volume"))}
    expected = hashlib.sha256(
        stamps.astype("<i8").tobytes() + b"".join(values[name].astype("<f8").tobytes() for name in values)
    ).hexdigest()
    assert window_hash(timestamps_us=stamps, values=values) == expected
    # Golden digest of these 2 bars: stable across runs and platforms (little-endian layout).
    assert expected == "bc07121a8b0402a6b904491f147cb010f4527bc3bd9605a80bca935b0b44d17a"
    assert expected == hashlib.sha256(bytes.fromhex(
        "0000000000000000" "00a493d600000000"
        "000000000000f03f" "0000000000000040"
        "0000000000000040" "0000000000000840"
        "0000000000000840" "0000000000001040"
        "0000000000001040" "0000000000001440"
        "0000000000001440" "0000000000001840"
    )).hexdigest()


def test_windows_and_hashes_are_deterministic(windows: MarketWindows) -> None:
    again = split_windows(frame=generate_synthetic_market())
    assert again.hashes == windows.hashes
    assert again.backtest.close.tobytes() == windows.backtest.close.tobytes()


def test_window_hash_changes_with_one_price(synthetic_frame: pl.DataFrame, windows: MarketWindows) -> None:
    nudged = synthetic_frame.with_columns(
        pl.when(pl.int_range(pl.len()) == synthetic_frame.height - 1)
        .then(pl.col("volume") + 1.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    hashes = split_windows(frame=nudged).hashes
    assert hashes["forward"] != windows.hashes["forward"]
    assert hashes["train"] == windows.hashes["train"]


def test_too_short_data_and_symbol_choice() -> None:
    frame = generate_synthetic_market(n_days=30)
    with pytest.raises(MarketDataError, match="data covers 30.00 days but the windows need 605.00"):
        split_windows(frame=frame)
    both = pl.concat([frame, frame.with_columns(pl.lit("OTHER").alias("symbol"))])
    with pytest.raises(MarketDataError, match="pass symbol=.*set market.symbol to one of them"):
        split_windows(frame=both, train_days=10, backtest_days=10, forward_days=10)
    chosen = split_windows(frame=both, train_days=10, backtest_days=10, forward_days=10, symbol="OTHER")
    assert chosen.train.symbol == "OTHER" and chosen.forward.n_bars == 240
    with pytest.raises(MarketDataError, match="not in the market frame .* set market.symbol to one of them"):
        split_windows(frame=both, train_days=10, backtest_days=10, forward_days=10, symbol="NOPE")
    with pytest.raises(MarketDataError, match="backtest_days"):
        split_windows(frame=frame, train_days=10, backtest_days=0, forward_days=10)
    with pytest.raises(MarketDataError, match="the forward window"):
        split_windows(frame=frame, train_days=2, backtest_days=2, forward_days=1 / 48)


def test_window_round_trips_to_a_frame(synthetic_frame: pl.DataFrame, windows: MarketWindows) -> None:
    forward = windows.forward.to_frame()
    assert forward.equals(synthetic_frame.tail(windows.forward.n_bars))
