"""Gate calibration's pure parts: markets with a known truth, intervals, the track-record bound, the search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simulations.backtest import run_backtest
from simulations.calibration import (
    PLANTED_PARAMS,
    PLANTED_STRATEGY,
    CalibrationSettings,
    SweptThresholds,
    binomial_interval,
    calibration_windows,
    market_components,
    plant_edge,
    policy_overrides,
    study_seeds,
    swept_policy,
    track_record_statement,
)
from simulations.calibration_train import run_study
from simulations.constants import SYNTHETIC_PERIODS_PER_YEAR
from simulations.gates import GatePolicy, SequentialTestPolicy
from simulations.metrics import minimum_track_record_length, sharpe_ratio
from simulations.strategies import BUILT_IN_STRATEGIES
from tests.simulations.previous_system import previous_system_policy

KNOWN = ((0, 100), (5, 100), (50, 100))


@pytest.mark.parametrize(("k", "n"), KNOWN)
def test_clopper_pearson_interval_is_the_exact_beta_interval(k: int, n: int) -> None:
    low = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    high = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    assert binomial_interval(successes=k, trials=n) == pytest.approx((low, high), abs=1e-12)


def test_clopper_pearson_interval_matches_published_values() -> None:
    assert binomial_interval(successes=0, trials=100) == pytest.approx((0.0, 0.0362), abs=1e-4)
    assert binomial_interval(successes=5, trials=100) == pytest.approx((0.0164, 0.1128), abs=1e-4)
    assert binomial_interval(successes=50, trials=100) == pytest.approx((0.3983, 0.6017), abs=1e-4)


@pytest.mark.parametrize(("k", "n"), KNOWN)
def test_wilson_interval_is_the_score_interval(k: int, n: int) -> None:
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = binomial_interval(successes=k, trials=n, method="wilson")
    assert (low, high) == pytest.approx((max(0.0, centre - half), centre + half), abs=1e-12)


def test_study_seeds_depend_on_the_run_seed_and_the_study_only() -> None:
    assert study_seeds(seed=7, study=3) == study_seeds(seed=7, study=3)
    seeds = {study_seeds(seed=7, study=i) for i in range(50)} | {study_seeds(seed=8, study=i) for i in range(50)}
    assert len(seeds) == 100


def test_calibration_markets_are_deterministic_and_differ_only_by_the_planted_drift() -> None:
    null = calibration_windows(seed=11, drift_per_vol=0.0, train_days=90)
    again = calibration_windows(seed=11, drift_per_vol=0.0, train_days=90)
    planted = calibration_windows(seed=11, drift_per_vol=0.06, train_days=90)
    other = calibration_windows(seed=12, drift_per_vol=0.0, train_days=90)
    assert null.hashes == again.hashes
    assert null.hashes != other.hashes and null.hashes != planted.hashes
    assert (null.train.n_bars, null.backtest.n_bars, null.forward.n_bars) == (90 * 24, 180 * 24, 60 * 24)
    returns, unit = market_components(seed=11, n_bars=330 * 24)
    close = np.concatenate([w.close for w in (planted.train, planted.backtest, planted.forward)])
    assert np.allclose(close[1:] / close[:-1] - 1.0, (returns + 0.06 * unit)[1:], rtol=0, atol=1e-12)


_MAX_PLANTED_DRIFT = 1.0


def _net_sharpe(simple_returns: np.ndarray, params: dict, *, costs: bool) -> float:
    close = 100.0 * np.cumprod(1.0 + simple_returns)
    strategy, model = BUILT_IN_STRATEGIES.build(name=PLANTED_STRATEGY, params=params)
    fee, slippage = (2.0, 1.0) if costs else (0.0, 0.0)
    positions = strategy.positions(close=close, params=model)
    result = run_backtest(close=close, positions=positions, fee_bps=fee, slippage_bps=slippage)
    return float(sharpe_ratio(returns=result.net_returns[1:], periods_per_year=SYNTHETIC_PERIODS_PER_YEAR))


def test_no_strategy_has_an_edge_on_the_null_market() -> None:
    null, _ = market_components(seed=5, n_bars=round(50 * SYNTHETIC_PERIODS_PER_YEAR))
    # Before costs every rule earns zero in expectation; the Sharpe ratio of 50 years has a
    # standard error of about 0.15, so 0.6 is four of them.
    for params in (PLANTED_PARAMS["trend"], {"lookback": 12, "vol_lookback": 48, "target_bar_vol": 0.004}):
        assert abs(_net_sharpe(null, params, costs=False)) < 0.6
    buy_and_hold = float(sharpe_ratio(returns=null, periods_per_year=SYNTHETIC_PERIODS_PER_YEAR))
    assert abs(buy_and_hold) < 0.6


def test_planted_edge_gives_the_planted_strategy_its_stated_sharpe_out_of_sample() -> None:
    edge = plant_edge(sharpe=2.0)
    assert 0.0 < edge.drift_per_vol < 0.2 and 0.0 < edge.standard_error < 0.5
    assert edge.params == PLANTED_PARAMS["trend"]
    null, unit = market_components(seed=99, n_bars=round(100 * SYNTHETIC_PERIODS_PER_YEAR))
    independent = _net_sharpe(null + edge.drift_per_vol * unit, PLANTED_PARAMS["trend"], costs=True)
    # Two independent century-long estimates: their difference has about sqrt(2) standard errors.
    assert independent == pytest.approx(2.0, abs=4 * math.sqrt(2) * edge.standard_error)


def test_a_short_horizon_edge_is_the_previous_bar_s_sign_and_only_a_fast_rule_earns_it() -> None:
    null, unit = market_components(seed=7, n_bars=1_000, edge="autocorrelation")
    sigma = market_components(seed=7, n_bars=1_000)[1]
    assert unit[0] == 0.0
    np.testing.assert_array_equal(np.abs(unit[1:]), np.abs(sigma[1:]))  # the same bar volatility
    np.testing.assert_array_equal(np.sign(unit[1:]), np.sign(null[:-1]))
    np.testing.assert_array_equal(null, market_components(seed=7, n_bars=1_000)[0])  # the same null market

    edge = plant_edge(sharpe=2.0, edge="autocorrelation")
    assert edge.edge == "autocorrelation" and edge.params == PLANTED_PARAMS["autocorrelation"]
    assert edge.params["lookback"] == 1 and 0.0 < edge.drift_per_vol < _MAX_PLANTED_DRIFT
    null, unit = market_components(seed=99, n_bars=round(100 * SYNTHETIC_PERIODS_PER_YEAR), edge="autocorrelation")
    market = null + edge.drift_per_vol * unit
    independent = _net_sharpe(market, PLANTED_PARAMS["autocorrelation"], costs=True)
    assert independent == pytest.approx(2.0, abs=4 * math.sqrt(2) * edge.standard_error)
    # The slow trend rule sees nothing of it: before costs, zero within four standard errors.
    assert abs(_net_sharpe(market, PLANTED_PARAMS["trend"], costs=False)) < 0.6


def test_track_record_statement_for_sharpe_two_over_sixty_days() -> None:
    statement = track_record_statement(sharpe=2.0, window_bars=1_440, out_of_sample_bars=5_760)
    per_period = 2.0 / math.sqrt(SYNTHETIC_PERIODS_PER_YEAR)
    assert statement.min_track_record_bars == minimum_track_record_length(sharpe=per_period, skew=0.0, kurtosis=3.0)
    assert statement.min_track_record_days == pytest.approx(247, abs=1)
    assert statement.min_track_record_bars > statement.window_bars
    # The one-sided Sharpe test at FP 1 %: FN = Phi(z_0.99 - SR sqrt(n - 1)), about.
    expected = stats.norm.cdf(stats.norm.ppf(0.99) - per_period * math.sqrt(1_439))
    assert statement.fn_over_window == pytest.approx(expected, abs=0.01)
    assert statement.fn_over_out_of_sample < statement.fn_over_window
    assert not statement.achievable
    assert statement.separating_sharpe_over_window > 2.0 and statement.separating_bars > 5_760
    enough = round(statement.separating_bars) + 1
    long = track_record_statement(sharpe=2.0, window_bars=1_440, out_of_sample_bars=enough)
    assert long.achievable and long.fn_over_out_of_sample <= 0.05


def test_swept_policy_changes_only_the_swept_thresholds() -> None:
    base = GatePolicy()
    thresholds = SweptThresholds(
        backtest_min_sharpe=1.0, paper_min_sharpe=2.0, paper_min_win_rate=0.0, paper_max_drawdown=0.10,
        required_grades=("A",),
    )
    policy = swept_policy(base=base, thresholds=thresholds)
    assert [p.min_sharpe for p in policy.backtest.phases] == [1.0, 1.0, 1.0, 1.0]
    grading = policy.paper.grading
    assert (grading.min_sharpe, grading.min_win_rate, grading.max_drawdown) == (2.0, 0.0, 0.10)
    assert grading.min_trades == base.paper.grading.min_trades and policy.paper.required_grades == {"A"}
    assert policy.cge == base.cge
    overrides = policy_overrides(base=base, policy=policy)
    assert set(overrides) == {"backtest", "paper"}
    assert set(overrides["paper"]["grading"]) == {"min_sharpe", "min_win_rate", "max_drawdown"}
    assert GatePolicy.model_validate({**base.model_dump(mode="json"), **overrides}).backtest == policy.backtest
    unchanged = swept_policy(base=base, thresholds=SweptThresholds(required_grades=("A",)))
    assert unchanged == base and policy_overrides(base=base, policy=unchanged) == {}


def test_the_default_policy_is_the_previous_systems_with_the_recommended_thresholds() -> None:
    """README's measured "closest" policy, applied to DESIGN.md's thresholds and with the paper
    gate's sequential test required, is what ships."""
    previous = previous_system_policy()
    assert not previous.paper.sequential.enabled
    # DESIGN.md's stress floors; the demo's file lowers them so that its trials reach paper trading.
    design_cge = previous.cge.model_copy(update={"min_share_profitable": 0.40, "min_median_sharpe": 0.0})
    design_paper = previous.paper.model_copy(update={"sequential": SequentialTestPolicy()})
    design = previous.model_copy(update={"cge": design_cge, "paper": design_paper})
    assert design.paper.sequential.enabled and design.paper.sequential.max_days == 250
    recommended = SweptThresholds(backtest_min_sharpe=3.0, paper_max_drawdown=0.25, required_grades=("A",))
    assert swept_policy(base=design, thresholds=recommended) == GatePolicy()


def test_settings_reject_unordered_trial_counts() -> None:
    with pytest.raises(ValueError, match="ascending"):
        CalibrationSettings(trials_per_study=(50, 20))
    assert CalibrationSettings(planted_sharpes=()).target_sharpe is None


def test_a_search_is_deterministic_and_its_first_trials_are_a_smaller_search() -> None:
    windows = calibration_windows(seed=3, drift_per_vol=0.0, train_days=90)
    longer = run_study(windows=windows, n_trials=15, seed=1, study_name="s")
    assert [t.content_hash for t in run_study(windows=windows, n_trials=15, seed=1, study_name="s")] == [
        t.content_hash for t in longer
    ]
    shorter = run_study(windows=windows, n_trials=12, seed=1, study_name="s")
    assert [t.content_hash for t in shorter] == [t.content_hash for t in longer[:12]]
    assert all(t.user_attrs["strategy"] == "momentum" and t.value is not None for t in longer)
