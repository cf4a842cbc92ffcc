"""Paper venue numerics: streaming equals batch equals the backtester; grading inputs; loud failures."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from simulations.backtest import backtest_strategy
from simulations.errors import PaperTradingError
from simulations.gates import GatePolicy, evaluate_paper_gate
from simulations.market import MarketWindows, generate_synthetic_market, split_windows
from simulations.metrics import compute_metrics, win_rate
from simulations.paper import (
    BAR_COLUMNS,
    BAR_SCHEMA,
    FILL_COLUMNS,
    SessionState,
    advance_session,
    paper_metrics,
)
from simulations.strategies import BUILT_IN_STRATEGIES

FEE_BPS, SLIPPAGE_BPS = 2.0, 1.0
STRATEGIES = {
    "momentum": {"lookback": 12, "vol_lookback": 24, "target_bar_vol": 0.003},
    "mean_reversion": {"lookback": 24, "entry_z": 1.5, "exit_z": 0.3},
}


@pytest.fixture(scope="module")
def small_windows() -> MarketWindows:
    """40 days of synthetic hourly bars: 360 forward bars after 600 bars of history."""
    return split_windows(
        frame=generate_synthetic_market(n_days=40), train_days=20, backtest_days=5, forward_days=15
    )


def _advance(windows: MarketWindows, name: str, n_available: int, state: SessionState | None = None, params=None):
    strategy, model = BUILT_IN_STRATEGIES.build(name=name, params=params or STRATEGIES[name])
    return advance_session(
        state=state or SessionState(),
        history_close=windows.history_before(name="forward"),
        forward_close=windows.forward.close,
        forward_timestamps=windows.forward.timestamps,
        n_available=n_available,
        strategy=strategy,
        params=model,
        fee_bps=FEE_BPS,
        slippage_bps=SLIPPAGE_BPS,
    )


def _backtest(windows: MarketWindows, name: str, n_bars: int, params=None):
    strategy, model = BUILT_IN_STRATEGIES.build(name=name, params=params or STRATEGIES[name])
    return backtest_strategy(
        strategy=strategy,
        params=model,
        close=windows.forward.close[:n_bars],
        history=windows.history_before(name="forward"),
        fee_bps=FEE_BPS,
        slippage_bps=SLIPPAGE_BPS,
        bar_seconds=windows.forward.bar_seconds,
    )


def _metrics(windows: MarketWindows, bars: pl.DataFrame, name: str, **overrides):
    kwargs = {
        "bars": bars,
        "fee_bps": FEE_BPS,
        "slippage_bps": SLIPPAGE_BPS,
        "bar_seconds": windows.forward.bar_seconds,
        "periods_per_year": windows.forward.periods_per_year,
        "policy": GatePolicy(),
    }
    if "backtest" not in overrides:
        kwargs["backtest"] = _backtest(windows, name, bars.height)
    return paper_metrics(**{**kwargs, **overrides})


class _NoParams(BaseModel):
    """Params of a strategy that has none."""


class _FixedTargets:
    """A strategy that decides preset targets on the last bars it is shown (no look-ahead)."""

    name: ClassVar[str] = "fixed"
    params_model: ClassVar[type[BaseModel]] = _NoParams

    def __init__(self, targets: np.ndarray) -> None:
        self.targets = targets

    def positions(self, *, close: np.ndarray, params: BaseModel) -> np.ndarray:
        return self.targets[: close.shape[-1]].copy()

    def search_space(self) -> dict:
        return {}


def test_hand_computed_fills_follow_the_execution_model() -> None:
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    stamps = np.arange(5).astype("datetime64[h]").astype("datetime64[us]")
    step = advance_session(
        state=SessionState(),
        history_close=np.empty(0),
        forward_close=close,
        forward_timestamps=stamps,
        n_available=5,
        strategy=_FixedTargets(np.array([1.0, 1.0, -1.0, 0.0, 0.5])),
        params=_NoParams(),
        fee_bps=7.0,
        slippage_bps=3.0,
    )
    # Target of bar t is held from bar t + 1 and filled at close[t]; 10 bps on |change|.
    assert step.fills.columns == list(FILL_COLUMNS)
    assert step.fills["bar_index"].to_list() == [1, 3, 4]
    assert step.fills["side"].to_list() == ["buy", "sell", "buy"]
    np.testing.assert_allclose(step.fills["quantity"].to_numpy(), [1.0, -2.0, 1.0])
    np.testing.assert_allclose(step.fills["position"].to_numpy(), [1.0, -1.0, 0.0])
    np.testing.assert_allclose(step.fills["price"].to_numpy(), [100.0, 99.0, 99.0])
    np.testing.assert_allclose(step.fills["cost"].to_numpy(), [0.001, 0.002, 0.001])
    assert step.fills["timestamp"].to_list() == pl.Series(stamps[[1, 3, 4]]).dt.replace_time_zone("UTC").to_list()
    assert step.bars.columns == list(BAR_COLUMNS)
    np.testing.assert_allclose(step.bars["held"].to_numpy(), [0.0, 1.0, 1.0, -1.0, 0.0])
    np.testing.assert_allclose(step.bars["equity"].to_numpy(), [1.0, 1.099, 0.9891, 0.9871218, 0.9861346782], rtol=1e-12)
    assert step.state == SessionState(
        bars_processed=5, held=0.0, pending_target=0.5, equity=step.bars["equity"][-1], last_close=108.9
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_paper_pnl_equals_the_backtester_over_the_same_bars(small_windows: MarketWindows, name: str) -> None:
    for n_bars in (small_windows.forward.n_bars, 100):
        bars = _advance(small_windows, name, n_bars).bars
        result = _backtest(small_windows, name, n_bars)
        for column, expected in (
            ("held", result.held),
            ("net_return", result.net_returns),
            ("cost", result.costs),
            ("equity", result.equity),
        ):
            np.testing.assert_allclose(bars[column].to_numpy(), expected, rtol=0, atol=1e-12, err_msg=column)
        assert bars["equity"][-1] - 1.0 == pytest.approx(result.total_return, abs=1e-12)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_grading_inputs_equal_the_backtesters(small_windows: MarketWindows, name: str) -> None:
    n_bars = 240  # ten days
    bars = _advance(small_windows, name, n_bars).bars
    metrics = _metrics(small_windows, bars, name)
    result = _backtest(small_windows, name, n_bars)
    expected = compute_metrics(result=result, periods_per_year=small_windows.forward.periods_per_year)
    closed = result.trades.filter(~pl.col("open"))

    assert metrics.days == 10.0 and metrics.bars_processed == n_bars
    assert metrics.n_trades == expected.n_trades and metrics.n_trades > 0
    assert metrics.n_closed_trades == closed.height
    assert metrics.win_rate == pytest.approx(win_rate(trade_pnl=closed["pnl"].to_numpy()), abs=1e-12)
    same = ("alpha", "beta", "sharpe", "max_drawdown", "total_return", "benchmark_total_return", "probabilistic_sharpe")
    for field in same:
        assert getattr(metrics, field) == pytest.approx(getattr(expected, field), abs=1e-12), field
    if expected.min_track_record_length is None:
        assert metrics.min_track_record_days is None
    else:
        assert metrics.min_track_record_days == pytest.approx(expected.min_track_record_length / 24, rel=1e-12)
    assert metrics.reconciliation.correlation == pytest.approx(1.0, abs=1e-12)
    assert metrics.reconciliation.tracking_difference == pytest.approx(0.0, abs=1e-12)
    assert metrics.reconciliation.backtest_total_return == pytest.approx(result.total_return, abs=1e-12)
    verdict = evaluate_paper_gate(**metrics.gate_inputs(), policy=GatePolicy())
    assert verdict.grade == metrics.grade
    assert [check.name for check in metrics.grading_checks] == [check.name for check in verdict.grading_checks]


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(STRATEGIES)),
    boundaries=st.lists(st.integers(min_value=0, max_value=360), min_size=1, max_size=12),
)
def test_any_chunking_of_the_stream_equals_the_batch(small_windows: MarketWindows, name: str, boundaries: list[int]) -> None:
    n = small_windows.forward.n_bars
    batch = _advance(small_windows, name, n)
    # Unsorted boundaries include clocks that release nothing new; those must be no-ops.
    state, fills, bars = SessionState(), [], []
    for n_available in [*boundaries, n]:
        step = _advance(small_windows, name, n_available, state)
        state = step.state
        fills.append(step.fills)
        bars.append(step.bars)
    assert state == batch.state
    assert pl.concat(bars).equals(batch.bars)
    assert pl.concat(fills).equals(batch.fills)


def test_a_clock_that_releases_nothing_returns_the_state_unchanged(small_windows: MarketWindows) -> None:
    first = _advance(small_windows, "momentum", 50)
    again = _advance(small_windows, "momentum", 40, first.state)
    assert again.state is first.state and again.bars.height == 0 and again.fills.height == 0
    # Its empty record has the schema of a full one, so chunks concatenate whatever they hold.
    assert (again.bars.schema, again.fills.schema) == (first.bars.schema, first.fills.schema)


def test_a_session_that_never_trades_has_an_undefined_correlation_not_zero(small_windows: MarketWindows) -> None:
    params = {"lookback": 5_000, "vol_lookback": 24, "target_bar_vol": 0.003}  # never warms up
    bars = _advance(small_windows, "momentum", 100, params=params).bars
    metrics = _metrics(small_windows, bars, "momentum", backtest=_backtest(small_windows, "momentum", 100, params))
    assert metrics.n_trades == 0 and metrics.total_return == 0.0 and metrics.sharpe == 0.0
    assert metrics.reconciliation.correlation is None
    assert metrics.reconciliation.tracking_difference == 0.0


@pytest.mark.parametrize(
    ("benchmark", "match"),
    [
        (np.empty(0), "non-empty"),
        (np.full(100, np.nan), "finite prices"),
        (np.concatenate([np.full(99, 100.0), [np.inf]]), "finite prices"),
        (np.full(50, 100.0), "align"),
        (np.full(100, 100.0), "zero variance"),
    ],
    ids=["empty", "nan", "inf", "misaligned", "flat"],
)
def test_a_benchmark_that_cannot_be_used_raises(small_windows: MarketWindows, benchmark: np.ndarray, match: str) -> None:
    bars = _advance(small_windows, "momentum", 100).bars
    with pytest.raises(PaperTradingError, match=match):
        _metrics(small_windows, bars, "momentum", benchmark_close=benchmark)


def test_metrics_of_damaged_or_short_records_raise(small_windows: MarketWindows) -> None:
    bars = _advance(small_windows, "momentum", 100).bars
    with pytest.raises(PaperTradingError, match="without gaps"):
        _metrics(small_windows, bars.filter(pl.col("bar_index") != 50), "momentum")
    with pytest.raises(PaperTradingError, match="non-finite"):
        holed = bars.with_columns(pl.when(pl.col("bar_index") == 7).then(None).otherwise(pl.col("equity")).alias("equity"))
        _metrics(small_windows, holed, "momentum")
    with pytest.raises(PaperTradingError, match="n >= 2"):
        _metrics(small_windows, bars.head(2), "momentum", backtest=_backtest(small_windows, "momentum", 2))
    with pytest.raises(PaperTradingError, match="over the session's 100 bars"):
        _metrics(small_windows, bars, "momentum", backtest=_backtest(small_windows, "momentum", 99))
    with pytest.raises(PaperTradingError, match="lack columns"):
        _metrics(small_windows, pl.DataFrame(schema=BAR_SCHEMA).drop("equity"), "momentum", backtest=_backtest(small_windows, "momentum", 2))


def test_invalid_session_inputs_raise(small_windows: MarketWindows) -> None:
    n = small_windows.forward.n_bars
    with pytest.raises(PaperTradingError, match="n_available"):
        _advance(small_windows, "momentum", n + 1)
    with pytest.raises(PaperTradingError, match="n_available"):
        _advance(small_windows, "momentum", -1)
    step = _advance(small_windows, "momentum", 10)
    moved = SessionState(
        bars_processed=10, held=step.state.held, pending_target=step.state.pending_target,
        equity=step.state.equity, last_close=step.state.last_close + 1.0,
    )
    with pytest.raises(PaperTradingError, match="changed under a running session"):
        _advance(small_windows, "momentum", 20, moved)
    strategy, model = BUILT_IN_STRATEGIES.build(name="momentum", params=STRATEGIES["momentum"])
    with pytest.raises(PaperTradingError, match="slippage_bps"):
        advance_session(
            state=SessionState(), history_close=np.empty(0), forward_close=small_windows.forward.close,
            forward_timestamps=small_windows.forward.timestamps, n_available=5, strategy=strategy, params=model,
            fee_bps=1.0, slippage_bps=float("nan"),
        )
    with pytest.raises(PaperTradingError, match="forward_close"):
        advance_session(
            state=SessionState(), history_close=np.empty(0), forward_close=np.array([100.0, -1.0]),
            forward_timestamps=small_windows.forward.timestamps[:2], n_available=2, strategy=strategy, params=model,
            fee_bps=1.0, slippage_bps=1.0,
        )


def test_strategy_targets_outside_the_unit_interval_raise() -> None:
    with pytest.raises(PaperTradingError, match=r"targets must be finite positions in \[-1, 1\]"):
        advance_session(
            state=SessionState(), history_close=np.empty(0), forward_close=np.array([100.0, 101.0, 102.0]),
            forward_timestamps=np.arange(3).astype("datetime64[h]").astype("datetime64[us]"), n_available=3,
            strategy=_FixedTargets(np.array([0.0, 2.0, 0.0])), params=_NoParams(), fee_bps=1.0, slippage_bps=1.0,
        )


@pytest.mark.parametrize(
    "fields",
    [
        {"bars_processed": -1},
        {"held": 1.5},
        {"pending_target": float("nan")},
        {"equity": 0.0},
        {"bars_processed": 3},
        {"last_close": 100.0},
    ],
    ids=["negative_bars", "held_out_of_range", "nan_target", "no_equity", "bars_without_close", "close_before_bars"],
)
def test_impossible_states_are_rejected(fields: dict) -> None:
    with pytest.raises(PaperTradingError):
        SessionState(**fields)
