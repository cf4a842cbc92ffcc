"""CGE scenarios: Sobol draws sized by macro history, 200 solved equilibria, regimes, paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from polars.testing import assert_frame_equal

from simulations.cge.model import Shocks, calibrate, solve
from simulations.cge import scenarios as scenarios_module
from simulations.cge.sam import hosoe_sam
from simulations.cge.scenarios import (
    draw_scenarios,
    macro_shock_design,
    regime_from_equilibrium,
    regime_from_outcomes,
    instrument_paths,
    scenario_paths,
    shock_size,
    simulate_paths,
    solve_scenarios,
    stationary_bootstrap_index,
)
from simulations.constants import (
    CGE_BASE_DRIFT,
    CGE_BASE_JUMP_INTENSITY,
    CGE_BASE_VOLATILITY,
    N_CGE_SCENARIOS,
    SYNTHETIC_BAR_SECONDS,
    SYNTHETIC_PERIODS_PER_YEAR,
    SYNTHETIC_START_PRICE,
)
from simulations.errors import StressTestError
from simulations.market import generate_synthetic_market, synthetic_log_returns

N_BARS = 4_320  # 180 days of hourly bars
HOURLY = SYNTHETIC_PERIODS_PER_YEAR


def _history(*, n_bars: int = 6_000, volatility: float = 0.4, autocorrelation: float = 0.0, tail_df: float | None = None,
             periods_per_year: float = HOURLY, seed: int = 0) -> np.ndarray:  # fmt: skip
    """Close prices with annualised ``volatility``, lag-1 return ``autocorrelation`` and Student-t tails."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_t(tail_df, n_bars) if tail_df else rng.standard_normal(n_bars)
    returns = np.empty(n_bars)
    returns[0] = noise[0]
    for t in range(1, n_bars):
        returns[t] = autocorrelation * returns[t - 1] + noise[t]
    returns *= volatility / math.sqrt(periods_per_year) / returns.std()
    return 100.0 * np.exp(np.cumsum(returns))


@pytest.fixture(scope="module")
def history():
    return _history()


@pytest.fixture(scope="module")
def calibration():
    return calibrate(hosoe_sam())


@pytest.fixture(scope="module")
def scenario_set(calibration):
    return solve_scenarios(calibration=calibration, scenarios=draw_scenarios(calibration=calibration, seed=7))


def test_two_hundred_scenarios_solve_and_satisfy_walras(scenario_set):
    table = scenario_set.table
    assert table.height == N_CGE_SCENARIOS == 200
    assert table["walras_residual"].max() < 1e-8
    assert table["max_residual"].max() < 1e-9
    assert table.null_count().sum_horizontal().item() == 0
    assert np.isfinite(table.drop("scenario").to_numpy()).all()


def test_scenarios_span_the_historical_ranges(calibration, scenario_set):
    design = macro_shock_design()
    assert design.period == "1959Q1-2009Q3"
    table = scenario_set.table
    for column, sample in (
        ("productivity_BRD", design.output_growth),
        ("import_price_MLK", design.inflation),
        ("endowment_CAP", design.capital_growth),
        ("endowment_LAB", design.employment_growth),
    ):
        logs = np.log(table[column].to_numpy())
        assert sample.min() - 1e-12 <= logs.min() and logs.max() <= sample.max() + 1e-12
        # Low-discrepancy draws reproduce the historical spread.
        assert np.std(logs) == pytest.approx(sample.std(ddof=1), rel=0.15)
    tariffs = table["tariff_BRD"].to_numpy()
    assert 0.0 <= tariffs.min() < 0.05 and 1.95 < tariffs.max() <= 2.0
    shares = table["foreign_savings_change"].to_numpy() / calibration.benchmark_gdp
    assert design.investment_share_change.min() - 1e-12 <= shares.min()
    assert shares.max() <= design.investment_share_change.max() + 1e-12
    # Both tails occur: recessions and booms.
    assert table["real_gdp_change"].min() < -0.03 and table["real_gdp_change"].max() > 0.02


