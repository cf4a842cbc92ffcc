"""Vectorised backtester: one execution model for backtest, stress test and paper trading.

The target position decided on bar ``t`` (from ``close[..., :t + 1]``) is held from bar
``t + 1``: ``held[t + 1] = positions[t]`` and ``held[0] = 0`` (every run starts flat). Bar
``t`` earns ``held[t] * (close[t] / close[t - 1] - 1)`` and pays
``|held[t] - held[t - 1]| * (fee_bps + slippage_bps) * 1e-4`` when the position changes;
returns are fractions of the previous bar's equity and equity starts at 1.0. All arrays
have shape ``(..., n_bars)``; leading axes are independent runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
from pydantic import BaseModel

from simulations.constants import BPS, DEFAULT_FEE_BPS, DEFAULT_SLIPPAGE_BPS
from simulations.errors import EvaluationError, MarketDataError
from simulations.strategies import Strategy

#: Columns of :func:`extract_trades`'s frame.
TRADE_COLUMNS = ("entry_bar", "exit_bar", "side", "entry_price", "exit_price", "pnl", "bars_held", "open")


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Per-bar outcome of :func:`run_backtest`; every array has the input's shape ``(..., n_bars)``.

    Attributes
    ----------
    close
        The prices traded (price units).
    held
        Position held during each bar (fraction of equity, in [-1, 1]); ``held[..., 0] == 0``.
    gross_returns
        ``held * price return`` per bar (fraction of equity).
    costs
        Fees plus slippage per bar (fraction of equity).
    net_returns
        ``gross_returns - costs`` per bar (fraction of equity); bar 0 is 0 by construction.
    equity
        Compounded net returns, starting at 1.0 on bar 0.
    turnover
        ``|held[t] - held[t - 1]|`` per bar (fraction of equity traded).
    fee_bps, slippage_bps
        Cost rates used, basis points of traded notional.
    bar_seconds
        Bar length in seconds, when known.
    """

    close: np.ndarray
    held: np.ndarray
    gross_returns: np.ndarray
    costs: np.ndarray
    net_returns: np.ndarray
    equity: np.ndarray
    turnover: np.ndarray
    fee_bps: float
    slippage_bps: float
    bar_seconds: float | None

    @property
    def n_bars(self) -> int:
        """Bars per run."""
        return int(self.close.shape[-1])

    @property
    def total_costs(self) -> np.ndarray | float:
        """Sum of per-bar costs over each run (fraction of equity, not compounded)."""
        return _scalar_or_array(self.costs.sum(axis=-1))

    @property
    def exposure(self) -> np.ndarray | float:
        """Share of bars with a non-zero position, per run (fraction in [0, 1])."""
        return _scalar_or_array(np.count_nonzero(self.held, axis=-1) / self.n_bars)

    @property
    def total_return(self) -> np.ndarray | float:
        """Final equity minus 1, per run (fraction)."""
        return _scalar_or_array(self.equity[..., -1] - 1.0)

    @cached_property
    def trades(self) -> pl.DataFrame:
        """Trades of a single run (see :func:`extract_trades`), computed once on first access."""
        return extract_trades(result=self)


def _scalar_or_array(values: np.ndarray) -> np.ndarray | float:
    return float(values) if values.ndim == 0 else values


