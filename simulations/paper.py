"""Paper-trading venue: a streaming engine over the forward window, with its grading inputs.

The venue trades the forward window, which neither the study nor the backtest has seen. A
session processes bars in chunks as the venue's clock releases them; processing a chunk is
:func:`advance_session`, a pure function of the previous :class:`SessionState`.

Execution model (the backtester's, :mod:`simulations.backtest`): the target position decided
on bar ``t`` from closes up to ``t`` (history plus the released forward bars) is filled at
the start of bar ``t + 1`` at ``close[t]``, the last price known when the order goes out and
the price the backtester's returns on bar ``t + 1`` are measured from. Bar ``t`` earns
``held[t] * (close[t] / close[t - 1] - 1)`` and pays
``|held[t] - held[t - 1]| * (fee_bps + slippage_bps) * 1e-4``; every session starts flat with
equity 1.0, so bar 0 never trades. The target decided on the last released bar waits in
``SessionState.pending_target`` until the next bar is released.

Streaming equals batch exactly: strategies have no look-ahead (the target on bar ``t`` does
not change, not even by rounding, when later bars are appended), and equity is carried from
chunk to chunk with the same sequential product the backtester uses. Hence the per-bar
record of a session equals :func:`simulations.backtest.backtest_strategy` over the same bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulations.backtest import BacktestResult
from simulations.constants import BPS, SECONDS_PER_DAY, ZERO_STD_RELATIVE_TOLERANCE
from simulations.errors import EvaluationError, PaperTradingError
from simulations.gates import GatePolicy, Grade, ThresholdCheck, grade_paper
from simulations.metrics import compute_metrics, total_return, win_rate
from simulations.sequential import first_crossing, sharpe_e_values
from simulations.strategies import Strategy

_TIMESTAMP = pl.Datetime("us", "UTC")


#: Schema of a session's fills: one row per bar on which the held position changed.
#: ``quantity`` is the signed change of the position and ``position`` the position after it
#: (fractions of equity); ``price`` is the fill price (price units, the previous bar's
#: close); ``cost`` is fee plus slippage (fraction of equity).
FILL_SCHEMA: dict[str, pl.DataType] = {
    "bar_index": pl.Int64(),
    "timestamp": _TIMESTAMP,
    "side": pl.String(),
    "quantity": pl.Float64(),
    "position": pl.Float64(),
    "price": pl.Float64(),
    "cost": pl.Float64(),
}

#: Schema of a session's per-bar record (the backtester's per-bar arrays, as columns):
#: ``close`` (price units), ``held`` (position held during the bar, fraction of equity),
#: ``turnover`` (|change of held|), ``gross_return``, ``cost``, ``net_return`` (fractions of
#: the previous bar's equity) and ``equity`` (starts at 1.0).
BAR_SCHEMA: dict[str, pl.DataType] = {
    "bar_index": pl.Int64(),
    "timestamp": _TIMESTAMP,
    "close": pl.Float64(),
    "held": pl.Float64(),
    "turnover": pl.Float64(),
    "gross_return": pl.Float64(),
    "cost": pl.Float64(),
    "net_return": pl.Float64(),
    "equity": pl.Float64(),
}

FILL_COLUMNS = tuple(FILL_SCHEMA)
BAR_COLUMNS = tuple(BAR_SCHEMA)


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not math.isfinite(value):
        raise PaperTradingError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SessionState:
    """Where a paper session stands after the bars it has processed.

    Attributes
    ----------
    bars_processed
        Forward bars processed so far, ``[0, bars_processed)``.
    held
        Position held during the last processed bar (fraction of equity, in [-1, 1]).
    pending_target
        Target decided on the last processed bar, filled when the next bar is released
        (fraction of equity, in [-1, 1]).
    equity
        Equity after the last processed bar (starts at 1.0).
    last_close
        Close of the last processed bar (price units); ``None`` before the first bar. It
        lets :func:`advance_session` detect a forward window that changed under a session.

    Raises
    ------
    PaperTradingError
        On a state no session can reach (e.g. read back from a damaged row).
    """

    bars_processed: int = 0
    held: float = 0.0
    pending_target: float = 0.0
    equity: float = 1.0
    last_close: float | None = None

    def __post_init__(self) -> None:
        count = self.bars_processed
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise PaperTradingError(f"bars_processed must be an integer >= 0, got {count!r}")
        for name in ("held", "pending_target"):
            value = _finite(getattr(self, name), name)
            if not -1.0 <= value <= 1.0:
                raise PaperTradingError(f"{name} must be a position in [-1, 1] (fraction of equity), got {value!r}")
        if not _finite(self.equity, "equity") > 0.0:
            raise PaperTradingError(f"equity must be > 0, got {self.equity!r}")
        if (self.last_close is None) != (count == 0):
            raise PaperTradingError(
                f"last_close must be None exactly before the first bar; got {self.last_close!r} "
                f"after {count} bar(s)"
            )
        if self.last_close is not None and not _finite(self.last_close, "last_close") > 0.0:
            raise PaperTradingError(f"last_close must be a price > 0, got {self.last_close!r}")


@dataclass(frozen=True, eq=False)
class SessionStep:
    """Outcome of :func:`advance_session`: the new state, and the new bars and fills as columns
    and, built when first read, as frames.

    Attributes
    ----------
    state
        The state after the newly released bars.
    bar_columns, fill_columns
        The new bars' and fills' columns by the names of :data:`BAR_SCHEMA` and
        :data:`FILL_SCHEMA`, one array each; ``timestamp`` in integer microseconds since the
        epoch (UTC). A venue that stores them needs no frame.
    """

    state: SessionState
    bar_columns: dict[str, np.ndarray]
    fill_columns: dict[str, np.ndarray]

    @cached_property
    def bars(self) -> pl.DataFrame:
        """Per-bar record of the new bars (:data:`BAR_SCHEMA`)."""
        return _columns_frame(self.bar_columns, BAR_SCHEMA)

    @cached_property
    def fills(self) -> pl.DataFrame:
        """Fills on the new bars (:data:`FILL_SCHEMA`)."""
        return _columns_frame(self.fill_columns, FILL_SCHEMA)


def _columns_frame(columns: dict[str, np.ndarray], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    timestamps = pl.Series(columns["timestamp"], dtype=pl.Int64).cast(_TIMESTAMP)
    return pl.DataFrame({**columns, "timestamp": timestamps}, schema=schema)


def _no_columns(schema: dict[str, pl.DataType]) -> dict[str, np.ndarray]:
    kinds = {pl.Int64(): np.int64, pl.Float64(): np.float64, pl.String(): np.str_}
    return {name: np.empty(0, dtype=np.int64 if name == "timestamp" else kinds[dtype]) for name, dtype in schema.items()}


def _prices(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
        raise PaperTradingError(
            f"{name} must be a 1-D numeric array of prices, got shape {array.shape}, dtype {array.dtype}"
        )
    array = array.astype(np.float64, copy=False)
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise PaperTradingError(f"{name} must be finite prices > 0; got {array[index]!r} at index {index}")
    return array


def _cost_rate(fee_bps: float, slippage_bps: float) -> float:
    for name, rate in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps)):
        if _finite(rate, name) < 0:
            raise PaperTradingError(f"{name} must be >= 0 (basis points), got {rate!r}")
    # Same expression as run_backtest, so costs agree to the last bit.
    return (float(fee_bps) + float(slippage_bps)) * BPS


def advance_session(
    *,
    state: SessionState,
    history_close: np.ndarray,
    forward_close: np.ndarray,
    forward_timestamps: np.ndarray,
    n_available: int,
    strategy: Strategy,
    params: BaseModel,
    fee_bps: float,
    slippage_bps: float,
) -> SessionStep:
    """Process the forward bars released since ``state``: ``[state.bars_processed, n_available)``.

    Targets for the new bars come from closes up to each bar only (``history_close`` then
    ``forward_close[:n_available]``); each fills on the next bar. Processing bars in any
    chunks gives bit-identical states, fills and bars to processing them at once.

    Parameters
    ----------
    state
        The session's state before the new bars (``SessionState()`` for a new session).
    history_close
        Closes before the forward window, for indicator warm-up (price units), shape ``(m,)``.
    forward_close
        Closes of the whole forward window (price units), shape ``(n,)``; only the first
        ``n_available`` are read.
    forward_timestamps
        Bar timestamps of the forward window, ``datetime64[us]`` UTC, shape ``(n,)``.
    n_available
        Forward bars the venue's clock has released (0 <= n_available <= n). A value at or
        below ``state.bars_processed`` releases nothing and returns ``state`` unchanged.
    strategy, params
        From :meth:`simulations.strategies.StrategyRegistry.build`.
    fee_bps, slippage_bps
        Costs per unit of traded notional, basis points (>= 0).

    Returns
    -------
    SessionStep
        ``(new state, new fills, new bars)``.

    Raises
    ------
    PaperTradingError
        On invalid prices, timestamps, costs or ``n_available``, a state beyond the forward
        window, a forward close that differs from the one the state recorded (the data
        changed under the session), or a strategy target outside [-1, 1].
    """
    if not isinstance(state, SessionState):
        raise PaperTradingError(f"state must be a SessionState, got {type(state).__name__}")
    forward = _prices(forward_close, "forward_close")
    history = _prices(history_close, "history_close")
    stamps = np.asarray(forward_timestamps)
    if stamps.shape != forward.shape or not np.issubdtype(stamps.dtype, np.datetime64):
        raise PaperTradingError(
            f"forward_timestamps must be datetime64 with the shape of forward_close {forward.shape}, "
            f"got {stamps.dtype} {stamps.shape}"
        )
    rate = _cost_rate(fee_bps, slippage_bps)
    if (
        isinstance(n_available, bool)
        or not isinstance(n_available, int | np.integer)
        or not 0 <= n_available <= forward.size
    ):
        raise PaperTradingError(f"n_available must be an integer in [0, {forward.size}] (bars), got {n_available!r}")
    start, stop = state.bars_processed, int(n_available)
    if start > forward.size:
        raise PaperTradingError(f"the session processed {start} bars but the forward window has {forward.size}")
    if start > 0 and forward[start - 1] != state.last_close:
        raise PaperTradingError(
            f"forward bar {start - 1} closes at {forward[start - 1]!r} but the session recorded {state.last_close!r}: "
            "the forward window changed under a running session"
        )
    if stop <= start:
        return SessionStep(state, _no_columns(BAR_SCHEMA), _no_columns(FILL_SCHEMA))

    seen = np.concatenate([history, forward[:stop]])
    targets = np.asarray(strategy.positions(close=seen, params=params), dtype=np.float64)
    if targets.shape != seen.shape:
        raise PaperTradingError(f"strategy {strategy.name!r} returned shape {targets.shape} for closes {seen.shape}")
    targets = targets[history.size + start :]
    bad = ~(np.isfinite(targets) & (np.abs(targets) <= 1.0))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise PaperTradingError(
            f"strategy {strategy.name!r} decided target {targets[index]!r} on forward bar {start + index}; "
            "targets must be finite positions in [-1, 1]"
        )

    close = forward[start:stop]
    held = np.concatenate([[state.pending_target], targets[:-1]])
    previous_held = np.concatenate([[state.held], held[:-1]])
    # Bar 0 has no previous close in the window: pairing it with itself makes its return 0,
    # as in the backtester (and it is flat anyway).
    previous_close = np.concatenate([[forward[start - 1] if start else forward[0]], close[:-1]])
    # Operation order mirrors run_backtest ((c / p - 1) * held, |delta| * rate) so that the
    # two agree bit for bit, not just to rounding.
    gross = (close / previous_close - 1.0) * held
    turnover = np.abs(held - previous_held)
    costs = turnover * rate
    net = gross - costs
    equity = np.multiply.accumulate(np.concatenate([[state.equity], net + 1.0]))[1:]

    index = np.arange(start, stop, dtype=np.int64)
    stamps_us = stamps[start:stop].astype("datetime64[us]").astype(np.int64)
    bars = {
        "bar_index": index,
        "timestamp": stamps_us,
        "close": close,
        "held": held,
        "turnover": turnover,
        "gross_return": gross,
        "cost": costs,
        "net_return": net,
        "equity": equity,
    }
    traded = np.flatnonzero(turnover != 0.0)
    change = (held - previous_held)[traded]
    fills = {
        "bar_index": index[traded],
        "timestamp": stamps_us[traded],
        "side": np.where(change > 0, "buy", "sell"),
        "quantity": change,
        "position": held[traded],
        "price": previous_close[traded],
        "cost": costs[traded],
    }
    new_state = SessionState(
        bars_processed=stop,
        held=float(held[-1]),
        pending_target=float(targets[-1]),
        equity=float(equity[-1]),
        last_close=float(close[-1]),
    )
    return SessionStep(new_state, bars, fills)


# --------------------------------------------------------------------------- grading inputs


class Reconciliation(BaseModel):
    """Paper session against the backtester over the same bars.

    Attributes
    ----------
    correlation
        Pearson correlation of per-bar net returns (bars 1..n-1); ``None`` (undefined) when
        either series has zero variance, e.g. a strategy that has not traded yet.
    tracking_difference
        Paper total return minus backtest total return (fraction).
    backtest_total_return
        The backtest's total return over the same bars (fraction).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    correlation: float | None = Field(ge=-1.0, le=1.0)
    tracking_difference: float
    backtest_total_return: float