def test_documented_shock_ranges_match_the_data():
    ranges = macro_shock_design().describe()
    for name, label in (
        ("output_growth", "productivity (log multiplier)"),
        ("inflation", "world import and export prices (log multiplier)"),
        ("investment_share_change", "foreign savings"),
        ("capital_growth", "capital endowment (log multiplier)"),
        ("employment_growth", "labour endowment (log multiplier)"),
    ):
        low, high = 100 * ranges[name]["min"], 100 * ranges[name]["max"]
        assert f"* {label}: {low:+.1f} % .. {high:+.1f} %" in scenarios_module.__doc__, name


def test_draws_and_scenario_set_are_deterministic(calibration, scenario_set):
    again = draw_scenarios(calibration=calibration, seed=7)
    assert again == list(scenario_set.shocks)
    assert draw_scenarios(calibration=calibration, seed=8) != again
    resolved = solve_scenarios(calibration=calibration, scenarios=again)
    assert_frame_equal(resolved.table, scenario_set.table)


def _paths(scenario_set, history, **kwargs):
    arguments = {"n_bars": N_BARS, "periods_per_year": HOURLY, "seed": 3} | kwargs
    return scenario_paths(scenario_set=scenario_set, history_close=history, **arguments)


def test_paths_are_deterministic_positive_and_finite(scenario_set, history):
    paths = _paths(scenario_set, history)
    assert paths.shape == (N_CGE_SCENARIOS, N_BARS)
    assert np.isfinite(paths).all() and (paths > 0).all()
    np.testing.assert_array_equal(paths[:, 0], 1.0)
    np.testing.assert_array_equal(paths, _paths(scenario_set, history))
    assert not np.array_equal(paths, _paths(scenario_set, history, seed=4))
    shifted = _paths(scenario_set, history, start=250.0)
    np.testing.assert_allclose(shifted, 250.0 * paths, rtol=1e-12)
    # Translation and scaling: the paths depend on the history's returns, not its price level.
    np.testing.assert_allclose(_paths(scenario_set, 7.0 * history), paths, rtol=1e-9)


def test_benchmark_regime_is_the_base_regime(calibration, scenario_set):
    assert shock_size(shocks=Shocks(), calibration=calibration) == 0.0
    regime = regime_from_equilibrium(
        equilibrium=scenario_set.benchmark, benchmark=scenario_set.benchmark, shock_size=0.0
    )
    assert regime.drift == CGE_BASE_DRIFT
    assert regime.volatility == CGE_BASE_VOLATILITY
    assert regime.jump_intensity == CGE_BASE_JUMP_INTENSITY


def test_regimes_round_trip_from_the_table(scenario_set):
    regimes = scenario_set.regimes()
    assert len(regimes) == N_CGE_SCENARIOS
    assert regimes[5].drift == scenario_set.table["drift"][5]


# --- monotonicity of the mapping ----------------------------------------------------------

_change = st.floats(min_value=-0.5, max_value=0.5, allow_nan=False)
_size = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(a=_change, b=_change, capital=_change, size=_size)
def test_drift_is_monotone_in_real_gdp(a, b, capital, size):
    low, high = sorted((a, b))
    lo = regime_from_outcomes(real_gdp_change=low, capital_return_change=capital, shock_size=size)
    hi = regime_from_outcomes(real_gdp_change=high, capital_return_change=capital, shock_size=size)
    assert lo.drift <= hi.drift


@settings(max_examples=200, deadline=None)
@given(a=_change, b=_change, gdp=_change, size=_size)
def test_drift_is_monotone_in_the_return_to_capital(a, b, gdp, size):
    low, high = sorted((a, b))
    lo = regime_from_outcomes(real_gdp_change=gdp, capital_return_change=low, shock_size=size)
    hi = regime_from_outcomes(real_gdp_change=gdp, capital_return_change=high, shock_size=size)
    assert lo.drift <= hi.drift


@settings(max_examples=200, deadline=None)
@given(a=_size, b=_size, gdp=_change)
def test_risk_is_monotone_in_the_shock_size(a, b, gdp):
    small, large = sorted((a, b))
    lo = regime_from_outcomes(real_gdp_change=gdp, capital_return_change=0.0, shock_size=small)
    hi = regime_from_outcomes(real_gdp_change=gdp, capital_return_change=0.0, shock_size=large)
    assert lo.volatility <= hi.volatility and lo.jump_intensity <= hi.jump_intensity
    assert lo.drift == hi.drift


