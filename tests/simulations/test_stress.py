"""CGE stress test: per-scenario scores from the shared backtester and metrics, and the summary."""

from __future__ import annotations


import numpy as np
import pytest
from polars.testing import assert_frame_equal

from simulations.backtest import run_backtest
from simulations.cge.model import calibrate
from simulations.cge.sam import hosoe_sam
from simulations.cge.scenarios import draw_scenarios, instrument_paths, scenario_paths, simulate_paths, solve_scenarios
from simulations.errors import EvaluationError, StressTestError
from simulations.gates import CGE_SUMMARY_KEYS, GatePolicy, evaluate_cge_gate
from simulations.market import generate_synthetic_market, split_windows
from simulations.metrics import compute_metrics
from simulations.stress import SUMMARY_KEYS, stress_test
from simulations.strategies import BUILT_IN_STRATEGIES

N_SCENARIOS, N_BARS = 200, 4_320
PERIODS_PER_YEAR = 8_766.0
MOMENTUM = {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003}


def _paths(n_paths: int, n_bars: int, *, drift: float, volatility: float, jumps: float = 0.0,
           jump_mean: float = 0.0, seed: int = 0) -> np.ndarray:  # fmt: skip
    return simulate_paths(
        drift=np.full(n_paths, drift),
        volatility=np.full(n_paths, volatility),
        jump_intensity=np.full(n_paths, jumps),
        jump_mean=np.full(n_paths, jump_mean),
        jump_std=np.full(n_paths, 0.02),
        n_bars=n_bars,
        seed=seed,
    )


@pytest.fixture(scope="module")
def cge_scenarios():
    """The production scenario set: default Sobol seed, 200 solved equilibria."""
    calibration = calibrate(hosoe_sam())
    return solve_scenarios(calibration=calibration, scenarios=draw_scenarios(calibration=calibration))


def _history(*, n_bars: int, volatility: float, autocorrelation: float = 0.0, seed: int = 0) -> np.ndarray:
    """Hourly close prices with annualised ``volatility`` and lag-1 return ``autocorrelation``."""
    noise = np.random.default_rng(seed).standard_normal(n_bars)
    returns = np.empty(n_bars)
    returns[0] = noise[0]
    for t in range(1, n_bars):
        returns[t] = autocorrelation * returns[t - 1] + noise[t]
    returns *= volatility / np.sqrt(PERIODS_PER_YEAR) / returns.std()
    return np.exp(np.cumsum(returns))


def _instrument_paths(cge_scenarios, history: np.ndarray, n_bars: int = N_BARS) -> np.ndarray:
    return scenario_paths(
        scenario_set=cge_scenarios, history_close=history, n_bars=n_bars, periods_per_year=PERIODS_PER_YEAR
    )


@pytest.fixture(scope="module")
def cge_paths(cge_scenarios):
    """The production paths: the default synthetic market's backtest window, resampled per scenario."""
    windows = split_windows(frame=generate_synthetic_market())
    return _instrument_paths(cge_scenarios, windows.backtest.close, n_bars=windows.backtest.n_bars)


def _one_bar_reversal(close: np.ndarray) -> np.ndarray:
    """Long after a falling bar, short after a rising one: what exploits negative autocorrelation."""
    returns = np.diff(np.log(close), axis=-1, prepend=np.log(close[..., :1]))
    return -np.sign(returns)


def test_flat_strategy_is_never_profitable_nor_catastrophic(cge_paths):
    report = stress_test(close_paths=cge_paths, positions=np.zeros_like(cge_paths), periods_per_year=PERIODS_PER_YEAR)
    assert report.summary == {
        "share_profitable": 0.0,
        "median_sharpe": 0.0,
        "median_max_drawdown": 0.0,
        "p95_max_drawdown": 0.0,
        "worst_return": 0.0,
        "n_catastrophic": 0,
        "expected_shortfall_5": 0.0,
        "buy_hold_median_max_drawdown": report.summary["buy_hold_median_max_drawdown"],
        "median_drawdown_multiple": 0.0,
    }
    assert report.summary["buy_hold_median_max_drawdown"] > 0.0
    assert not report.table["profitable"].any() and not report.table["catastrophic"].any()
    verdict = evaluate_cge_gate(summary=report.summary, policy=GatePolicy())
    assert not verdict.passed  # 0 % profitable: doing nothing does not pass the stress gate



def test_the_same_strategy_on_two_instruments_gets_different_stress_figures(cge_scenarios):
    # A calm currency pair and a volatile coin, one strategy: the stress figures are the
    # instrument's, not a function of the strategy's parameters alone.
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params=MOMENTUM)
    summaries = {}
    for name, volatility in (("fx", 0.07), ("coin", 0.9)):
        paths = _instrument_paths(cge_scenarios, _history(n_bars=6_000, volatility=volatility, seed=1))
        summaries[name] = stress_test(
            close_paths=paths, positions=strategy.positions(close=paths, params=params),
            periods_per_year=PERIODS_PER_YEAR,
        ).summary  # fmt: skip
    fx, coin = summaries["fx"], summaries["coin"]
    assert fx["buy_hold_median_max_drawdown"] < 0.1 < 0.3 < coin["buy_hold_median_max_drawdown"]
    assert fx["median_max_drawdown"] < 0.5 * coin["median_max_drawdown"]
    assert fx["worst_return"] > coin["worst_return"]
    # The volatility-targeting rule holds the calm pair at full size and the coin at about a
    # third, so relative to holding each, it is the coin where it draws down less.
    assert coin["median_drawdown_multiple"] < 1.0 < fx["median_drawdown_multiple"]


