"""Execution model, invariants, trade extraction and throughput of simulations/backtest.py."""

from __future__ import annotations


import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from simulations.backtest import TRADE_COLUMNS, backtest_strategy, extract_trades, run_backtest
from simulations.errors import EvaluationError, MarketDataError
from simulations.strategies import BUILT_IN_STRATEGIES

CLOSE = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
POSITIONS = np.array([1.0, 1.0, -1.0, 0.0, 0.5])


def test_hand_computed_example() -> None:
    # held = [0, 1, 1, -1, 0]; price returns = [0, +10%, -10%, 0, +10%]
    # turnover = [0, 1, 0, 2, 1]; cost rate 10 bps -> costs = [0, .001, 0, .002, .001]
    result = run_backtest(close=CLOSE, positions=POSITIONS, fee_bps=7.0, slippage_bps=3.0, bar_seconds=3600.0)
    np.testing.assert_allclose(result.held, [0.0, 1.0, 1.0, -1.0, 0.0])
    np.testing.assert_allclose(result.gross_returns, [0.0, 0.1, -0.1, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(result.turnover, [0.0, 1.0, 0.0, 2.0, 1.0])
    np.testing.assert_allclose(result.costs, [0.0, 0.001, 0.0, 0.002, 0.001])
    np.testing.assert_allclose(result.net_returns, [0.0, 0.099, -0.1, -0.002, -0.001], atol=1e-15)
    np.testing.assert_allclose(result.equity, [1.0, 1.099, 0.9891, 0.9871218, 0.9861346782], rtol=1e-12)
    assert result.equity[0] == 1.0
    assert result.total_costs == pytest.approx(0.004)
    assert result.exposure == pytest.approx(3 / 5)
    assert result.total_return == pytest.approx(0.9861346782 - 1.0)
    assert result.bar_seconds == 3600.0


def test_hand_computed_trades() -> None:
    result = run_backtest(close=CLOSE, positions=POSITIONS, fee_bps=10.0, slippage_bps=0.0)
    trades = result.trades
    assert tuple(trades.columns) == TRADE_COLUMNS
    # Long over bars 1-2 (entered at close[0] = 100, out at close[2] = 99); then short on
    # bar 3 (flip: 99 -> 99), closed on bar 4. Cost rate c = 0.001.
    long_pnl = (1.1 - 0.001) * (1 - 0.1) * (1 - 0.001) - 1  # open cost, two bars, close cost
    # The short starts after the long's closing cost: (1 - 2c) / (1 - c), then its own close c.
    short_pnl = (1 - 0.002) / (1 - 0.001) * (1 - 0.001) - 1
    expected = pl.DataFrame(
        {
            "entry_bar": [1, 3],
            "exit_bar": [2, 3],
            "side": [1, -1],
            "entry_price": [100.0, 99.0],
            "exit_price": [99.0, 99.0],
            "pnl": [long_pnl, short_pnl],
            "bars_held": [2, 1],
            "open": [False, False],
        },
        schema=trades.schema,
    )
    assert trades.drop("pnl").equals(expected.drop("pnl"))
    np.testing.assert_allclose(trades["pnl"].to_numpy(), expected["pnl"].to_numpy(), rtol=1e-12)


def test_open_trade_is_closed_at_the_last_bar_and_flagged() -> None:
    result = run_backtest(close=CLOSE, positions=np.array([0.0, 0.0, 0.5, 0.5, 0.5]), fee_bps=10.0, slippage_bps=0.0)
    trades = result.trades
    assert trades.height == 1 and trades["open"][0] and trades["exit_bar"][0] == 4
    expected = (1 - 0.0005) * (1 + 0.5 * 0.0) * (1 + 0.5 * 0.1) * (1 - 0.0005) - 1
    assert trades["pnl"][0] == pytest.approx(expected, rel=1e-12)


def test_no_trades_gives_an_empty_frame_with_the_schema() -> None:
    trades = run_backtest(close=CLOSE, positions=np.zeros(5)).trades
    assert trades.height == 0 and tuple(trades.columns) == TRADE_COLUMNS


def test_trades_need_a_single_run() -> None:
    result = run_backtest(close=np.stack([CLOSE, CLOSE]), positions=np.stack([POSITIONS, POSITIONS]))
    with pytest.raises(EvaluationError, match="single run"):
        extract_trades(result=result)


prices = arrays(np.float64, st.integers(2, 60), elements=st.floats(0.8, 1.25)).map(lambda steps: 100.0 * np.cumprod(steps))


@st.composite
def price_and_positions(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    close = draw(prices)
    levels = st.sampled_from([-1.0, -0.5, 0.0, 0.0, 0.25, 1.0])
    positions = draw(arrays(np.float64, close.size, elements=levels))
    return close, positions


@settings(max_examples=150, deadline=None)
@given(data=price_and_positions(), fee=st.floats(0.0, 50.0), slippage=st.floats(0.0, 20.0))
def test_trade_pnl_compounds_to_the_equity(data: tuple[np.ndarray, np.ndarray], fee: float, slippage: float) -> None:
    close, positions = data
    result = run_backtest(close=close, positions=positions, fee_bps=fee, slippage_bps=slippage)
    trades = result.trades
    held_sign = np.sign(result.held)
    assert trades["bars_held"].sum() == np.count_nonzero(held_sign)
    assert np.all(trades["side"].to_numpy() == held_sign[trades["entry_bar"].to_numpy()])
    closing = (1.0 - abs(result.held[-1]) * (fee + slippage) * 1e-4) if trades.height and trades["open"][-1] else 1.0
    np.testing.assert_allclose(np.prod(1.0 + trades["pnl"].to_numpy()), result.equity[-1] * closing, rtol=1e-10)


@settings(max_examples=100, deadline=None)
@given(data=price_and_positions(), fee=st.floats(0.0, 100.0))
def test_doubling_fees_never_raises_pnl(data: tuple[np.ndarray, np.ndarray], fee: float) -> None:
    close, positions = data
    single = run_backtest(close=close, positions=positions, fee_bps=fee, slippage_bps=1.0)
    double = run_backtest(close=close, positions=positions, fee_bps=2 * fee, slippage_bps=1.0)
    assert np.all(double.net_returns <= single.net_returns)
    assert double.equity[-1] <= single.equity[-1] or np.isclose(double.equity[-1], single.equity[-1], rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(data=price_and_positions(), scale=st.floats(1e-3, 1e3))
def test_scaling_prices_leaves_returns_unchanged(data: tuple[np.ndarray, np.ndarray], scale: float) -> None:
    close, positions = data
    base = run_backtest(close=close, positions=positions)
    scaled = run_backtest(close=close * scale, positions=positions)
    np.testing.assert_allclose(scaled.net_returns, base.net_returns, rtol=1e-9, atol=1e-15)


def test_constant_position_is_buy_and_hold_less_one_entry_cost(random_walk_close: np.ndarray) -> None:
    result = run_backtest(close=random_walk_close, positions=np.ones_like(random_walk_close), fee_bps=4.0, slippage_bps=1.0)
    first_return = random_walk_close[1] / random_walk_close[0] - 1.0
    buy_and_hold = random_walk_close[-1] / random_walk_close[0]
    expected = buy_and_hold * (1.0 + first_return - 5e-4) / (1.0 + first_return)
    assert result.equity[-1] == pytest.approx(expected, rel=1e-10)
    assert result.total_costs == pytest.approx(5e-4) and result.trades.height == 1


def test_batched_runs_equal_single_runs(random_walk_close: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    close = np.stack([random_walk_close, random_walk_close[::-1], random_walk_close * 2.0])
    positions = np.clip(rng.normal(size=close.shape), -1.0, 1.0)
    batched = run_backtest(close=close, positions=positions)
    for row in range(3):
        single = run_backtest(close=close[row], positions=positions[row])
        np.testing.assert_array_equal(batched.equity[row], single.equity)
    assert batched.total_return.shape == (3,) and batched.exposure.shape == (3,)


@pytest.mark.parametrize(
    ("close", "positions", "kwargs", "error", "message"),
    [
        (CLOSE, POSITIONS[:4], {}, EvaluationError, "shape"),
        (CLOSE[:1], POSITIONS[:1], {}, EvaluationError, "n_bars >= 2"),
        (np.array([1.0, np.nan, 1.0]), np.zeros(3), {}, MarketDataError, r"non-finite value at index \(1,\)"),
        (np.array([1.0, 0.0, 1.0]), np.zeros(3), {}, MarketDataError, "must be > 0"),
        (CLOSE, POSITIONS * 1.5, {}, EvaluationError, r"\[-1, 1\]"),
        (CLOSE, np.array([0.0, np.inf, 0.0, 0.0, 0.0]), {}, EvaluationError, "non-finite"),
        (CLOSE, POSITIONS, {"fee_bps": -1.0}, EvaluationError, "fee_bps"),
        (CLOSE, POSITIONS, {"slippage_bps": float("nan")}, EvaluationError, "slippage_bps"),
    ],
)
def test_invalid_inputs(close: np.ndarray, positions: np.ndarray, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        run_backtest(close=close, positions=positions, **kwargs)


def test_backtest_strategy_warms_up_on_history(random_walk_close: np.ndarray) -> None:
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params={"lookback": 100, "vol_lookback": 50, "target_bar_vol": 0.01})
    history, window = random_walk_close[:500], random_walk_close[500:]
    warmed = backtest_strategy(strategy=strategy, params=params, close=window, history=history)
    expected = strategy.positions(close=random_walk_close, params=params)[500:]
    np.testing.assert_array_equal(warmed.held[1:], expected[:-1])
    assert warmed.held[0] == 0.0 and warmed.held[1] != 0.0
    cold = backtest_strategy(strategy=strategy, params=params, close=window)
    assert not cold.held[:101].any()
    with pytest.raises(MarketDataError, match="leading shape"):
        backtest_strategy(strategy=strategy, params=params, close=window, history=np.ones((2, 5)))