@pytest.mark.parametrize("sectors", [("BRD",), ("MLK",), ("BRD", "MLK")])
def test_larger_productivity_loss_never_raises_drift(calibration, sectors):
    benchmark = solve(calibration=calibration, shocks=Shocks())
    drifts = []
    for multiplier in np.linspace(0.80, 1.10, 13):  # from the largest loss to a gain
        shocks = Shocks(productivity=dict.fromkeys(sectors, float(multiplier)))
        eq = solve(calibration=calibration, shocks=shocks, initial=benchmark)
        size = shock_size(shocks=shocks, calibration=calibration)
        drifts.append(regime_from_equilibrium(equilibrium=eq, benchmark=benchmark, shock_size=size).drift)
    assert np.all(np.diff(drifts) >= 0), drifts
    assert drifts[0] < CGE_BASE_DRIFT < drifts[-1]


# --- path generator ---------------------------------------------------------------------


def test_zero_risk_path_grows_at_the_drift():
    n_bars = 1_000
    paths = simulate_paths(
        drift=np.array([0.10, -0.20]),
        volatility=np.zeros(2),
        jump_intensity=np.zeros(2),
        jump_mean=np.zeros(2),
        jump_std=np.zeros(2),
        n_bars=n_bars,
        seed=0,
    )
    years = (n_bars - 1) * SYNTHETIC_BAR_SECONDS / (86_400 * 365.25)
    np.testing.assert_allclose(paths[:, -1], np.exp(np.array([0.10, -0.20]) * years), rtol=1e-12)


def test_drift_is_the_expected_return_with_jumps():
    paths = simulate_paths(
        drift=np.full(4_000, 0.3),
        volatility=np.full(4_000, 0.2),
        jump_intensity=np.full(4_000, 50.0),
        jump_mean=np.full(4_000, -0.05),
        jump_std=np.full(4_000, 0.05),
        n_bars=2_000,
        seed=11,
    )
    years = 1_999 * SYNTHETIC_BAR_SECONDS / (86_400 * 365.25)
    expected = math.exp(0.3 * years)
    standard_error = paths[:, -1].std() / math.sqrt(paths.shape[0])
    assert abs(paths[:, -1].mean() - expected) < 4 * standard_error



def test_market_helper_gives_the_synthetic_market_closes():
    log_returns, bar_vol = synthetic_log_returns(seed=11, n_bars=72)
    close = generate_synthetic_market(seed=11, n_days=3)["close"].to_numpy()
    np.testing.assert_allclose(close, SYNTHETIC_START_PRICE * np.exp(np.cumsum(log_returns)), rtol=1e-12)
    assert bar_vol.shape == (72,) and (bar_vol > 0).all()


def _regimes(n: int, *, drift: float = CGE_BASE_DRIFT, volatility: float = CGE_BASE_VOLATILITY,
             jumps: float = 0.0) -> dict[str, np.ndarray]:  # fmt: skip
    return {
        "drift": np.full(n, drift),
        "volatility": np.full(n, volatility),
        "jump_intensity": np.full(n, jumps),
        "jump_mean": np.full(n, -0.03),
        "jump_std": np.full(n, 0.04),
    }


def _log_returns(paths: np.ndarray) -> np.ndarray:
    return np.diff(np.log(paths), axis=-1)