def _validated_inputs(
    close: np.ndarray, positions: np.ndarray, fee_bps: float, slippage_bps: float
) -> tuple[np.ndarray, np.ndarray]:
    for name, rate in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps)):
        if isinstance(rate, bool) or not isinstance(rate, int | float | np.floating) or not np.isfinite(rate) or rate < 0:
            raise EvaluationError(f"{name} must be a finite number >= 0 (basis points), got {rate!r}")
    close_array = np.asarray(close, dtype=np.float64)
    position_array = np.asarray(positions, dtype=np.float64)
    if close_array.shape != position_array.shape:
        raise EvaluationError(
            f"positions have shape {position_array.shape} but close has {close_array.shape}; they must match"
        )
    if close_array.ndim < 1 or close_array.shape[-1] < 2:
        raise EvaluationError(f"a backtest needs shape (..., n_bars) with n_bars >= 2, got {close_array.shape}")
    # min/max propagate NaN, so two reductions check finiteness and range in one pass each.
    low, high = close_array.min(), close_array.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise MarketDataError(f"close has a non-finite value at index {_first_bad(~np.isfinite(close_array))}")
    if low <= 0:
        raise MarketDataError(f"close must be > 0; got {low!r} at index {_first_bad(close_array <= 0)}")
    low, high = position_array.min(), position_array.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        raise EvaluationError(f"positions have a non-finite value at index {_first_bad(~np.isfinite(position_array))}")
    if low < -1.0 or high > 1.0:
        raise EvaluationError(
            f"positions must lie in [-1, 1] (fraction of equity); got {low if low < -1 else high!r} at index "
            f"{_first_bad(np.abs(position_array) > 1.0)}"
        )
    return close_array, position_array


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def run_backtest(
    *,
    close: np.ndarray,
    positions: np.ndarray,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    bar_seconds: float | None = None,
) -> BacktestResult:
    """Backtest target positions on close prices with the shared execution model.

    Parameters
    ----------
    close
        Close prices (price units, > 0), shape ``(..., n_bars)``, ``n_bars >= 2``.
    positions
        Target positions decided on each bar (fraction of equity, in [-1, 1]), same shape.
    fee_bps, slippage_bps
        Costs per unit of traded notional, basis points (>= 0).
    bar_seconds
        Bar length in seconds, recorded on the result.

    Returns
    -------
    BacktestResult
        Per-bar held positions, returns, costs, turnover and equity.

    Raises
    ------
    EvaluationError
        On mismatched shapes, fewer than 2 bars, non-finite or out-of-range positions, or
        negative costs.
    MarketDataError
        On non-finite or non-positive prices.
    """
    close_array, position_array = _validated_inputs(close, positions, fee_bps, slippage_bps)
    held = np.empty_like(position_array)
    held[..., 0] = 0.0
    held[..., 1:] = position_array[..., :-1]

    gross = np.empty_like(close_array)
    gross[..., 0] = 0.0
    np.divide(close_array[..., 1:], close_array[..., :-1], out=gross[..., 1:])
    gross[..., 1:] -= 1.0
    gross *= held

    turnover = np.empty_like(held)
    turnover[..., 0] = 0.0
    np.subtract(held[..., 1:], held[..., :-1], out=turnover[..., 1:])
    np.abs(turnover, out=turnover)
    costs = turnover * ((float(fee_bps) + float(slippage_bps)) * BPS)

    net = gross - costs
    equity = net + 1.0
    np.multiply.accumulate(equity, axis=-1, out=equity)
    return BacktestResult(
        close=close_array,
        held=held,
        gross_returns=gross,
        costs=costs,
        net_returns=net,
        equity=equity,
        turnover=turnover,
        fee_bps=float(fee_bps),
        slippage_bps=float(slippage_bps),
        bar_seconds=bar_seconds,
    )


