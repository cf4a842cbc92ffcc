"""Metrics against hand-computed values and published examples (simulations/metrics.py).

Golden values are written as the arithmetic a person would do on paper (plain ``math``
and the standard library's ``statistics.NormalDist``), never by calling numpy's or
scipy's versions of the same statistic.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from pydantic import ValidationError

from simulations.backtest import backtest_strategy, run_backtest
from simulations.errors import EvaluationError
from simulations.market import MarketWindows, generate_synthetic_market, split_windows
from simulations.metrics import (
    BacktestMetrics,
    alpha_beta,
    annualised_volatility,
    cagr,
    calmar_ratio,
    compute_metrics,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    max_drawdown,
    minimum_track_record_length,
    probabilistic_sharpe_ratio,
    return_moments,
    sharpe_ratio,
    sortino_ratio,
    total_return,
    win_rate,
)
from simulations.strategies import BUILT_IN_STRATEGIES

PHI = NormalDist().cdf
RETURNS = np.array([0.01, -0.02, 0.03, 0.00])
PPY = 252.0
# mean 0.005; squared deviations 0.000025 + 0.000625 + 0.000625 + 0.000025 = 0.0013
SAMPLE_STD = math.sqrt(0.0013 / 3)


def test_total_return_and_cagr_by_hand() -> None:
    assert total_return(returns=RETURNS) == pytest.approx(1.01 * 0.98 * 1.03 - 1, abs=1e-15)  # 0.019494
    assert cagr(returns=RETURNS, periods_per_year=PPY) == pytest.approx(1.019494 ** (252 / 4) - 1, rel=1e-12)
    assert cagr(returns=np.array([0.5, -1.0]), periods_per_year=PPY) == -1.0  # total loss


def test_volatility_sharpe_sortino_by_hand() -> None:
    assert annualised_volatility(returns=RETURNS, periods_per_year=PPY) == pytest.approx(SAMPLE_STD * math.sqrt(252), rel=1e-12)
    assert sharpe_ratio(returns=RETURNS, periods_per_year=PPY) == pytest.approx(0.005 / SAMPLE_STD * math.sqrt(252), rel=1e-12)
    # A risk-free rate compounding to 0.001 per period shifts the mean to 0.004, not the std.
    rate = 1.001**252 - 1
    assert sharpe_ratio(returns=RETURNS, periods_per_year=PPY, risk_free_rate=rate) == pytest.approx(
        0.004 / SAMPLE_STD * math.sqrt(252), rel=1e-9
    )
    # Downside deviation: sqrt((0 + 0.02**2 + 0 + 0) / 4) = 0.01.
    assert sortino_ratio(returns=RETURNS, periods_per_year=PPY) == pytest.approx(0.005 / 0.01 * math.sqrt(252), rel=1e-12)


def test_drawdown_and_calmar_by_hand() -> None:
    # Equity 1, 1.01, 0.9898, 1.019494, 1.019494: peak 1.01, trough 0.9898 = 0.98 x 1.01.
    assert max_drawdown(returns=RETURNS) == pytest.approx(0.02, abs=1e-15)
    assert max_drawdown(returns=np.array([-0.1, 0.05])) == pytest.approx(0.1)  # first bar counts from 1.0
    expected = (1.019494 ** (252 / 4) - 1) / 0.02
    assert calmar_ratio(returns=RETURNS, periods_per_year=PPY) == pytest.approx(expected, rel=1e-9)


def test_win_rate_break_even_is_a_loss_and_zero_trades_is_documented() -> None:
    assert win_rate(trade_pnl=np.array([0.1, 0.0, -0.05, 0.2])) == 0.5
    assert win_rate(trade_pnl=np.array([])) == 0.0
    with pytest.raises(EvaluationError, match="non-finite"):
        win_rate(trade_pnl=np.array([0.1, np.nan]))


def test_alpha_beta_by_construction() -> None:
    benchmark = np.array([0.01, -0.01, 0.02, 0.005])
    strategy = 2.0 * benchmark + 0.001
    alpha, beta = alpha_beta(returns=strategy, benchmark_returns=benchmark, periods_per_year=PPY)
    assert beta == pytest.approx(2.0, rel=1e-12) and alpha == pytest.approx(0.001 * 252, rel=1e-9)
    # Excess form: s - rf = 0.001 + rf + 2 (b - rf), so alpha per period is 0.001 + rf.
    rate = 1.001**252 - 1
    alpha, beta = alpha_beta(returns=strategy, benchmark_returns=benchmark, periods_per_year=PPY, risk_free_rate=rate)
    assert beta == pytest.approx(2.0, rel=1e-12) and alpha == pytest.approx(0.002 * 252, rel=1e-6)
    with pytest.raises(EvaluationError, match="beta undefined"):
        alpha_beta(returns=strategy, benchmark_returns=np.full(4, 0.01), periods_per_year=PPY)
    with pytest.raises(EvaluationError, match="aligned"):
        alpha_beta(returns=strategy, benchmark_returns=benchmark[:3], periods_per_year=PPY)


def test_moments_by_hand() -> None:
    # x = [-1, -1, -1, 3] (mean 0): m2 = 12/4 = 3, m3 = 24/4 = 6, m4 = 84/4 = 21.
    skew, kurtosis = return_moments(returns=0.01 * np.array([-1.0, -1.0, -1.0, 3.0]))
    assert skew == pytest.approx(6 / 3**1.5, rel=1e-12)  # 2 / sqrt(3)
    assert kurtosis == pytest.approx(21 / 9, rel=1e-12)
    assert return_moments(returns=np.zeros(5)) == (0.0, 3.0)


def test_probabilistic_sharpe_and_track_record_by_hand() -> None:
    # Normal returns (skew 0, kurtosis 3): z = SR sqrt(n - 1) / sqrt(1 + SR^2 / 2).
    assert probabilistic_sharpe_ratio(sharpe=0.1, n_observations=101, skew=0.0, kurtosis=3.0) == pytest.approx(
        PHI(0.1 * 10 / math.sqrt(1.005)), rel=1e-12
    )
    # Skew -1, kurtosis 6: 1 - (-1)(0.1) + (6 - 1)/4 (0.01) = 1.1125.
    assert probabilistic_sharpe_ratio(sharpe=0.1, n_observations=101, skew=-1.0, kurtosis=6.0) == pytest.approx(
        PHI(1.0 / math.sqrt(1.1125)), rel=1e-12
    )
    assert probabilistic_sharpe_ratio(
        sharpe=0.1, n_observations=101, skew=0.0, kurtosis=3.0, benchmark_sharpe=0.1
    ) == pytest.approx(0.5)
    z95 = NormalDist().inv_cdf(0.95)
    assert minimum_track_record_length(sharpe=0.1, skew=0.0, kurtosis=3.0) == pytest.approx(
        1 + 1.005 * (z95 / 0.1) ** 2, rel=1e-12
    )
    with pytest.raises(EvaluationError, match="unbounded"):
        minimum_track_record_length(sharpe=-0.1, skew=0.0, kurtosis=3.0)
    with pytest.raises(EvaluationError, match="raw"):
        probabilistic_sharpe_ratio(sharpe=0.1, n_observations=101, skew=0.0, kurtosis=0.0)  # excess kurtosis passed


def test_deflated_sharpe_ratio_reproduces_the_published_example() -> None:
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
    Bias, Backtest Overfitting and Non-Normality", J. Portfolio Management 40(5), numerical
    example: N = 100 trials, variance of the trials' annualised SRs 1/2, best annualised SR
    2.5, T = 1250 daily returns (250 a year), skew -3, kurtosis 10. The paper reports the
    de-annualised expected maximum SR0 = 0.1132 and DSR = 0.9004."""
    per_period_variance = 0.5 / 250
    sr0 = expected_max_sharpe(n_trials=100, sharpe_variance=per_period_variance)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(
        sharpe=2.5 / math.sqrt(250),
        n_observations=1250,
        skew=-3.0,
        kurtosis=10.0,
        n_trials=100,
        sharpe_variance=per_period_variance,
    )
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_expected_max_sharpe_against_simulation_and_edge_cases() -> None:
    draws = np.random.default_rng(11).standard_normal((20_000, 50)).max(axis=1).mean()
    assert expected_max_sharpe(n_trials=50, sharpe_variance=1.0) == pytest.approx(draws, rel=0.03)
    assert expected_max_sharpe(n_trials=1, sharpe_variance=4.0) == 0.0
    assert expected_max_sharpe(n_trials=10, sharpe_variance=0.0) == 0.0
    assert expected_max_sharpe(n_trials=1_000, sharpe_variance=1.0) > expected_max_sharpe(n_trials=100, sharpe_variance=1.0)
    with pytest.raises(EvaluationError, match="n_trials"):
        expected_max_sharpe(n_trials=0, sharpe_variance=1.0)
    one_trial = deflated_sharpe_ratio(sharpe=0.05, n_observations=500, skew=0.0, kurtosis=3.0, n_trials=1, sharpe_variance=1e-3)
    assert one_trial == pytest.approx(probabilistic_sharpe_ratio(sharpe=0.05, n_observations=500, skew=0.0, kurtosis=3.0))
    many = deflated_sharpe_ratio(sharpe=0.05, n_observations=500, skew=0.0, kurtosis=3.0, n_trials=100, sharpe_variance=1e-3)
    assert many < one_trial