def test_bootstrap_index_is_blocks_of_consecutive_bars_with_the_mean_length():
    n_history, mean_block = 1_000, 40.0
    index = stationary_bootstrap_index(
        n_history=n_history, shape=(50, 20_000), mean_block=mean_block, rng=np.random.default_rng(1)
    )
    assert index.dtype == np.int64 and index.min() >= 0 and index.max() < n_history
    continued = index[:, 1:] == (index[:, :-1] + 1) % n_history
    # A new block starts with probability 1 / mean_block (a fresh start can land on the next
    # bar by chance, 1 in n_history), so the blocks' mean length is mean_block.
    breaks = (~continued).sum() + index.shape[0]
    assert index.size / breaks == pytest.approx(mean_block, rel=0.05)
    # Every bar of the history is drawn about equally often (circular: no edge effect).
    counts = np.bincount(index.ravel(), minlength=n_history)
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_benchmark_regime_keeps_the_history_volatility_and_sets_the_drift():
    # Every scenario at the benchmark regime without jumps: the multiplier is 1, so the paths
    # have the history's volatility; the drift is the regime's Sharpe ratio (0.05 / 0.4 a
    # year) in the instrument's volatility, whatever the history's own mean was.
    for trend in (-0.5, 0.0, 0.5):
        history = _history(volatility=0.08, seed=4) * np.exp(trend * np.arange(6_000) / HOURLY)
        paths = instrument_paths(**_regimes(300), history_close=history, n_bars=N_BARS, periods_per_year=HOURLY, seed=2)
        observed, expected = _log_returns(paths), _log_returns(history)
        assert observed.std() == pytest.approx(expected.std(ddof=1), rel=0.02)
        growth = paths[:, -1].mean() ** (HOURLY / (N_BARS - 1)) - 1.0
        annual_volatility = expected.std(ddof=1) * math.sqrt(HOURLY)
        standard_error = annual_volatility / math.sqrt(300 * (N_BARS - 1) / HOURLY)
        assert growth == pytest.approx(CGE_BASE_DRIFT / CGE_BASE_VOLATILITY * annual_volatility, abs=4 * standard_error)


def test_scenario_volatility_centres_on_the_instrument_and_scales_with_the_regime(scenario_set):
    for volatility in (0.07, 0.4, 0.9):  # a currency pair, an index, a coin
        history = _history(volatility=volatility, seed=5)
        realised = _log_returns(_paths(scenario_set, history)).std(axis=1) * math.sqrt(HOURLY)
        assert np.median(realised) == pytest.approx(volatility, rel=0.10), volatility
    # Within a set, a regime twice as volatile as another gives paths twice as volatile.
    regimes = _regimes(200, volatility=0.4)
    regimes["volatility"][100:] = 0.8
    paths = instrument_paths(**regimes, history_close=_history(), n_bars=N_BARS, periods_per_year=HOURLY, seed=1)
    realised = _log_returns(paths).std(axis=1)
    assert np.median(realised[100:]) / np.median(realised[:100]) == pytest.approx(2.0, rel=0.05)


def test_drift_shift_is_the_regime_drift_in_units_of_the_instrument_volatility():
    # Same seed, so same bootstrap and jumps: the log paths differ by the shift per bar alone.
    history = _history(volatility=0.2, seed=6)
    base = instrument_paths(**_regimes(20), history_close=history, n_bars=500, periods_per_year=HOURLY, seed=3)
    recession = _regimes(20, drift=CGE_BASE_DRIFT - CGE_BASE_VOLATILITY)  # one volatility a year lower
    shocked = instrument_paths(**recession, history_close=history, n_bars=500, periods_per_year=HOURLY, seed=3)
    bar_volatility = _log_returns(history).std(ddof=1)
    per_bar = -bar_volatility / math.sqrt(HOURLY)
    np.testing.assert_allclose(_log_returns(shocked) - _log_returns(base), per_bar, rtol=1e-9, atol=1e-15)


def test_paths_keep_the_instrument_texture(scenario_set):
    # Short-horizon autocorrelation and fat tails are the history's; a Gaussian random walk
    # with the regimes' volatility would show neither.
    history = _history(autocorrelation=0.2, tail_df=4.0, seed=7)
    returns = _log_returns(_paths(scenario_set, history))
    centred = returns - returns.mean(axis=1, keepdims=True)
    lag1 = (centred[:, 1:] * centred[:, :-1]).mean(axis=1) / (centred**2).mean(axis=1)
    assert np.median(lag1) == pytest.approx(0.2, abs=0.04)
    kurtosis = (centred**4).mean(axis=1) / (centred**2).mean(axis=1) ** 2 - 3.0
    assert np.median(kurtosis) > 1.0
    reference = _log_returns(simulate_paths(**_regimes(N_CGE_SCENARIOS), n_bars=N_BARS, seed=3))
    reference = reference - reference.mean(axis=1, keepdims=True)
    assert abs(np.median((reference[:, 1:] * reference[:, :-1]).mean(axis=1) / (reference**2).mean(axis=1))) < 0.03


