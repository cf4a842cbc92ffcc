"""The forward paper-trading horizon curve: the paper gate's sequential test on simulated sessions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.calibration import HORIZON_SEED_RULE, MAX_HORIZON_SESSION_DAYS, horizon_curve
from simulations.constants import (
    CALIBRATION_SEED,
    HORIZON_DAYS,
    SYNTHETIC_BAR_VOL,
    SYNTHETIC_NOISE_DOF,
    SYNTHETIC_PERIODS_PER_YEAR,
)
from simulations.errors import ConfigurationError
from simulations.gates import SequentialTestPolicy
from simulations.paper import daily_returns
from simulations.sequential import first_crossing, sharpe_e_values


def test_default_curve_matches_the_golden_figures() -> None:
    # The README's table (2,000 sessions per arm, seed CALIBRATION_SEED, numpy 2.4.6 pinned):
    # exact counts, so any change to the simulation or the test shows here first.
    curve = horizon_curve()
    assert [row.days for row in curve.rows] == list(HORIZON_DAYS)
    assert [row.false_negative.errors for row in curve.rows] == [2000, 2000, 1991, 1955, 1851]
    assert [row.false_positive.errors for row in curve.rows] == [0, 0, 0, 3, 3]
    last = curve.rows[-1]
    assert last.false_negative.rate == pytest.approx(0.9255, abs=1e-12)
    assert (last.false_negative.ci_low, last.false_negative.ci_high) == pytest.approx((0.91311, 0.93663), abs=1e-5)
    assert (last.false_positive.ci_low, last.false_positive.ci_high) == pytest.approx((0.00031, 0.00438), abs=1e-5)
    assert (curve.threshold, curve.alpha, curve.sequential.confidence) == (100.0, 0.01, 0.99)
    assert curve.sequential.enabled and curve.sequential.futility and curve.sequential.sharpe_floor == 0.0
    assert (curve.n_sessions, curve.bars_per_day, curve.looks_per_year) == (2000, 24, pytest.approx(365.25))
    assert curve.seed == CALIBRATION_SEED and curve.seed_rule == HORIZON_SEED_RULE
    assert "at most 1 % of sessions" in curve.statement and "92.5%" in curve.statement
    assert horizon_curve() == curve  # same arguments, same curve


@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_false_positives_stay_within_one_percent_at_every_horizon(floor: float) -> None:
    # The worst case: the null arm's Sharpe ratio is at the floor and no futility bound stops it.
    # Looked at every market day for a year, 2,000 sessions: the rate may exceed 1 % only by
    # sampling error, so the interval's lower end must not.
    curve = horizon_curve(n_sessions=2_000, sequential=SequentialTestPolicy(sharpe_floor=floor, futility=False))
    fp = [row.false_positive for row in curve.rows]
    fn = [row.false_negative for row in curve.rows]
    assert all(rate.ci_low <= 0.01 for rate in fp), [rate.rate for rate in fp]
    assert all(later.errors >= earlier.errors for earlier, later in zip(fp, fp[1:]))
    assert all(later.errors <= earlier.errors for earlier, later in zip(fn, fn[1:]))
    assert fn[0].rate == 1.0 and fn[-1].rate < 1.0  # a week decides nothing; a year some


def _sessions_one_by_one(
    *, horizons: tuple[int, ...], n_sessions: int, planted: float, test: SequentialTestPolicy, seed: int
) -> tuple[list[int], list[int], int]:
    """The curve's counts computed session by session as the paper gate does (simulations/paper.py):
    hourly bars compounded per UTC day, the e-values of both directions, the first crossings.
    Returns false negatives and false positives per horizon, and the sessions stopped as futile."""
    n_days, dof = horizons[-1], SYNTHETIC_NOISE_DOF
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E55_10F5]))  # HORIZON_SEED_RULE
    noise = rng.standard_t(dof, size=(n_days, n_sessions, 24)) * math.sqrt((dof - 2.0) / dof)
    stamps = np.datetime64("2026-01-01T00:00", "us") + np.arange(n_days * 24) * np.timedelta64(1, "h")
    promoted_day: dict[str, list[float]] = {"planted": [], "null": []}
    futile_sessions = 0
    for arm, sharpe in (("planted", planted), ("null", test.sharpe_floor)):
        for session in range(n_sessions):
            bars = SYNTHETIC_BAR_VOL * (sharpe / math.sqrt(SYNTHETIC_PERIODS_PER_YEAR) + noise[:, session, :].ravel())
            by_day = daily_returns(timestamps=stamps, net_returns=bars)
            e, futility = (
                sharpe_e_values(returns=by_day, sharpe_floor=test.sharpe_floor, periods_per_year=365.25, alternative=a)
                for a in ("greater", "less")
            )
            decided = first_crossing(e_values=e, threshold=test.threshold)
            futile = first_crossing(e_values=futility, threshold=test.threshold)
            if futile is not None and (decided is None or futile < decided):
                decided, futile_sessions = None, futile_sessions + 1
            if decided is not None and test.max_days is not None and decided + 1 > test.max_days:
                decided = None
            promoted_day[arm].append(math.inf if decided is None else decided + 1)
    fn = [sum(day > h for day in promoted_day["planted"]) for h in horizons]
    fp = [sum(day <= h for day in promoted_day["null"]) for h in horizons]
    return fn, fp, futile_sessions


def test_the_vectorised_curve_is_the_paper_gates_test_session_by_session() -> None:
    # A loose test (confidence 0.6: e-value 2.5 decides) so that promotions, futility stops
    # and max_days all happen among a few sessions.
    test = SequentialTestPolicy(sharpe_floor=0.5, confidence=0.6, max_days=15)
    horizons = (5, 10, 15, 20)
    curve = horizon_curve(horizons=horizons, n_sessions=60, planted_sharpe=8.0, confidence=0.6, sequential=test, seed=11)
    fn, fp, futile = _sessions_one_by_one(horizons=horizons, n_sessions=60, planted=8.0, test=test, seed=11)
    assert [row.false_negative.errors for row in curve.rows] == fn
    assert [row.false_positive.errors for row in curve.rows] == fp
    assert futile > 0 and 0 < fn[-1] < 60 and 0 < fp[-1] < 60
    assert curve.rows[-1].false_positive == curve.rows[-2].false_positive  # nothing is promoted after max_days


def test_a_curve_over_fewer_horizons_repeats_the_first_rows_of_a_longer_one() -> None:
    short = horizon_curve(horizons=(7, 30), n_sessions=300, planted_sharpe=8.0, seed=5)
    long = horizon_curve(horizons=(7, 30, 90), n_sessions=300, planted_sharpe=8.0, seed=5)
    assert short.rows == long.rows[:2] and short.rows[-1].false_negative.rate < 1.0
    assert horizon_curve(horizons=(7, 30), n_sessions=300, planted_sharpe=8.0, seed=6).rows != short.rows


def test_a_stronger_edge_is_promoted_sooner() -> None:
    weak = horizon_curve(horizons=(60, 250), n_sessions=500, planted_sharpe=2.0)
    strong = horizon_curve(horizons=(60, 250), n_sessions=500, planted_sharpe=5.0)
    for w, s in zip(weak.rows, strong.rows, strict=True):
        assert s.false_negative.rate < w.false_negative.rate
        assert s.false_positive == w.false_positive  # the null arm does not depend on the planted one


_UNSORTED = st.lists(st.integers(1, 500), min_size=2, max_size=6).filter(
    lambda days: any(later <= earlier for earlier, later in zip(days, days[1:]))
)
_BAD_INPUT = st.one_of(
    st.just(({"horizons": []}, "horizons must be a non-empty sequence of market days, e.g.")),
    st.just(({"horizons": "7"}, "horizons must be a non-empty sequence")),
    st.lists(st.integers(-1_000, 0), min_size=1, max_size=3).map(
        lambda bad: ({"horizons": [7, *bad]}, "horizons must be whole market days >= 1, got")
    ),
    st.just(({"horizons": [7, 30.5]}, "horizons must be whole market days >= 1")),
    _UNSORTED.map(lambda days: ({"horizons": days}, r"horizons must be strictly ascending .*; did you mean \[")),
    st.integers(max_value=0).map(lambda n: ({"n_sessions": n}, "n_sessions must be a whole number >= 1")),
    st.just(({"n_sessions": True}, "n_sessions must be a whole number >= 1")),
    st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)).map(
        lambda s: ({"planted_sharpe": s}, "planted_sharpe must be a finite annualised Sharpe ratio above the test's floor 0")
    ),
    st.floats(max_value=1.5).map(
        lambda s: (
            {"planted_sharpe": s, "sequential": SequentialTestPolicy(sharpe_floor=1.5)},
            "planted_sharpe must be a finite annualised Sharpe ratio above the test's floor 1.5",
        )
    ),
    st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(math.nan)).map(
        lambda c: ({"confidence": c}, r"confidence must be a number strictly between 0 and 1 \(0.99")
    ),
    st.just(({"sequential": {"sharpe_floor": 0.0}}, "sequential must be a SequentialTestPolicy")),
    st.integers(max_value=-1).map(lambda seed: ({"seed": seed}, "seed must be a non-negative integer")),
)


@settings(max_examples=150, deadline=None)
@given(case=_BAD_INPUT)
def test_bad_input_is_a_configuration_error_that_says_what_to_pass(case: tuple[dict, str]) -> None:
    kwargs, message = case
    with pytest.raises(ConfigurationError, match=message):
        horizon_curve(**kwargs)


def test_too_many_session_days_are_refused_before_anything_is_simulated() -> None:
    days = 1_000
    with pytest.raises(ConfigurationError, match=f"use at most {MAX_HORIZON_SESSION_DAYS // days:,} sessions"):
        horizon_curve(horizons=(days,), n_sessions=MAX_HORIZON_SESSION_DAYS // days + 1)