def extract_trades(*, result: BacktestResult) -> pl.DataFrame:
    """Trades of a single (1-D) backtest, without a loop over bars.

    A trade is a maximal run of bars whose held position has the same non-zero sign (a
    flip closes one trade and opens the next). It is entered at the close before its first
    bar and exited at the close of its last bar. Its ``pnl`` compounds its bars' net
    returns: gross returns, rebalancing costs inside the trade, the cost of opening it and
    the cost of closing it (charged on the bar after its last). On a flip the old trade is
    closed before the new one opens, so the new trade starts from the equity left after
    the closing cost. A trade still open on the last bar is closed there, charged its
    closing cost, and flagged ``open``. Consequently the product of ``1 + pnl`` over all
    trades equals the final equity (times ``1 - closing cost`` of a flagged trade).

    Parameters
    ----------
    result
        A backtest with a single run (arrays of shape ``(n_bars,)``).

    Returns
    -------
    polars.DataFrame
        One row per trade, columns :data:`TRADE_COLUMNS`: ``entry_bar`` and ``exit_bar``
        (first and last bar held, inclusive), ``side`` (+1 long, -1 short), ``entry_price``,
        ``exit_price`` (price units), ``pnl`` (fraction), ``bars_held``, ``open`` (bool).

    Raises
    ------
    EvaluationError
        If the result holds more than one run.
    """
    if result.held.ndim != 1:
        raise EvaluationError(
            f"trades are extracted from a single run; this result has shape {result.held.shape}: "
            "index one run first"
        )
    held, close = result.held, result.close
    n = held.size
    cost_rate = (result.fee_bps + result.slippage_bps) * BPS
    side = np.sign(held)
    changed = np.flatnonzero(side[1:] != side[:-1]) + 1
    starts = changed[side[changed] != 0]
    boundaries = np.append(changed, n)
    ends = boundaries[np.searchsorted(boundaries, starts, side="right")] - 1

    # On a flip the previous trade is closed first: it ends with factor 1 - closing cost,
    # and the new trade starts from that equity, so its entry-bar factor divides the bar's
    # growth by it. This keeps the product of all trades' growth equal to the equity's.
    # Flat bars get factor 1 so reduceat's segments, which run to the next entry, cover
    # the trade's bars only; the closing cost is applied explicitly below.
    bar_factor = 1.0 + result.net_returns
    bar_factor[starts] /= 1.0 - np.abs(held[starts - 1]) * cost_rate
    bar_factor[side == 0] = 1.0
    growth = np.multiply.reduceat(bar_factor, starts) if starts.size else np.empty(0)
    pnl = growth * (1.0 - np.abs(held[ends]) * cost_rate) - 1.0
    return pl.DataFrame(
        {
            "entry_bar": starts.astype(np.int64),
            "exit_bar": ends.astype(np.int64),
            "side": side[starts].astype(np.int8),
            "entry_price": close[starts - 1],
            "exit_price": close[ends],
            "pnl": pnl,
            "bars_held": (ends - starts + 1).astype(np.int64),
            "open": ends == n - 1,
        },
        schema={
            "entry_bar": pl.Int64,
            "exit_bar": pl.Int64,
            "side": pl.Int8,
            "entry_price": pl.Float64,
            "exit_price": pl.Float64,
            "pnl": pl.Float64,
            "bars_held": pl.Int64,
            "open": pl.Boolean,
        },
    )


def backtest_strategy(
    *,
    strategy: Strategy,
    params: BaseModel,
    close: np.ndarray,
    history: np.ndarray | None = None,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    bar_seconds: float | None = None,
) -> BacktestResult:
    """Positions of ``strategy`` on ``close``, warmed up on ``history``, then :func:`run_backtest`.

    Indicators see ``history`` (bars before the window, e.g.
    :meth:`MarketWindows.history_before`) so the window is traded from its first bar; the
    account still starts flat at the window's start, and only the window's bars are
    backtested.

    Parameters
    ----------
    strategy, params
        From :meth:`simulations.strategies.StrategyRegistry.build`.
    close
        Window close prices (price units), shape ``(..., n_bars)``.
    history
        Earlier close prices, shape ``(..., n_history)`` with the same leading axes, or
        ``None`` to start the indicators cold.
    fee_bps, slippage_bps
        Costs per unit of traded notional, basis points.
    bar_seconds
        Bar length in seconds, recorded on the result.

    Returns
    -------
    BacktestResult
        The window's backtest.

    Raises
    ------
    MarketDataError
        If ``history`` and ``close`` disagree on leading axes (or on the errors of
        :func:`run_backtest` and the strategy).
    """
    window = np.asarray(close, dtype=np.float64)
    if history is None or np.asarray(history).shape[-1] == 0:
        full = window
    else:
        past = np.asarray(history, dtype=np.float64)
        if past.shape[:-1] != window.shape[:-1]:
            raise MarketDataError(
                f"history has leading shape {past.shape[:-1]} but close has {window.shape[:-1]}; they must match"
            )
        full = np.concatenate([past, window], axis=-1)
    positions = strategy.positions(close=full, params=params)[..., full.shape[-1] - window.shape[-1] :]
    return run_backtest(
        close=window, positions=positions, fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=bar_seconds
    )