def test_jumps_scale_with_the_instrument_and_carry_no_drift():
    history = _history(volatility=0.1, seed=8)
    quiet = _regimes(2_000)
    jumpy = _regimes(2_000, jumps=200.0)
    kwargs = {"history_close": history, "n_bars": 400, "periods_per_year": HOURLY, "seed": 9}
    calm, shocked = instrument_paths(**quiet, **kwargs), instrument_paths(**jumpy, **kwargs)
    # Compensated: the expected final price is unchanged by the jumps (within sampling error).
    standard_error = shocked[:, -1].std() / math.sqrt(shocked.shape[0])
    assert abs(shocked[:, -1].mean() - calm[:, -1].mean()) < 4 * standard_error
    # A jump's log size is the regime's scaled by the instrument's volatility over the
    # reference volatility (0.1 / 0.4 here), 200 jumps a year, less the compensator.
    scale = _log_returns(history).std(ddof=1) * math.sqrt(HOURLY) / CGE_BASE_VOLATILITY
    jump_mean, jump_std = -0.03 * scale, 0.04 * scale
    n_jumps = 200.0 * 399 / HOURLY
    expected = n_jumps * (jump_mean - (math.exp(jump_mean + 0.5 * jump_std**2) - 1.0))
    extra = (_log_returns(shocked) - _log_returns(calm)).sum(axis=1)
    assert extra.mean() == pytest.approx(expected, abs=4 * extra.std() / math.sqrt(extra.size))
    assert extra.std() == pytest.approx(math.sqrt(n_jumps * (jump_mean**2 + jump_std**2)), rel=0.1)


def test_short_paths_are_valid(history):
    for n_bars in (1, 2, 3):
        paths = instrument_paths(**_regimes(4, jumps=4.0), history_close=history, n_bars=n_bars,
                                 periods_per_year=HOURLY, seed=1)  # fmt: skip
        assert paths.shape == (4, n_bars) and np.isfinite(paths).all() and (paths > 0).all()


def test_invalid_inputs_raise_typed_errors(calibration, scenario_set, history):
    with pytest.raises(StressTestError, match="n_bars"):
        _paths(scenario_set, history, n_bars=0)
    with pytest.raises(StressTestError, match="seed"):
        _paths(scenario_set, history, seed=-1)
    with pytest.raises(StressTestError, match="at least 250 bars.*train_days"):
        _paths(scenario_set, history[:100])
    with pytest.raises(StressTestError, match="non-positive"):
        _paths(scenario_set, np.where(np.arange(history.size) == 10, -1.0, history))
    with pytest.raises(StressTestError, match="flat"):
        _paths(scenario_set, np.full(500, 3.0))
    with pytest.raises(StressTestError, match="periods_per_year"):
        _paths(scenario_set, history, periods_per_year=0.0)
    with pytest.raises(StressTestError, match="n must be"):
        draw_scenarios(calibration=calibration, n=0)
    with pytest.raises(StressTestError, match="shock_size >= 0"):
        regime_from_outcomes(real_gdp_change=0.0, capital_return_change=0.0, shock_size=-1.0)
    with pytest.raises(StressTestError, match="finite"):
        regime_from_outcomes(real_gdp_change=math.nan, capital_return_change=0.0, shock_size=0.0)
    with pytest.raises(StressTestError, match="volatility must be >= 0"):
        simulate_paths(
            drift=np.zeros(1), volatility=-np.ones(1), jump_intensity=np.zeros(1),
            jump_mean=np.zeros(1), jump_std=np.zeros(1), n_bars=5, seed=0,
        )  # fmt: skip
    with pytest.raises(StressTestError, match=r"scenario 1: CGE equilibrium not found.*-1000000\.0"):
        solve_scenarios(calibration=calibration, scenarios=[Shocks(), Shocks(foreign_savings_change=-1e6)])