class PaperMetrics(BaseModel):
    """Grading inputs of a paper session, its grade and its reconciliation with the backtest.

    Attributes
    ----------
    bars_processed
        Bars in the session.
    days
        Market time traded: ``bars_processed * bar_seconds / 86400`` (days).
    n_trades
        Trades entered, the open one included (as the backtester counts them).
    n_closed_trades
        Trades already closed.
    win_rate
        Share of closed trades with a positive pnl (fraction; 0.0 without a closed trade,
        which ``n_closed_trades`` shows).
    alpha, beta
        Jensen's alpha (fraction per year) and beta over buy-and-hold of the same bars.
    sharpe
        Annualised Sharpe ratio of per-bar net returns.
    max_drawdown
        Largest peak-to-trough fall of equity (positive fraction).
    total_return
        Final equity minus 1 (fraction).
    benchmark_total_return
        Buy-and-hold return over the same bars (fraction).
    probabilistic_sharpe
        Probability that the true Sharpe ratio exceeds 0.
    min_track_record_days
        Market time the observed Sharpe ratio needs for 95 % confidence that it exceeds 0
        (days); ``None`` when the Sharpe ratio is <= 0 (no track record is long enough).
    grade, grading_checks
        The grade and the seven checks of :func:`simulations.gates.grade_paper`.
    reconciliation
        Against the backtester over the same bars.
    market_days
        Market days the session has traded (UTC days with at least one bar): the looks of the
        sequential test.
    sequential_e_value
        The largest e-value the sequential test of the policy's Sharpe floor reached over the
        session's market days (:func:`simulations.sequential.sharpe_e_values`; 1 before any
        evidence).
    sequential_decided_day
        The first market day (1-based) whose e-value reached the policy's threshold, or None.
    sequential_futile_day
        The first market day (1-based) on which the futility bound showed the Sharpe ratio
        below the floor, if the policy has one and it came before any decision; then
        ``sequential_e_value`` is the largest e-value before that day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    bars_processed: int = Field(ge=3)
    days: float = Field(ge=0)
    n_trades: int = Field(ge=0)
    n_closed_trades: int = Field(ge=0)
    win_rate: float = Field(ge=0, le=1)
    alpha: float
    beta: float
    sharpe: float
    max_drawdown: float = Field(ge=0)
    total_return: float
    benchmark_total_return: float
    probabilistic_sharpe: float = Field(ge=0, le=1)
    min_track_record_days: float | None
    grade: Grade
    grading_checks: tuple[ThresholdCheck, ...]
    reconciliation: Reconciliation
    market_days: int = Field(ge=1)
    sequential_e_value: float = Field(ge=0)
    sequential_decided_day: int | None = Field(ge=1)
    sequential_futile_day: int | None = Field(default=None, ge=1)

    def gate_inputs(self) -> dict[str, float | int]:
        """The inputs of :func:`simulations.gates.evaluate_paper_gate` (without ``policy``)."""
        return {
            "e_value": self.sequential_e_value,
            "days": self.days,
            "n_trades": self.n_trades,
            "win_rate": self.win_rate,
            "alpha": self.alpha,
            "sharpe": self.sharpe,
            "max_drawdown": self.max_drawdown,
            "total_return": self.total_return,
        }


def _bar_arrays(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    if not isinstance(bars, pl.DataFrame):
        raise PaperTradingError(
            f"bars must be a polars DataFrame with columns {list(BAR_COLUMNS)}, got {type(bars).__name__}"
        )
    missing = [column for column in BAR_COLUMNS if column not in bars.columns]
    if missing:
        raise PaperTradingError(f"session bars lack columns {missing}")
    index = bars.get_column("bar_index").to_numpy()
    if not np.array_equal(index, np.arange(bars.height)):
        raise PaperTradingError(
            "session bars must be bars 0..n-1 in order without gaps; a gap means bars were lost "
            f"(got {bars.height} rows, first bar {index[:1].tolist()}, last {index[-1:].tolist()})"
        )
    arrays = {}
    for column in BAR_COLUMNS[2:]:
        values = bars.get_column(column).cast(pl.Float64).to_numpy()
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise PaperTradingError(f"session bars column {column!r} has a null or non-finite value at bar {bad}")
        arrays[column] = values
    return arrays


def _benchmark(benchmark_close: np.ndarray | None, close: np.ndarray) -> np.ndarray:
    if benchmark_close is None:
        return close
    array = np.asarray(benchmark_close)
    if array.ndim != 1 or array.size == 0:
        raise PaperTradingError(f"benchmark close must be a non-empty 1-D price series, got shape {array.shape}")
    if array.size != close.size:
        raise PaperTradingError(f"benchmark close has {array.size} bars but the session has {close.size}; align them")
    return _prices(array, "benchmark close")


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    centred_a, centred_b = a - a.mean(), b - b.mean()
    norm_a, norm_b = math.sqrt(float(centred_a @ centred_a)), math.sqrt(float(centred_b @ centred_b))
    flat = [
        norm <= ZERO_STD_RELATIVE_TOLERANCE * abs(float(series.mean())) * math.sqrt(series.size)
        for norm, series in ((norm_a, a), (norm_b, b))
    ]
    if any(flat):
        return None
    # Rounding can push a perfect correlation a few ulps past 1.
    return min(1.0, max(-1.0, float(centred_a @ centred_b) / (norm_a * norm_b)))


def daily_returns(*, timestamps: np.ndarray, net_returns: np.ndarray) -> np.ndarray:
    """Compounded net return of each UTC day that has bars, in time order (fraction).

    Parameters
    ----------
    timestamps
        Bar timestamps, ``datetime64`` UTC, non-decreasing, shape ``(n,)``.
    net_returns
        Net return of each bar (fraction), shape ``(n,)``.

    Raises
    ------
    PaperTradingError
        If the shapes differ or the timestamps go back in time.
    """
    stamps = np.asarray(timestamps).astype("datetime64[us]")
    returns = np.asarray(net_returns, dtype=float)
    if stamps.shape != returns.shape or stamps.ndim != 1:
        raise PaperTradingError(f"timestamps {stamps.shape} and net returns {returns.shape} must be the same 1-D shape")
    days = stamps.astype("datetime64[D]").astype(np.int64)
    if np.any(np.diff(days) < 0):
        raise PaperTradingError("session bars go back in time; their timestamps must not decrease")
    starts = np.flatnonzero(np.r_[True, np.diff(days) != 0])
    return np.exp(np.add.reduceat(np.log1p(returns), starts)) - 1.0


def paper_metrics(
    *,
    bars: pl.DataFrame,
    fee_bps: float,
    slippage_bps: float,
    bar_seconds: float,
    periods_per_year: float,
    policy: GatePolicy,
    backtest: BacktestResult,
    benchmark_close: np.ndarray | None = None,
) -> PaperMetrics:
    """Grading inputs of a paper session, with the metric definitions of the backtester.

    Parameters
    ----------
    bars
        The session's per-bar record (:data:`BAR_SCHEMA`), bars ``0..n-1``, ``n >= 3``.
    fee_bps, slippage_bps
        The session's costs, basis points (trades are charged their closing cost).
    bar_seconds
        Bar length (seconds).
    periods_per_year
        Bars per year, for annualising (``MarketWindow.periods_per_year``).
    policy
        Gate policy whose grading thresholds grade the session.
    backtest
        The backtester over the same bars (``backtest_strategy`` on ``forward_close[:n]``
        with the same history and costs), for the reconciliation.
    benchmark_close
        Benchmark prices on the session's bars (price units), shape ``(n,)``; default
        buy-and-hold of the traded closes.

    Returns
    -------
    PaperMetrics
        Frozen, every number finite.

    Raises
    ------
    PaperTradingError
        Bars that are not ``0..n-1``, fewer than 3 bars, non-finite values, an empty,
        misaligned, non-finite or flat benchmark, a backtest over other bars, an undefined
        Sharpe ratio, or any metric that cannot be computed.
    """
    arrays = _bar_arrays(bars)
    n = bars.height
    seconds = _finite(bar_seconds, "bar_seconds")
    if seconds <= 0:
        raise PaperTradingError(f"bar_seconds must be > 0, got {bar_seconds!r}")
    close = _prices(arrays["close"], "session close")
    benchmark = _benchmark(benchmark_close, close)
    if not isinstance(backtest, BacktestResult) or backtest.net_returns.shape != (n,):
        shape = backtest.net_returns.shape if isinstance(backtest, BacktestResult) else type(backtest).__name__
        raise PaperTradingError(
            f"backtest must be a single-run BacktestResult over the session's {n} bars, got {shape}"
        )
    _cost_rate(fee_bps, slippage_bps)
    days = n * seconds / SECONDS_PER_DAY
    result = BacktestResult(
        close=close,
        held=arrays["held"],
        gross_returns=arrays["gross_return"],
        costs=arrays["cost"],
        net_returns=arrays["net_return"],
        equity=arrays["equity"],
        turnover=arrays["turnover"],
        fee_bps=float(fee_bps),
        slippage_bps=float(slippage_bps),
        bar_seconds=seconds,
    )
    try:
        metrics = compute_metrics(result=result, periods_per_year=periods_per_year, benchmark_close=benchmark)
        closed = result.trades.filter(~pl.col("open"))
        closed_win_rate = win_rate(trade_pnl=closed.get_column("pnl").to_numpy())
        backtest_return = float(total_return(returns=backtest.net_returns[1:]))
        grade, checks = grade_paper(
            days=days,
            n_trades=metrics.n_trades,
            win_rate=closed_win_rate,
            alpha=metrics.alpha,
            sharpe=metrics.sharpe,
            max_drawdown=metrics.max_drawdown,
            total_return=metrics.total_return,
            policy=policy,
        )
    except EvaluationError as exc:
        raise PaperTradingError(f"paper metrics over {n} bars cannot be computed: {exc.cause}") from exc
    track_record = metrics.min_track_record_length
    sequential = policy.paper.sequential
    # The first bar's return is 0 by construction (nothing held before it): it is no evidence.
    by_day = daily_returns(timestamps=bars.get_column("timestamp").to_numpy()[1:], net_returns=result.net_returns[1:])
    looks_per_year = periods_per_year * by_day.size / (n - 1)
    def e_process(alternative: str) -> np.ndarray:
        try:
            return sharpe_e_values(
                returns=by_day, sharpe_floor=sequential.sharpe_floor, periods_per_year=looks_per_year,
                alternative=alternative,
            )
        except EvaluationError as exc:
            raise PaperTradingError(
                f"the sequential test over {by_day.size} market days cannot be computed: {exc.cause}"
            ) from exc

    e_values = e_process("greater")
    decided = first_crossing(e_values=e_values, threshold=sequential.threshold)
    futile = first_crossing(e_values=e_process("less"), threshold=sequential.threshold) if sequential.futility else None
    if futile is not None and (decided is None or futile < decided):
        # The futility bound came first: the test is over, and it did not promote.
        decided, e_values = None, e_values[: futile + 1]
    else:
        futile = None
    try:
        return PaperMetrics(
            bars_processed=n,
            days=days,
            n_trades=metrics.n_trades,
            n_closed_trades=closed.height,
            win_rate=closed_win_rate,
            alpha=metrics.alpha,
            beta=metrics.beta,
            sharpe=metrics.sharpe,
            max_drawdown=metrics.max_drawdown,
            total_return=metrics.total_return,
            benchmark_total_return=metrics.benchmark_total_return,
            probabilistic_sharpe=metrics.probabilistic_sharpe,
            min_track_record_days=None if track_record is None else track_record * seconds / SECONDS_PER_DAY,
            grade=grade,
            grading_checks=checks,
            reconciliation=Reconciliation(
                correlation=_correlation(result.net_returns[1:], backtest.net_returns[1:]),
                tracking_difference=metrics.total_return - backtest_return,
                backtest_total_return=backtest_return,
            ),
            market_days=by_day.size,
            sequential_e_value=float(e_values.max()),
            sequential_decided_day=None if decided is None else decided + 1,
            sequential_futile_day=None if futile is None else futile + 1,
        )
    except ValidationError as exc:
        raise PaperTradingError(f"paper metrics are invalid (NaN, infinite or out of range): {exc}") from exc
