"""The paper gate's always-valid sequential test: its false positive rate holds at every look."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.constants import DAYS_PER_YEAR
from simulations.errors import EvaluationError, PaperTradingError
from simulations.gates import GatePolicy, evaluate_paper_gate
from simulations.paper import daily_returns
from simulations.sequential import first_crossing, sharpe_e_values

ALPHA = 0.05
LOOKS = 250
SESSIONS = 4_000
#: A session's daily volatility (fraction); the test is scale-free, so any value would do.
DAILY_VOL = 0.01


def _ever_decided(e_values: np.ndarray) -> np.ndarray:
    """Share of sessions decided by each look (the running maximum reached 1 / alpha)."""
    return (np.maximum.accumulate(e_values, axis=-1) >= 1.0 / ALPHA).mean(axis=0)


def _sessions(seed: int, sharpe: float, df: float | None) -> np.ndarray:
    """Daily returns of ``SESSIONS`` sessions with annualised Sharpe ``sharpe``: Student-t with
    ``df`` degrees of freedom (heavy, symmetric tails) scaled to unit variance, or normal."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((SESSIONS, LOOKS)) if df is None else rng.standard_t(df, (SESSIONS, LOOKS)) / math.sqrt(df / (df - 2))
    return DAILY_VOL * (sharpe / math.sqrt(DAYS_PER_YEAR) + noise)


@pytest.mark.parametrize("df", [3.0, 5.0, None])
@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_a_strategy_at_the_floor_is_promoted_at_most_alpha_of_the_time_at_any_look(floor: float, df: float | None):
    # The null at its boundary: the true Sharpe ratio equals the floor. Looking after every one
    # of 250 market days (a year), the chance of *ever* deciding stays below alpha: measured
    # about 1-2.5 % for alpha = 5 %, heavy tails included (4,000 sessions: standard error 0.35 %).
    e = sharpe_e_values(returns=_sessions(7, floor, df), sharpe_floor=floor, periods_per_year=DAYS_PER_YEAR)
    decided = _ever_decided(e)
    assert decided[-1] <= ALPHA, decided[-1]
    assert np.all(np.diff(decided) >= 0)  # the running share at every look is below its final value


def test_a_strategy_below_the_floor_is_promoted_even_less():
    e = sharpe_e_values(returns=_sessions(8, 0.0, 5.0), sharpe_floor=1.0, periods_per_year=DAYS_PER_YEAR)
    assert _ever_decided(e)[-1] <= 0.01


def test_a_strong_edge_is_decided_and_evidence_accumulates_with_time():
    # Market days around the clock (365 a year). Annualised Sharpe 3: about a fifth of sessions
    # decided within 120 market days, about half within 250; Sharpe 2: 4 % within a 60-day
    # holdout, about a fifth within 250 (the figures behind SEQUENTIAL_PRIOR_PRECISION's comment).
    decided = _ever_decided(sharpe_e_values(returns=_sessions(9, 3.0, None), sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR))
    assert decided[6] == 0.0  # the burn-in and a week decide nothing
    assert 0.12 <= decided[119] <= 0.30 and 0.38 <= decided[-1] <= 0.58, (decided[119], decided[-1])
    weak = _ever_decided(sharpe_e_values(returns=_sessions(9, 2.0, None), sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR))
    assert weak[59] < 0.08 and 0.15 <= weak[-1] <= 0.30, (weak[59], weak[-1])


@pytest.mark.parametrize("df", [3.0, None])
@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_a_strategy_at_the_floor_is_called_futile_at_most_alpha_of_the_time_at_any_look(floor: float, df: float | None):
    # The futility bound's null at its boundary: the true Sharpe ratio equals the floor, so
    # declaring it below the floor is the error, and it stays below alpha at every look:
    # measured 1.2-1.9 % for alpha = 5 %.
    e = sharpe_e_values(
        returns=_sessions(17, floor, df), sharpe_floor=floor, periods_per_year=DAYS_PER_YEAR, alternative="less"
    )
    assert _ever_decided(e)[-1] <= ALPHA


def test_a_losing_strategy_is_stopped_by_the_futility_bound_and_mirrors_the_promotion_test():
    # Sharpe -3 against a floor of 0 is the mirror of Sharpe 3 against 0: the same e-values.
    losing = sharpe_e_values(returns=-_sessions(9, 3.0, None), sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR, alternative="less")
    winning = sharpe_e_values(returns=_sessions(9, 3.0, None), sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR)
    np.testing.assert_allclose(losing, winning, rtol=1e-12)
    assert _ever_decided(losing)[-1] >= 0.38
    # A strategy well above the floor is almost never called futile (measured 0.2 % in a year).
    above = sharpe_e_values(returns=_sessions(9, 3.0, None), sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR, alternative="less")
    assert _ever_decided(above)[-1] <= 0.005
    with pytest.raises(EvaluationError, match="alternative must be 'greater' or 'less'"):
        sharpe_e_values(returns=np.zeros(10), sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR, alternative="two-sided")


