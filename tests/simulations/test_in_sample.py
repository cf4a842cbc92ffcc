"""Deflation from the trials themselves: each trial's own in-sample Sharpe ratio, and the study contexts built from them."""

from __future__ import annotations

import math
import statistics

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.constants import DEFAULT_FEE_BPS, DEFAULT_SLIPPAGE_BPS
from simulations.errors import EvaluationError
from simulations.gauntlet import StudyContext, TrialCase, study_contexts
from simulations.in_sample import in_sample_fingerprint, in_sample_sharpe
from simulations.market import MarketWindows, generate_synthetic_market, split_windows
from simulations.train import make_objective
from simulations.trial import TrialSnapshot, TrialState
from simulations.strategies import BUILT_IN_STRATEGIES

PARAMS = [
    {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003},
    {"lookback": 12, "vol_lookback": 48, "target_bar_vol": 0.008},
    {"lookback": 77, "vol_lookback": 300, "target_bar_vol": 0.002},
]


def _trial(number: int, params: dict, *, value: float, strategy: str = "momentum") -> TrialCase:
    snapshot = TrialSnapshot.build(
        study_name="s", number=number, trial_id=number, state=TrialState.COMPLETE, values=(value,), params=params,
        user_attrs={"strategy": strategy},
    )
    return TrialCase(key=f"s__t{number:08d}", snapshot=snapshot)


def _sharpe(trial: TrialCase, windows: MarketWindows, fee_bps: float = DEFAULT_FEE_BPS) -> float:
    return in_sample_sharpe(trial=trial, windows=windows, fee_bps=fee_bps, slippage_bps=DEFAULT_SLIPPAGE_BPS, strategies=BUILT_IN_STRATEGIES)


def test_the_in_sample_sharpe_is_the_demo_trainers_objective(windows: MarketWindows) -> None:
    objective = make_objective(windows=windows, strategy_name="momentum")
    for params in PARAMS:
        assert _sharpe(_trial(0, params, value=0.0), windows) == objective(optuna.trial.FixedTrial(params))


def test_the_in_sample_sharpe_ignores_the_objective(windows: MarketWindows) -> None:
    # A study minimising a loss records other values for the same trials; Gauntlet's Sharpe ratio is the same.
    for params in PARAMS:
        assert _sharpe(_trial(0, params, value=1.0), windows) == _sharpe(_trial(0, params, value=-123.4), windows)


def test_a_trial_that_cannot_be_backtested_has_no_sharpe(windows: MarketWindows) -> None:
    assert math.isnan(_sharpe(_trial(0, PARAMS[0], value=0.0, strategy="no_such_strategy"), windows))
    assert math.isnan(_sharpe(_trial(0, {"lookback": 1}, value=0.0), windows))


def test_the_fingerprint_follows_the_data_and_the_costs(windows: MarketWindows) -> None:
    base = in_sample_fingerprint(windows=windows, fee_bps=2.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)
    assert base == in_sample_fingerprint(windows=windows, fee_bps=2.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)
    assert base != in_sample_fingerprint(windows=windows, fee_bps=3.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)
    other = split_windows(frame=generate_synthetic_market(seed=11))
    assert base != in_sample_fingerprint(windows=other, fee_bps=2.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)


def test_only_trials_up_to_the_evaluated_one_count() -> None:
    sharpes = [(n, 0.1 * n * (-1) ** n) for n in range(10)]
    grown = study_contexts(sharpes=sharpes, numbers=[3])
    early = study_contexts(sharpes=sharpes[:4], numbers=[3])
    assert grown == early
    assert grown[3].n_trials == 4
    assert grown[3].sharpe_variance_annual == pytest.approx(statistics.variance([0.0, -0.1, 0.2, -0.3]), rel=1e-12)


def test_a_trial_without_a_sharpe_counts_but_adds_no_variance() -> None:
    contexts = study_contexts(sharpes=[(0, 1.0), (1, math.nan), (2, 3.0)], numbers=[0, 1, 2])
    assert contexts[0] == StudyContext(n_trials=1, sharpe_variance_annual=0.0)
    assert contexts[1] == StudyContext(n_trials=2, sharpe_variance_annual=0.0)
    assert contexts[2] == StudyContext(n_trials=3, sharpe_variance_annual=2.0)


def test_a_trial_with_two_sharpes_is_refused() -> None:
    with pytest.raises(EvaluationError, match="trial 1 has two in-sample Sharpe ratios"):
        study_contexts(sharpes=[(1, 0.5), (0, 0.1), (1, 0.7)], numbers=[1])


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(-5, 5), st.just(math.nan)), min_size=1, max_size=40),
    order=st.randoms(use_true_random=False),
)
def test_contexts_match_the_definition_in_any_order(values, order) -> None:
    sharpes = list(enumerate(values))
    shuffled = list(sharpes)
    order.shuffle(shuffled)
    numbers = list(range(len(values)))
    contexts = study_contexts(sharpes=shuffled, numbers=numbers)
    assert contexts == study_contexts(sharpes=sharpes, numbers=numbers)
    for number in numbers:
        finite = [v for v in values[: number + 1] if math.isfinite(v)]
        expected = statistics.variance(finite) if len(finite) >= 2 else 0.0
        assert contexts[number].n_trials == number + 1
        assert contexts[number].sharpe_variance_annual == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert np.isfinite([c.sharpe_variance_annual for c in contexts.values()]).all()
