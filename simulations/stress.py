"""CGE stress test of a strategy: its positions on every scenario path, scored per scenario.

Every number comes from the shared execution model and metrics
(:func:`simulations.backtest.run_backtest`, :mod:`simulations.metrics`), so a scenario is
scored exactly like the backtest window: signal on bar ``t``, trade on bar ``t + 1``, fees
and slippage in basis points, returns of bars ``1 .. n - 1`` (bar 0 has no previous close).

Definitions per scenario: ``total_return`` is the compounded net return (fraction);
``sharpe`` the annualised Sharpe ratio of per-bar net returns (0 for a strategy that never
trades); ``max_drawdown`` the largest peak-to-trough fall of equity (positive fraction). A
scenario is *profitable* iff its total return is strictly positive, and *catastrophic* iff
it is ``<= -catastrophic_loss``, so a flat strategy is neither. Drawdowns are also stated
relative to the instrument: ``median_drawdown_multiple`` is the strategy's median scenario
drawdown over buy-and-hold's on the same paths, so "no worse than holding the instrument"
means the same thing for a currency pair and for a cryptocurrency. The catastrophic loss
stays a fraction of capital, which is what it means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulations import metrics
from simulations.backtest import run_backtest
from simulations.cge.scenarios import ScenarioSet, scenario_paths
from simulations.constants import (
    DEFAULT_FEE_BPS,
    DEFAULT_SLIPPAGE_BPS,
    STRESS_CATASTROPHIC_LOSS,
    STRESS_EXPECTED_SHORTFALL_LEVEL,
    STRESS_WARMUP_BARS,
    SYNTHETIC_PERIODS_PER_YEAR,
)
from simulations.errors import StressTestError
from simulations.market import MarketWindows

#: Keys of :attr:`StressReport.summary`, in order.
SUMMARY_KEYS = (
    "share_profitable",
    "median_sharpe",
    "median_max_drawdown",
    "p95_max_drawdown",
    "worst_return",
    "n_catastrophic",
    "expected_shortfall_5",
    "buy_hold_median_max_drawdown",
    "median_drawdown_multiple",
)


@dataclass(frozen=True)
class StressScenarios:
    """Solved CGE scenarios and one price path of the instrument per scenario, shared by every trial.

    ``paths`` has the backtest window's length and resamples the instrument's history before
    the backtest window under each scenario's shock
    (:func:`simulations.cge.scenarios.instrument_paths`); ``warmup`` is that history's end
    (rescaled to end at 1.0, where every path starts), so each trial's indicators start warm
    on every path, exactly as in its backtest.
    """

    table: pl.DataFrame
    paths: np.ndarray
    warmup: np.ndarray
    bar_seconds: float
    periods_per_year: float
    sam_sha256: str
    seeds: tuple[int, int]



def market_scenarios(
    *,
    scenario_set: ScenarioSet,
    windows: MarketWindows,
    seeds: tuple[int, int],
    sam_sha256: str,
    warmup_bars: int = STRESS_WARMUP_BARS,
) -> StressScenarios:
    """The scenarios' price paths on ``windows``' instrument, with its history as indicator warm-up.

    Parameters
    ----------
    scenario_set
        Solved scenarios (:func:`simulations.cge.scenarios.solve_scenarios`).
    windows
        The instrument's windows: the paths resample its backtest window (out of sample for
        every trial; resampling the train window would reward exactly what a study fitted)
        and have its length and bars per year.
    seeds
        The scenario (Sobol) seed the set was drawn with and the path seed (>= 0).
    sam_sha256
        SHA-256 of the social accounting matrix the set was calibrated on (provenance).
    warmup_bars
        Bars of history before the backtest window given to indicators (>= 0).

    Returns
    -------
    StressScenarios
        Paths of shape ``(n_scenarios, backtest bars)`` starting at 1.0.
    """
    if warmup_bars < 0:
        raise StressTestError(f"warmup_bars must be >= 0, got {warmup_bars}")
    window = windows.backtest
    paths = scenario_paths(
        scenario_set=scenario_set,
        history_close=window.close,
        n_bars=window.n_bars,
        periods_per_year=window.periods_per_year,
        seed=seeds[1],
    )
    history = windows.history_before(name="backtest")[-warmup_bars:] if warmup_bars else np.empty(0)
    return StressScenarios(
        table=scenario_set.table,
        paths=paths,
        warmup=history / history[-1] if history.size else history,
        bar_seconds=window.bar_seconds,
        periods_per_year=window.periods_per_year,
        sam_sha256=sam_sha256,
        seeds=seeds,
    )


@dataclass(frozen=True, eq=False)
class StressReport:
    """Per-scenario scores and their summary, for one or several trials on the same paths.

    Attributes
    ----------
    table
        One row per (trial, scenario): ``trial``, ``scenario`` (Int64), ``total_return``,
        ``sharpe``, ``max_drawdown`` (Float64), ``profitable``, ``catastrophic`` (Boolean).
        ``trial`` is 0 when the positions had no trial axis.
    summaries
        One row per trial: ``trial`` and :data:`SUMMARY_KEYS`. ``share_profitable``
        (fraction), ``median_sharpe`` (annualised), ``median_max_drawdown``,
        ``p95_max_drawdown`` (positive fractions), ``worst_return`` (fraction),
        ``n_catastrophic`` (count), ``expected_shortfall_5`` (mean total return of the
        worst ``ceil(5 % x scenarios)`` scenarios, a fraction: negative is a loss),
        ``buy_hold_median_max_drawdown`` (median over the paths of holding the instrument,
        positive fraction) and ``median_drawdown_multiple`` (``median_max_drawdown`` over it;
        0 when neither draws down, infinite when only the strategy does).
    catastrophic_loss
        The loss threshold used for ``catastrophic`` (fraction).
    """

    table: pl.DataFrame
    summaries: pl.DataFrame
    catastrophic_loss: float

    @property
    def n_trials(self) -> int:
        """Number of trials in the report."""
        return self.summaries.height

    @property
    def summary(self) -> dict[str, float | int]:
        """The summary of a single-trial report, keyed by :data:`SUMMARY_KEYS`.

        Raises
        ------
        StressTestError
            If the report holds several trials (use :meth:`summary_for`).
        """
        if self.n_trials != 1:
            raise StressTestError(f"this report holds {self.n_trials} trials; use summary_for(trial)")
        return self.summary_for(0)

    def summary_for(self, trial: int) -> dict[str, float | int]:
        """The summary of trial index ``trial`` (0-based, the positions' first axis).

        Raises
        ------
        StressTestError
            If ``trial`` is out of range.
        """
        if not 0 <= trial < self.n_trials:
            raise StressTestError(f"trial index {trial} out of range for a report of {self.n_trials} trials")
        row = self.summaries.row(trial, named=True)
        return {key: row[key] for key in SUMMARY_KEYS}


def stress_test(
    *,
    close_paths: np.ndarray,
    positions: np.ndarray,
    fee_bps: float = DEFAULT_FEE_BPS,
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS,
    periods_per_year: float = SYNTHETIC_PERIODS_PER_YEAR,
    catastrophic_loss: float = STRESS_CATASTROPHIC_LOSS,
) -> StressReport:
    """Backtest positions on every scenario path and summarise the outcomes.

    Parameters
    ----------
    close_paths
        Scenario close prices (price units, > 0), shape ``(S, n_bars)``, ``n_bars >= 3``.
    positions
        Target positions (fraction of equity, in [-1, 1]) decided on each bar, shape
        ``(S, n_bars)`` for one trial or ``(T, S, n_bars)`` for ``T`` trials on the same
        paths.
    fee_bps, slippage_bps
        Costs per unit of traded notional, basis points (>= 0).
    periods_per_year
        Bars per year, for the annualised Sharpe ratio.
    catastrophic_loss
        A scenario whose total return is ``<= -catastrophic_loss`` is catastrophic
        (fraction in (0, 1]).

    Returns
    -------
    StressReport
        Per-scenario table and per-trial summaries.

    Raises
    ------
    StressTestError
        On mis-shaped inputs, fewer than 3 bars, or an invalid threshold.
    EvaluationError, MarketDataError
        From the backtester and metrics (positions out of range, non-positive prices, an
        undefined Sharpe ratio).
    """
    close = np.asarray(close_paths, dtype=np.float64)
    held = np.asarray(positions, dtype=np.float64)
    if close.ndim != 2 or close.shape[0] < 1 or close.shape[1] < 3:
        raise StressTestError(f"close_paths must have shape (S, n_bars) with S >= 1, n_bars >= 3; got {close.shape}")
    if not (held.shape == close.shape or (held.ndim == 3 and held.shape[1:] == close.shape and held.shape[0] >= 1)):
        raise StressTestError(
            f"positions must have shape {close.shape} or (T >= 1, {close.shape[0]}, {close.shape[1]}); got {held.shape}"
        )
    if isinstance(catastrophic_loss, bool) or not (isinstance(catastrophic_loss, int | float) and 0.0 < catastrophic_loss <= 1.0):
        raise StressTestError(f"catastrophic_loss must be a fraction in (0, 1], got {catastrophic_loss!r}")
    batch = held if held.ndim == 3 else held[None]

    # One trial at a time: a trial's backtest arrays are ~50 MB at 200 x 4,320 bars, so
    # batching trials would multiply peak memory for no gain in speed.
    scores = []
    for trial_positions in batch:
        returns = run_backtest(
            close=close, positions=trial_positions, fee_bps=fee_bps, slippage_bps=slippage_bps
        ).net_returns[:, 1:]
        scores.append(
            (
                metrics.total_return(returns=returns),
                metrics.sharpe_ratio(returns=returns, periods_per_year=periods_per_year),
                metrics.max_drawdown(returns=returns),
            )
        )
    total, sharpe, drawdown = (np.stack([np.asarray(score[k]) for score in scores]) for k in range(3))
    profitable = total > 0.0
    catastrophic = total <= -catastrophic_loss

    n_trials, n_scenarios = total.shape
    buy_hold = float(np.median(metrics.max_drawdown(returns=close[:, 1:] / close[:, :-1] - 1.0)))
    median_drawdown = np.median(drawdown, axis=1)
    multiple = median_drawdown / buy_hold if buy_hold > 0 else np.where(median_drawdown > 0, np.inf, 0.0)
    tail = max(1, math.ceil(STRESS_EXPECTED_SHORTFALL_LEVEL * n_scenarios))
    table = pl.DataFrame(
        {
            "trial": np.repeat(np.arange(n_trials), n_scenarios),
            "scenario": np.tile(np.arange(n_scenarios), n_trials),
            "total_return": total.ravel(),
            "sharpe": sharpe.ravel(),
            "max_drawdown": drawdown.ravel(),
            "profitable": profitable.ravel(),
            "catastrophic": catastrophic.ravel(),
        },
        schema={
            "trial": pl.Int64,
            "scenario": pl.Int64,
            "total_return": pl.Float64,
            "sharpe": pl.Float64,
            "max_drawdown": pl.Float64,
            "profitable": pl.Boolean,
            "catastrophic": pl.Boolean,
        },
    )
    summaries = pl.DataFrame(
        {
            "trial": np.arange(n_trials),
            "share_profitable": profitable.mean(axis=1),
            "median_sharpe": np.median(sharpe, axis=1),
            "median_max_drawdown": median_drawdown,
            "p95_max_drawdown": np.quantile(drawdown, 0.95, axis=1),
            "worst_return": total.min(axis=1),
            "n_catastrophic": catastrophic.sum(axis=1),
            "expected_shortfall_5": np.sort(total, axis=1)[:, :tail].mean(axis=1),
            "buy_hold_median_max_drawdown": np.full(n_trials, buy_hold),
            "median_drawdown_multiple": multiple,
        },
        schema={"trial": pl.Int64} | {key: pl.Int64 if key == "n_catastrophic" else pl.Float64 for key in SUMMARY_KEYS},
    )
    return StressReport(table=table, summaries=summaries, catastrophic_loss=float(catastrophic_loss))