@settings(max_examples=40, deadline=None)
@given(scale=st.floats(min_value=1e-4, max_value=1e3), seed=st.integers(0, 2**16))
def test_the_e_values_are_scale_free_and_sessions_are_independent(scale: float, seed: int):
    returns = np.random.default_rng(seed).normal(0.001, 0.01, size=(3, 40))
    e = sharpe_e_values(returns=returns, sharpe_floor=0.5, periods_per_year=252.0)
    np.testing.assert_allclose(sharpe_e_values(returns=returns * scale, sharpe_floor=0.5, periods_per_year=252.0), e, rtol=1e-9)
    np.testing.assert_array_equal(sharpe_e_values(returns=returns[1], sharpe_floor=0.5, periods_per_year=252.0), e[1])
    assert np.all(e[:, :5] == 1.0) and np.all(e >= 0.0)  # nothing before the burn-in ends


def test_first_crossing_and_bad_input():
    assert first_crossing(e_values=np.array([1.0, 5.0, 25.0, 3.0, 30.0]), threshold=20.0) == 2
    assert first_crossing(e_values=np.ones(4), threshold=20.0) is None
    for kwargs, message in (
        ({"returns": np.array([0.01, np.nan])}, "finite"),
        ({"sharpe_floor": -0.5}, "sharpe_floor must be >= 0"),
        ({"prior_precision": 0.0}, "prior_precision must be > 0"),
        ({"periods_per_year": 0.0}, "periods_per_year must be > 0"),
        ({"burn_in": 0}, "burn_in must be an integer >= 1"),
    ):
        arguments = {"returns": np.full(10, 0.01), "sharpe_floor": 0.0, "periods_per_year": 252.0, **kwargs}
        with pytest.raises(EvaluationError, match=message):
            sharpe_e_values(**arguments)
    with pytest.raises(EvaluationError, match="threshold must be > 1"):
        first_crossing(e_values=np.ones(3), threshold=1.0)


def test_daily_returns_compound_each_utc_day_in_order():
    stamps = np.array(["2026-01-05T22:00", "2026-01-05T23:00", "2026-01-06T00:00", "2026-01-08T09:00"], dtype="datetime64[us]")
    got = daily_returns(timestamps=stamps, net_returns=np.array([0.01, -0.02, 0.03, 0.0]))
    np.testing.assert_allclose(got, [1.01 * 0.98 - 1.0, 0.03, 0.0])
    with pytest.raises(PaperTradingError, match="go back in time"):
        daily_returns(timestamps=stamps[::-1], net_returns=np.zeros(4))


def test_the_gate_requires_the_test_only_when_enabled():
    grades = {"days": 30.0, "n_trades": 40, "win_rate": 0.6, "alpha": 0.2, "sharpe": 3.0, "max_drawdown": 0.05, "total_return": 0.1}
    default = GatePolicy().paper.sequential
    assert default.enabled and default.threshold == pytest.approx(20.0) and default.max_days == 250
    assert not evaluate_paper_gate(**grades, e_value=1.0, policy=GatePolicy()).passed
    off_policy = GatePolicy.model_validate({"paper": {"sequential": {"enabled": False}}})
    off = evaluate_paper_gate(**grades, e_value=1.0, policy=off_policy)
    assert off.passed and [c.name for c in off.checks] == ["days", "grade_checks_passed"]
    on = GatePolicy.model_validate({"paper": {"sequential": {"enabled": True, "confidence": 0.99}}})
    assert on.paper.sequential.threshold == pytest.approx(100.0)
    short = evaluate_paper_gate(**grades, e_value=42.0, policy=on)
    assert not short.passed and short.reason == "sequential_e_value 42 < min 100 (short by 58)"
    assert evaluate_paper_gate(**grades, e_value=100.0, policy=on).passed
    with pytest.raises(EvaluationError, match="e_value must be >= 0"):
        evaluate_paper_gate(**grades, e_value=-1.0, policy=on)


def test_overwhelming_evidence_stays_finite():
    # A near-riskless edge over four years of market days: the e-value is capped, never infinite.
    returns = 0.01 + 1e-6 * np.random.default_rng(3).standard_normal(1_500)
    e = sharpe_e_values(returns=returns, sharpe_floor=0.0, periods_per_year=DAYS_PER_YEAR)
    assert np.isfinite(e).all() and e[-1] > 1e300
    assert 5 <= first_crossing(e_values=e, threshold=20.0) <= 20  # decided within three weeks after the burn-in
