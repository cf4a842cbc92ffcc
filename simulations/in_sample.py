"""Each trial's own in-sample Sharpe ratio: what the Deflated Sharpe Ratio deflates by.

The Deflated Sharpe Ratio (Bailey & Lopez de Prado 2014) corrects a trial's Sharpe ratio for
the number of trials tried and the variance of their Sharpe ratios. Those Sharpe ratios are
not the study's objective values, which may be a loss, a profit or an accuracy, maximised
or minimised: Gauntlet backtests every trial on the train window itself, with gate 1's
backtester and the market's costs, so a study gets the same deflation whatever it optimises.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from simulations.backtest import backtest_strategy
from simulations.errors import EvaluationError, TrialDataError
from simulations.gauntlet import TrialCase, stage_for_gate
from simulations.market import MarketWindows
from simulations.metrics import sharpe_ratio
from simulations.strategies import StrategyRegistry


def in_sample_sharpe(
    *, trial: TrialCase, windows: MarketWindows, fee_bps: float, slippage_bps: float, strategies: StrategyRegistry
) -> float:
    """The trial's annualised Sharpe ratio on the train window, as gate 1 measures one.

    The trial's strategy and params are backtested on the train window, warmed up on the
    bars before it, and the Sharpe ratio of the net returns is taken exactly as
    :func:`simulations.metrics.compute_metrics` takes it (bars 1..n-1, no risk-free rate):
    for the demo trainer, whose objective is that number, it equals the objective.

    Parameters
    ----------
    trial
        The trial (its ``strategy`` user attribute and params).
    windows
        The market the study is evaluated on.
    fee_bps, slippage_bps
        The market's costs (basis points), as in gate 1.
    strategies
        Where the trial's strategy is looked up.

    Returns
    -------
    float
        Annualised Sharpe ratio, or NaN when the trial's strategy cannot be built from its
        params or its backtest is undefined (its own gate 1 raises the reason): the trial
        was tried, so it still counts as a trial, but it adds nothing to the variance.

    Raises
    ------
    MarketDataError
        If the train window is unusable (every trial would fail alike).
    """
    train = windows.train
    try:
        strategy, params = strategies.build(name=trial.strategy_name, params=trial.snapshot.params)
        result = backtest_strategy(
            strategy=strategy, params=params, close=train.close, history=windows.history_before(name="train"),
            fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=train.bar_seconds,
        )
        return float(sharpe_ratio(returns=result.net_returns[1:], periods_per_year=train.periods_per_year))
    except (TrialDataError, EvaluationError):
        return math.nan


def in_sample_fingerprint(
    *, windows: MarketWindows, fee_bps: float, slippage_bps: float, strategies: StrategyRegistry
) -> str:
    """What every trial's :func:`in_sample_sharpe` depends on besides the trial: a cache key.

    The train window and the bars before it, the costs, the names in ``strategies`` (a trial
    naming a strategy configured later has a Sharpe ratio from then on) and gate 1's code
    version. A strategy's own code is not covered: a cache keyed by this fingerprint must be
    cleared after a strategy's positions change.

    Returns
    -------
    str
        Hexadecimal SHA-256.
    """
    history = np.ascontiguousarray(windows.history_before(name="train"), dtype="<f8")
    payload = {
        "train_sha256": windows.train.sha256,
        "history_sha256": hashlib.sha256(history.tobytes()).hexdigest(),
        "fee_bps": float(fee_bps),
        "slippage_bps": float(slippage_bps),
        "strategies": list(strategies.names()),
        "code_version": stage_for_gate("backtest_gate").code_version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
