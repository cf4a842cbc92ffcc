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
    scenario_paths,
    shock_size,
    simulate_paths,
    solve_scenarios,
    textured_paths,
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


def test_paths_are_deterministic_positive_and_finite(scenario_set):
    paths = scenario_paths(scenario_set=scenario_set, n_bars=N_BARS, seed=3)
    assert paths.shape == (N_CGE_SCENARIOS, N_BARS)
    assert np.isfinite(paths).all() and (paths > 0).all()
    np.testing.assert_array_equal(paths[:, 0], 1.0)
    np.testing.assert_array_equal(paths, scenario_paths(scenario_set=scenario_set, n_bars=N_BARS, seed=3))
    assert not np.array_equal(paths, scenario_paths(scenario_set=scenario_set, n_bars=N_BARS, seed=4))
    shifted = scenario_paths(scenario_set=scenario_set, n_bars=N_BARS, seed=3, start=250.0)
    np.testing.assert_allclose(shifted, 250.0 * paths, rtol=1e-12)


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



def _regimes(n: int, *, drift: float, volatility: float, jumps: float = 0.0) -> dict[str, np.ndarray]:
    return {
        "drift": np.full(n, drift),
        "volatility": np.full(n, volatility),
        "jump_intensity": np.full(n, jumps),
        "jump_mean": np.full(n, -0.03),
        "jump_std": np.full(n, 0.04),
    }


def test_market_helper_gives_the_synthetic_market_closes():
    log_returns, bar_vol = synthetic_log_returns(seed=11, n_bars=72)
    close = generate_synthetic_market(seed=11, n_days=3)["close"].to_numpy()
    np.testing.assert_allclose(close, SYNTHETIC_START_PRICE * np.exp(np.cumsum(log_returns)), rtol=1e-12)
    assert bar_vol.shape == (72,) and (bar_vol > 0).all()


def test_textured_paths_are_the_market_texture_rescaled_to_the_regime():
    n_paths, n_bars, volatility = 5, 600, 0.5
    # drift = volatility**2 / 2 and no jumps: the log returns are the rescaled texture alone.
    regimes = _regimes(n_paths, drift=volatility**2 / 2, volatility=volatility)
    paths = textured_paths(**regimes, n_bars=n_bars, seed=9)
    log_returns = np.diff(np.log(paths), axis=1)
    words = np.random.SeedSequence(9).spawn(2)[0].generate_state(n_paths, dtype=np.uint64)
    bar_vol = volatility / math.sqrt(SYNTHETIC_PERIODS_PER_YEAR)
    for s, word in enumerate(words):
        texture = synthetic_log_returns(seed=int(word), n_bars=n_bars)[0][1:]
        expected = bar_vol * texture / math.sqrt(np.mean(texture**2))
        np.testing.assert_allclose(log_returns[s], expected, rtol=1e-9, atol=1e-15)
    # Path s's texture does not depend on how many paths are drawn.
    tripled = {name: np.tile(values, 3) for name, values in regimes.items()}
    more = textured_paths(**tripled, n_bars=n_bars, seed=9)
    np.testing.assert_array_equal(more[:n_paths], paths)


def test_textured_zero_risk_path_grows_at_the_drift():
    n_bars = 1_000
    paths = textured_paths(
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


def test_textured_short_paths_are_valid():
    for n_bars in (1, 2, 3):
        paths = textured_paths(**_regimes(4, drift=0.05, volatility=0.4, jumps=4.0), n_bars=n_bars, seed=1)
        assert paths.shape == (4, n_bars) and np.isfinite(paths).all() and (paths > 0).all()


def test_scenario_paths_have_the_market_texture(scenario_set):
    paths = scenario_paths(scenario_set=scenario_set, n_bars=N_BARS, seed=3)
    log_returns = np.diff(np.log(paths), axis=1)
    # Realised annualised volatility tracks the regime's: the diffusion matches it exactly,
    # the regime's extra jumps add a few per cent.
    realised = log_returns.std(axis=1) * math.sqrt(SYNTHETIC_PERIODS_PER_YEAR)
    ratio = realised / scenario_set.table["volatility"].to_numpy()
    assert abs(ratio.mean() - 1.0) < 0.05
    assert np.all(np.abs(ratio - 1.0) < 0.20), (ratio.min(), ratio.max())
    # Volatility clusters: absolute returns are autocorrelated (Brownian noise would give ~0).
    absolute = np.abs(log_returns - log_returns.mean(axis=1, keepdims=True))
    centred = absolute - absolute.mean(axis=1, keepdims=True)
    lag1 = (centred[:, 1:] * centred[:, :-1]).mean(axis=1) / (centred**2).mean(axis=1)
    assert np.median(lag1) > 0.05
    # Trends: 30-day returns vary more than the per-bar volatility implies. The pooled
    # variance ratio is ~1.7 here and ~1.0 for the plain jump-diffusion on the same regimes.
    def variance_ratio(close: np.ndarray, horizon: int = 720) -> float:
        bars = np.diff(np.log(close), axis=1)
        months = np.diff(np.log(close[:, ::horizon]), axis=1)
        return float(np.mean(months**2) / (horizon * np.mean(bars**2)))

    columns = ("drift", "volatility", "jump_intensity", "jump_mean", "jump_std")
    regimes = {name: scenario_set.table[name].to_numpy() for name in columns}
    assert variance_ratio(paths) > 1.4
    assert variance_ratio(simulate_paths(**regimes, n_bars=N_BARS, seed=3)) < 1.15


def test_invalid_inputs_raise_typed_errors(calibration, scenario_set):
    with pytest.raises(StressTestError, match="n_bars"):
        scenario_paths(scenario_set=scenario_set, n_bars=0, seed=1)
    with pytest.raises(StressTestError, match="seed"):
        scenario_paths(scenario_set=scenario_set, n_bars=10, seed=-1)
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
