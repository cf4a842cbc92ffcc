"""The look-ahead check: causal strategies pass, peeking ones are caught at the first bar that differs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.causality import check_causality, find_look_ahead
from simulations.errors import ConfigurationError, EvaluationError, LookAheadError, MarketDataError
from simulations.gates import GatePolicy
from simulations.gauntlet import GauntletInputs, ReplayVenue, StudyContext, TrialCase, evaluate_backtest
from simulations.market import MarketWindows
from simulations.strategies import BUILT_IN_STRATEGIES, LinearModelStrategy
from simulations.trial import TrialSnapshot, TrialState
from tests.simulations.look_ahead_strategies import CAUSAL, HorizonParams, PeekingStrategy, WholeSeriesZScore, WindowParams

BUILT_IN_PARAMS = {
    "momentum": [
        {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003},
        {"lookback": 6, "vol_lookback": 24, "target_bar_vol": 0.01},
    ],
    "mean_reversion": [
        {"lookback": 50, "entry_z": 2.0, "exit_z": 0.5},
        {"lookback": 480, "entry_z": 1.0, "exit_z": 0.0},
    ],
}
LINEAR_WEIGHTS = {"horizons": [6, 48, 240], "weights": [0.4, -0.2, 0.7], "bias": 0.05, "vol_lookback": 96}


def _series(seed: int, n: int) -> np.ndarray:
    return 100.0 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.0, 0.01, n)))


def _built_ins(tmp_path) -> list:
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(LINEAR_WEIGHTS))
    built = [BUILT_IN_STRATEGIES.build(name=name, params=p) for name, params in BUILT_IN_PARAMS.items() for p in params]
    # linear_model reads its weights only from its configured model directory: here tmp_path.
    linear = LinearModelStrategy(model_dir=tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    built.append((linear, linear.params_model(artifact_path=str(path), artifact_sha256=digest)))
    assert {s.name for s, _ in built} == {"momentum", "mean_reversion", "linear_model"}
    return built


def test_every_built_in_strategy_passes_on_the_data_gate_one_evaluates(windows: MarketWindows, tmp_path) -> None:
    history, close = windows.history_before(name="backtest"), windows.backtest.close
    for strategy, params in _built_ins(tmp_path):
        assert find_look_ahead(strategy=strategy, params=params, close=close, history=history) is None, strategy.name
        check_causality(strategy=strategy, params=params, close=close, history=history)


def test_the_peeking_plug_in_is_caught_at_the_first_bar_that_differs(windows: MarketWindows) -> None:
    history, close = windows.history_before(name="backtest"), windows.backtest.close
    strategy, params = PeekingStrategy(), HorizonParams(horizon=1)
    found = find_look_ahead(strategy=strategy, params=params, close=close, history=history)
    assert found is not None and found.strategy == "peeking"
    # The position on the cut bar needs the bar after it, which the prefix does not have.
    assert found.bar == found.cut and found.probe == "prefix"
    assert history.size <= found.cut < history.size + close.size - 1
    series = np.concatenate([history, close])
    assert strategy.positions(close=series[: found.cut + 1], params=params)[found.bar] == found.probe_position
    with pytest.raises(LookAheadError) as raised:
        check_causality(strategy=strategy, params=params, close=close, history=history)
    message = str(raised.value)
    assert "look-ahead" in message and "'peeking'" in message
    assert f"bar {found.bar - history.size} of the evaluated window (bar {found.bar} of the" in message
    assert not raised.value.transient


def test_a_statistic_of_the_whole_series_is_caught_in_the_history() -> None:
    series = _series(3, 600)
    found = find_look_ahead(strategy=WholeSeriesZScore(), params=WindowParams(window=2), close=series[400:], history=series[:400])
    assert found is not None and found.bar < 400
    assert "warm-up history" in found.message()


def test_the_check_is_deterministic_and_its_seed_moves_the_cuts() -> None:
    series = _series(4, 3_000)
    kwargs = dict(strategy=PeekingStrategy(), params=HorizonParams(horizon=1), close=series[1_000:], history=series[:1_000])
    first, again = find_look_ahead(**kwargs), find_look_ahead(**kwargs)
    assert first == again
    assert {find_look_ahead(**kwargs, seed=seed).cut for seed in range(5)} != {first.cut}


def test_gate_one_raises_look_ahead_before_any_verdict(windows: MarketWindows) -> None:
    strategies = BUILT_IN_STRATEGIES.with_strategies(PeekingStrategy())
    snapshot = TrialSnapshot.build(
        study_name="demo", number=3, trial_id=3, state=TrialState.COMPLETE, values=(1.0,),
        params={"horizon": 1}, user_attrs={"strategy": "peeking"},
    )
    inputs = GauntletInputs(
        windows=windows, scenarios=None, policy=GatePolicy(), fee_bps=2.0, slippage_bps=1.0,  # type: ignore[arg-type]
        paper=ReplayVenue(windows=windows, fee_bps=2.0, slippage_bps=1.0, strategies=strategies),
        strategies=strategies,
    )
    trial = TrialCase(key="demo__t00000003", snapshot=snapshot, context=StudyContext(n_trials=1, sharpe_variance_annual=0.0))
    with pytest.raises(LookAheadError, match="look-ahead in strategy 'peeking'"):
        evaluate_backtest(trial, inputs)


def test_bad_inputs_raise_actionable_errors() -> None:
    strategy, params = PeekingStrategy(), HorizonParams()
    series = _series(5, 100)
    for kwargs, error, message in (
        ({"n_cuts": 0}, ConfigurationError, "n_cuts must be an integer >= 1"),
        ({"seed": -1}, ConfigurationError, "seed must be a non-negative integer"),
        ({"close": series[:1]}, EvaluationError, "n_bars >= 2"),
        ({"close": series.reshape(4, 25)}, EvaluationError, r"shape \(n_bars,\)"),
        ({"history": np.array([100.0, np.nan])}, MarketDataError, "at bar 1"),
        ({"close": -series}, MarketDataError, "finite and > 0"),
    ):
        with pytest.raises(error, match=message):
            find_look_ahead(**{"strategy": strategy, "params": params, "close": series, **kwargs})

    class WrongShape(PeekingStrategy):
        def positions(self, *, close, params):
            return np.zeros(3)

    with pytest.raises(EvaluationError, match="returned positions of shape"):
        find_look_ahead(strategy=WrongShape(), params=params, close=series)


# --------------------------------------------------------------------------- properties

series_shapes = st.tuples(st.integers(0, 400), st.integers(2, 400), st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(
    shape=series_shapes,
    strategy=st.sampled_from(CAUSAL),
    window=st.integers(2, 60),
    n_cuts=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_causal_strategies_always_pass(shape, strategy, window, n_cuts, seed) -> None:
    n_history, n_window, market_seed = shape
    series = _series(market_seed, n_history + n_window)
    found = find_look_ahead(
        strategy=strategy, params=WindowParams(window=window), close=series[n_history:], history=series[:n_history],
        n_cuts=n_cuts, seed=seed,
    )
    assert found is None


@settings(max_examples=60, deadline=None)
@given(shape=series_shapes, horizon=st.integers(1, 30), n_cuts=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_peeking_is_always_caught_and_the_reported_bar_really_differs(shape, horizon, n_cuts, seed) -> None:
    n_history, n_window, market_seed = shape
    series = _series(market_seed, n_history + n_window)
    strategy, params = PeekingStrategy(), HorizonParams(horizon=horizon)
    found = find_look_ahead(
        strategy=strategy, params=params, close=series[n_history:], history=series[:n_history], n_cuts=n_cuts, seed=seed
    )
    assert found is not None
    assert n_history <= found.cut <= series.size - 2 and found.bar <= found.cut
    full = strategy.positions(close=series, params=params)
    assert found.full_position == full[found.bar] != found.probe_position
    if found.probe == "prefix":
        probed = strategy.positions(close=series[: found.cut + 1], params=params)
        assert probed[found.bar] == found.probe_position
        assert (probed[: found.bar] == full[: found.bar]).all()
    with pytest.raises(LookAheadError, match="look-ahead in strategy 'peeking'"):
        check_causality(
            strategy=strategy, params=params, close=series[n_history:], history=series[:n_history], n_cuts=n_cuts,
            seed=seed,
        )