def test_zero_variance_and_short_windows_are_defined() -> None:
    assert sharpe_ratio(returns=np.zeros(10), periods_per_year=PPY) == 0.0
    with pytest.raises(EvaluationError, match="constant"):
        sharpe_ratio(returns=np.full(10, 0.001), periods_per_year=PPY)
    with pytest.raises(EvaluationError, match="constant"):
        sharpe_ratio(returns=np.zeros(10), periods_per_year=PPY, risk_free_rate=0.05)
    with pytest.raises(EvaluationError, match="too short"):
        sharpe_ratio(returns=np.array([0.01]), periods_per_year=PPY)
    with pytest.raises(EvaluationError, match="non-finite"):
        max_drawdown(returns=np.array([0.01, np.nan]))
    assert sortino_ratio(returns=np.array([0.01, 0.02]), periods_per_year=PPY) is None
    assert sortino_ratio(returns=np.zeros(3), periods_per_year=PPY) == 0.0
    assert calmar_ratio(returns=np.array([0.01, 0.02]), periods_per_year=PPY) is None
    assert calmar_ratio(returns=np.zeros(3), periods_per_year=PPY) == 0.0
    with pytest.raises(EvaluationError, match="periods_per_year"):
        sharpe_ratio(returns=RETURNS, periods_per_year=0.0)