def test_a_planted_short_horizon_edge_survives_mild_scenarios(cge_scenarios):
    # Returns with lag-1 autocorrelation -0.1: a one-bar reversal rule earns a Sharpe ratio
    # of about 9 on the history itself; on the bootstrapped paths the edge is the history's.
    history = _history(n_bars=8_000, volatility=0.15, autocorrelation=-0.1, seed=2)
    on_history = stress_test(
        close_paths=history[None, 1:], positions=_one_bar_reversal(history[None, 1:]), fee_bps=0.0, slippage_bps=0.0,
        periods_per_year=PERIODS_PER_YEAR,
    ).summary["median_sharpe"]  # fmt: skip
    paths = _instrument_paths(cge_scenarios, history)
    report = stress_test(close_paths=paths, positions=_one_bar_reversal(paths), fee_bps=0.0, slippage_bps=0.0,
                         periods_per_year=PERIODS_PER_YEAR)  # fmt: skip
    sharpe = report.table["sharpe"].to_numpy()
    mild = (cge_scenarios.table["shock_size"] <= cge_scenarios.table["shock_size"].median()).to_numpy()
    assert on_history > 5.0
    assert np.median(sharpe[mild]) > 0.7 * on_history, (np.median(sharpe[mild]), on_history)
    assert report.summary["share_profitable"] > 0.95
    assert evaluate_cge_gate(summary=report.summary, policy=GatePolicy()).passed, report.summary