def test_vectorised_metrics_equal_per_series() -> None:
    returns = np.random.default_rng(4).normal(0.0005, 0.01, (2, 3, 50))
    sharpe = sharpe_ratio(returns=returns, periods_per_year=PPY)
    drawdown = max_drawdown(returns=returns)
    growth = total_return(returns=returns)
    assert sharpe.shape == drawdown.shape == growth.shape == (2, 3)
    for index in np.ndindex(2, 3):
        assert sharpe[index] == pytest.approx(sharpe_ratio(returns=returns[index], periods_per_year=PPY), rel=1e-12)
        assert drawdown[index] == pytest.approx(max_drawdown(returns=returns[index]), rel=1e-12)
        assert growth[index] == pytest.approx(total_return(returns=returns[index]), rel=1e-12)
    mixed = np.stack([np.zeros(5), np.array([0.01, -0.01, 0.02, 0.0, 0.01])])
    assert sharpe_ratio(returns=mixed, periods_per_year=PPY)[0] == 0.0


# --------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_is_consistent_with_the_parts(random_walk_close: np.ndarray) -> None:
    positions = np.sign(np.sin(np.arange(random_walk_close.size) / 40.0))
    result = run_backtest(close=random_walk_close, positions=positions)
    metrics = compute_metrics(result=result, periods_per_year=PPY)
    returns = result.net_returns[1:]
    assert metrics.n_observations == random_walk_close.size - 1
    assert metrics.sharpe == pytest.approx(sharpe_ratio(returns=returns, periods_per_year=PPY))
    assert metrics.sharpe_per_period * math.sqrt(PPY) == pytest.approx(metrics.sharpe, rel=1e-12)
    assert metrics.total_return == pytest.approx(result.equity[-1] - 1.0, rel=1e-9)
    assert metrics.n_trades == result.trades.height > 10
    assert metrics.win_rate == win_rate(trade_pnl=result.trades["pnl"].to_numpy())
    assert metrics.benchmark_total_return == pytest.approx(random_walk_close[-1] / random_walk_close[0] - 1, rel=1e-9)
    benchmark = random_walk_close[1:] / random_walk_close[:-1] - 1
    assert compute_metrics(result=result, periods_per_year=PPY, benchmark_returns=benchmark) == metrics
    assert compute_metrics(result=result, periods_per_year=PPY, benchmark_close=random_walk_close * 2.0) == metrics
    holding = compute_metrics(result=run_backtest(close=random_walk_close, positions=np.ones(random_walk_close.size)), periods_per_year=PPY)
    assert holding.beta == pytest.approx(1.0, abs=1e-3) and holding.exposure == pytest.approx(1 - 1 / random_walk_close.size)
    assert all(value is None or math.isfinite(value) for value in metrics.model_dump().values() if not isinstance(value, bool))


def test_zero_trade_backtest_has_documented_metrics(random_walk_close: np.ndarray) -> None:
    metrics = compute_metrics(result=run_backtest(close=random_walk_close, positions=np.zeros(random_walk_close.size)), periods_per_year=PPY)
    assert (metrics.sharpe, metrics.n_trades, metrics.win_rate, metrics.exposure) == (0.0, 0, 0.0, 0.0)
    assert (metrics.skew, metrics.kurtosis, metrics.probabilistic_sharpe) == (0.0, 3.0, 0.5)
    assert metrics.min_track_record_length is None and metrics.sortino == 0.0 and metrics.calmar == 0.0
    with pytest.raises(EvaluationError, match="constant"):
        compute_metrics(
            result=run_backtest(close=random_walk_close, positions=np.zeros(random_walk_close.size)),
            periods_per_year=PPY,
            risk_free_rate=0.03,
        )


def test_compute_metrics_rejects_bad_inputs(random_walk_close: np.ndarray) -> None:
    batched = run_backtest(close=np.stack([random_walk_close] * 2), positions=np.zeros((2, random_walk_close.size)))
    with pytest.raises(EvaluationError, match="single run"):
        compute_metrics(result=batched, periods_per_year=PPY)
    single = run_backtest(close=random_walk_close[:2], positions=np.zeros(2))
    with pytest.raises(EvaluationError, match="too short"):
        compute_metrics(result=single, periods_per_year=PPY)
    result = run_backtest(close=random_walk_close, positions=np.ones(random_walk_close.size))
    with pytest.raises(EvaluationError, match="benchmark close"):
        compute_metrics(result=result, periods_per_year=PPY, benchmark_close=random_walk_close[:-1])
    with pytest.raises(EvaluationError, match="not both"):
        compute_metrics(result=result, periods_per_year=PPY, benchmark_close=random_walk_close, benchmark_returns=np.zeros(3))


def test_metrics_model_refuses_nan_and_is_frozen(random_walk_close: np.ndarray) -> None:
    metrics = compute_metrics(result=run_backtest(close=random_walk_close, positions=np.ones(random_walk_close.size)), periods_per_year=PPY)
    with pytest.raises(ValidationError, match="finite"):
        BacktestMetrics(**{**metrics.model_dump(), "sharpe": float("nan")})
    with pytest.raises(ValidationError):
        metrics.sharpe = 1.0  # type: ignore[misc]


def _default_metrics(windows: MarketWindows) -> BacktestMetrics:
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params={"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.004})
    window = windows.backtest
    result = backtest_strategy(strategy=strategy, params=params, close=window.close, history=windows.history_before(name="backtest"))
    return compute_metrics(result=result, periods_per_year=window.periods_per_year)


def test_same_seed_gives_bit_identical_metrics(windows: MarketWindows) -> None:
    again = split_windows(frame=generate_synthetic_market())
    assert _default_metrics(windows).model_dump_json() == _default_metrics(again).model_dump_json()