def test_a_zero_edge_strategy_loses_about_its_costs(cge_scenarios):
    # Positions drawn at random, held 48 bars: no edge, so the median scenario return is about
    # minus the costs paid (the volatility drag of an 8 % instrument is ~0.2 % over the path).
    paths = _instrument_paths(cge_scenarios, _history(n_bars=6_000, volatility=0.08, seed=3))
    rng = np.random.default_rng(4)
    blocks = rng.choice([-1.0, 1.0], size=(paths.shape[0], N_BARS // 48 + 1))
    positions = np.repeat(blocks, 48, axis=1)[:, :N_BARS]
    fee_bps, slippage_bps = 8.0, 4.0
    report = stress_test(close_paths=paths, positions=positions, fee_bps=fee_bps, slippage_bps=slippage_bps,
                         periods_per_year=PERIODS_PER_YEAR)  # fmt: skip
    turnover = np.abs(np.diff(positions, axis=1, prepend=0.0))[:, :-1].sum(axis=1)
    costs = np.median(turnover) * (fee_bps + slippage_bps) / 1e4
    median_return = float(np.median(report.table["total_return"].to_numpy()))
    assert costs > 0.05
    assert median_return == pytest.approx(-costs, abs=0.02), (median_return, costs)


def test_stress_discriminates_by_macro_regime(cge_scenarios):
    # Every path under the worst-drift scenario's regime, then under the best-drift one,
    # with the same seed (same bootstrap of the same history): only the macro regime differs.
    table = cge_scenarios.table
    order = np.argsort(table["drift"].to_numpy())
    columns = ("drift", "volatility", "jump_intensity", "jump_mean", "jump_std")
    history = _history(n_bars=6_000, volatility=0.4, seed=5)
    summaries = {}
    for name, scenario in (("worst", order[0]), ("best", order[-1])):
        regime = {column: np.full(N_SCENARIOS, table[column][int(scenario)]) for column in columns}
        paths = instrument_paths(**regime, history_close=history, n_bars=N_BARS, periods_per_year=PERIODS_PER_YEAR,
                                 seed=1)  # fmt: skip
        summaries[name] = stress_test(close_paths=paths, positions=np.ones_like(paths),
                                      periods_per_year=PERIODS_PER_YEAR).summary  # fmt: skip
    worst, best = summaries["worst"], summaries["best"]
    assert worst["median_sharpe"] < 0.0 < best["median_sharpe"]
    assert worst["share_profitable"] < best["share_profitable"] - 0.1
    assert worst["median_max_drawdown"] > best["median_max_drawdown"]


def test_leveraged_long_fails_a_cge_check_on_crash_paths():
    crashes = _paths(100, 2_000, drift=0.0, volatility=0.3, jumps=8.0, jump_mean=-0.05, seed=5)
    crashes[:70, 1_000:] *= 0.06  # 70 scenarios crash by 94 % halfway through
    report = stress_test(close_paths=crashes, positions=np.ones_like(crashes), periods_per_year=PERIODS_PER_YEAR)
    summary = report.summary
    assert summary["share_profitable"] < 0.3
    assert summary["n_catastrophic"] >= 60 and summary["worst_return"] <= -0.9
    assert summary["expected_shortfall_5"] <= summary["worst_return"] + 0.1
    verdict = evaluate_cge_gate(summary=summary, policy=GatePolicy())
    assert not verdict.passed
    # The same strategy on calm, rising paths is fine: the check is about the scenarios.
    calm = _paths(100, 2_000, drift=0.3, volatility=0.05, seed=5)
    calm_summary = stress_test(close_paths=calm, positions=np.ones_like(calm)).summary
    assert calm_summary["share_profitable"] > 0.9 and calm_summary["n_catastrophic"] == 0


def test_scores_are_the_backtester_and_metrics_numbers(cge_paths):
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params=MOMENTUM)
    positions = strategy.positions(close=cge_paths[:3], params=params)
    report = stress_test(close_paths=cge_paths[:3], positions=positions, fee_bps=5.0, slippage_bps=2.0,
                         periods_per_year=PERIODS_PER_YEAR)  # fmt: skip
    for scenario in range(3):
        single = run_backtest(close=cge_paths[scenario], positions=positions[scenario], fee_bps=5.0, slippage_bps=2.0)
        expected = compute_metrics(result=single, periods_per_year=PERIODS_PER_YEAR)
        row = report.table.row(scenario, named=True)
        assert row["total_return"] == pytest.approx(expected.total_return, rel=1e-12, abs=1e-15)
        assert row["sharpe"] == pytest.approx(expected.sharpe, rel=1e-9)
        assert row["max_drawdown"] == pytest.approx(expected.max_drawdown, rel=1e-12)


def test_summary_definitions():
    n_bars = 50
    total_returns = np.linspace(-0.95, 0.5, 40)  # two scenarios at or below -0.9
    close = 1.0 + np.linspace(0.0, 1.0, n_bars)[None, :] * total_returns[:, None]
    report = stress_test(close_paths=close, positions=np.ones_like(close), fee_bps=0.0, slippage_bps=0.0)
    table, summary = report.table, report.summary
    np.testing.assert_allclose(table["total_return"].to_numpy(), total_returns, atol=1e-12)
    assert summary["share_profitable"] == pytest.approx(np.mean(total_returns > 0))
    assert summary["worst_return"] == pytest.approx(-0.95)
    assert summary["n_catastrophic"] == 2
    assert summary["expected_shortfall_5"] == pytest.approx(total_returns[:2].mean())  # ceil(5 % x 40) = 2
    drawdowns = table["max_drawdown"].to_numpy()
    assert summary["median_max_drawdown"] == pytest.approx(np.median(drawdowns))
    assert summary["p95_max_drawdown"] == pytest.approx(np.quantile(drawdowns, 0.95))
    assert summary["median_sharpe"] == pytest.approx(np.median(table["sharpe"].to_numpy()))
    # Holding the instrument without costs is buy and hold: its drawdown multiple is 1.
    assert summary["buy_hold_median_max_drawdown"] == pytest.approx(summary["median_max_drawdown"], rel=1e-12)
    assert summary["median_drawdown_multiple"] == pytest.approx(1.0, rel=1e-12)
    stricter = stress_test(close_paths=close, positions=np.ones_like(close), fee_bps=0.0, slippage_bps=0.0,
                           catastrophic_loss=0.5)  # fmt: skip
    assert stricter.summary["n_catastrophic"] == int(np.sum(total_returns <= -0.5))
    assert set(CGE_SUMMARY_KEYS) <= set(SUMMARY_KEYS) == set(summary)
    assert isinstance(summary["n_catastrophic"], int)


def test_report_is_deterministic_and_batches_trials(cge_paths):
    strategy, params = BUILT_IN_STRATEGIES.build(name="momentum", params=MOMENTUM)
    positions = strategy.positions(close=cge_paths, params=params)
    first = stress_test(close_paths=cge_paths, positions=positions)
    second = stress_test(close_paths=cge_paths, positions=strategy.positions(close=cge_paths, params=params))
    assert_frame_equal(first.table, second.table)
    assert first.summary == second.summary

    batch = stress_test(close_paths=cge_paths, positions=np.stack([positions, np.zeros_like(positions)]))
    assert batch.n_trials == 2
    assert batch.summary_for(0) == first.summary
    assert batch.summary_for(1)["share_profitable"] == 0.0
    with pytest.raises(StressTestError, match="holds 2 trials"):
        _ = batch.summary
    with pytest.raises(StressTestError, match="out of range"):
        batch.summary_for(2)


def test_invalid_inputs_raise_typed_errors():
    close = _paths(4, 10, drift=0.0, volatility=0.1)
    with pytest.raises(StressTestError, match="shape"):
        stress_test(close_paths=close, positions=np.zeros((3, 10)))
    with pytest.raises(StressTestError, match="n_bars >= 3"):
        stress_test(close_paths=close[:, :2], positions=np.zeros((4, 2)))
    with pytest.raises(StressTestError, match="catastrophic_loss"):
        stress_test(close_paths=close, positions=np.zeros_like(close), catastrophic_loss=0.0)
    with pytest.raises(EvaluationError, match=r"\[-1, 1\]"):
        stress_test(close_paths=close, positions=np.full_like(close, 2.0))
