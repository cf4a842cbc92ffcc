"""The gauntlet of one trial as a pure function: the stage table, stopping, reuse, pending sessions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from simulations.cge.model import calibrate
from simulations.cge.sam import hosoe_sam
from simulations.cge.scenarios import draw_scenarios, solve_scenarios
from simulations.deployment import GATE_ORDER as DEPLOYMENT_GATES
from simulations.errors import TrialDataError
from simulations.gates import GatePolicy
from simulations.gauntlet import (
    GATE_ORDER,
    STAGES,
    GauntletInputs,
    PaperPending,
    ReplayVenue,
    StudyContext,
    TrialCase,
    evaluate_trial,
    stage_for_gate,
)
from simulations.market import MarketWindows
from simulations.stress import StressScenarios, market_scenarios
from simulations.trial import TrialSnapshot, TrialState
from simulations.strategies import BUILT_IN_STRATEGIES

CONTEXT = StudyContext(n_trials=1, sharpe_variance_annual=0.0)
PARAMS = {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003}
#: Thresholds every momentum trial on the default market meets: each gate passes.
LENIENT = {
    "backtest": {"phases": [{"name": "all", "max_loss": -1.0, "max_drawdown": 1.0}]},
    "cge": {"min_share_profitable": 0.0, "min_median_sharpe": -100.0, "max_drawdown_multiple": 100.0, "max_catastrophic": 20},
    # No edge in the synthetic market for the sequential test to find: every grade passes, on the grade alone.
    "paper": {"min_days": 1.0, "required_grades": ["A", "B", "C", "D", "F"], "sequential": {"enabled": False}},
}


@pytest.fixture(scope="module")
def scenarios(windows: MarketWindows) -> StressScenarios:
    calibration = calibrate(hosoe_sam())
    scenario_set = solve_scenarios(calibration=calibration, scenarios=draw_scenarios(calibration=calibration, n=20))
    return market_scenarios(scenario_set=scenario_set, windows=windows, seeds=(0, 0), sam_sha256="test", warmup_bars=500)


def _inputs(windows: MarketWindows, scenarios: StressScenarios, policy: GatePolicy, venue=None) -> GauntletInputs:
    return GauntletInputs(
        windows=windows, scenarios=scenarios, policy=policy, fee_bps=1.0, slippage_bps=1.0,
        paper=venue or ReplayVenue(windows=windows, fee_bps=1.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES),
        strategies=BUILT_IN_STRATEGIES,
    )


def _trial(strategy: str = "momentum", params: dict | None = None) -> TrialCase:
    snapshot = TrialSnapshot.build(
        study_name="demo", number=0, trial_id=0, state=TrialState.COMPLETE, values=(1.0,),
        params=params or PARAMS, user_attrs={"strategy": strategy},
    )
    return TrialCase(key="demo__t00000000", snapshot=snapshot, context=CONTEXT)


def _policy(**overrides) -> GatePolicy:
    data = GatePolicy().model_dump(mode="json")
    for changes in (LENIENT, overrides):
        for section, values in changes.items():
            data[section].update(values)
    return GatePolicy.model_validate(data)


def test_the_table_orders_the_gates_and_deployment_requires_exactly_them() -> None:
    assert GATE_ORDER == ("backtest_gate", "cge_gate", "paper_trading_gate")
    assert DEPLOYMENT_GATES == GATE_ORDER
    assert [s.asset for s in STAGES] == ["backtest_results", "cge_stress_report", "paper_trading_grade"]
    assert stage_for_gate("cge_gate") is STAGES[1]
    with pytest.raises(KeyError, match="no stage has gate 'nope'"):
        stage_for_gate("nope")


def test_a_trial_that_meets_every_threshold_passes_every_gate(windows, scenarios) -> None:
    evaluation = evaluate_trial(_trial(), _inputs(windows, scenarios, _policy()))
    assert evaluation.passed and evaluation.stopped_at is None and evaluation.pending is None
    assert list(evaluation.results) == list(GATE_ORDER)
    assert all(v.passed for v in evaluation.verdicts().values())


def test_a_trial_stops_at_its_first_failed_gate_unless_every_gate_is_judged(windows, scenarios) -> None:
    policy = _policy(cge={"min_median_sharpe": 100.0})
    stopped = evaluate_trial(_trial(), _inputs(windows, scenarios, policy))
    assert stopped.stopped_at == "cge_gate" and not stopped.passed
    assert list(stopped.results) == ["backtest_gate", "cge_gate"]
    judged = evaluate_trial(_trial(), _inputs(windows, scenarios, policy), every_gate=True)
    assert judged.stopped_at == "cge_gate" and list(judged.results) == list(GATE_ORDER)
    # The gates it shares with the stopped evaluation gave the same verdicts.
    assert {g: v for g, v in judged.verdicts().items() if g in stopped.results} == stopped.verdicts()


def test_known_results_are_reused_not_recomputed(windows, scenarios) -> None:
    inputs = _inputs(windows, scenarios, _policy())
    first = evaluate_trial(_trial(), inputs)
    # A trial whose strategy cannot be built would raise at any gate evaluated again.
    again = evaluate_trial(_trial(strategy="no_such_strategy"), inputs, known=first.results)
    assert again.results == first.results


def test_a_session_short_of_its_minimum_days_is_pending_not_judged(windows, scenarios) -> None:
    @dataclass(frozen=True)
    class Progress:
        days_elapsed: float = 2.0
        fee_bps: float = 1.0
        slippage_bps: float = 1.0
        bar_seconds: float = 3600.0

    class YoungVenue:
        def advance(self, *, trial_key, strategy_name, params):
            return Progress()

        def bars(self, *, trial_key) -> pl.DataFrame:
            raise AssertionError("a pending session is not graded")

    evaluation = evaluate_trial(_trial(), _inputs(windows, scenarios, _policy(paper={"min_days": 7.0}), YoungVenue()))
    assert evaluation.pending == "paper_trading_gate" and not evaluation.passed
    pending = evaluation.results["paper_trading_gate"]
    assert isinstance(pending, PaperPending) and pending.min_days == 7.0
    assert set(evaluation.verdicts()) == {"backtest_gate", "cge_gate"}


def test_a_trial_naming_no_strategy_is_an_infrastructure_error(windows, scenarios) -> None:
    trial = _trial()
    nameless = TrialCase(key=trial.key, snapshot=trial.snapshot.model_copy(update={"user_attrs": {}}), context=CONTEXT)
    with pytest.raises(TrialDataError, match="names no strategy"):
        evaluate_trial(nameless, _inputs(windows, scenarios, _policy()))


def test_gate_one_needs_the_study_context(windows, scenarios) -> None:
    trial = _trial()
    with pytest.raises(TrialDataError, match="study context"):
        evaluate_trial(TrialCase(key=trial.key, snapshot=trial.snapshot), _inputs(windows, scenarios, _policy()))


def test_the_replay_venue_trades_the_whole_forward_window(windows) -> None:
    venue = ReplayVenue(windows=windows, fee_bps=1.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)
    progress = venue.advance(trial_key="k", strategy_name="momentum", params=PARAMS)
    bars = venue.bars(trial_key="k")
    assert bars.height == windows.forward.n_bars
    assert progress.days_elapsed == pytest.approx(windows.forward.n_bars * windows.forward.bar_seconds / 86_400)
    assert np.isfinite(bars["equity"].to_numpy()).all()


class _OpenEndedVenue(ReplayVenue):
    """A venue whose clock has not released the whole forward window yet (the wall clock)."""

    def exhausted(self, *, trial_key: str) -> bool:
        return False


def test_the_sequential_test_keeps_an_undecided_session_trading_and_rejects_it_at_the_end(windows, scenarios) -> None:
    # A momentum rule on the synthetic market has no edge: over 60 market days the test stays undecided.
    required = _policy(paper={"min_days": 1.0, "required_grades": list("ABCDF"), "sequential": {"enabled": True}})
    venue = _OpenEndedVenue(windows=windows, fee_bps=1.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)
    waiting = evaluate_trial(_trial(), _inputs(windows, scenarios, required, venue))
    assert waiting.pending == "paper_trading_gate"
    pending = waiting.results["paper_trading_gate"]
    assert isinstance(pending, PaperPending) and "sequential test undecided after 60 market days" in pending.undecided

    # Every bar traded and still undecided: rejected, with the e-value against the threshold.
    rejected = evaluate_trial(_trial(), _inputs(windows, scenarios, required)).verdicts()["paper_trading_gate"]
    assert not rejected.passed
    (check,) = [c for c in rejected.checks if c.name == "sequential_e_value"]
    assert check.threshold == 20.0 and check.value < 20.0 and rejected.reason.startswith("sequential_e_value")

    # Off, the same session passes on its grade alone, and its e-value is still reported.
    off = evaluate_trial(_trial(), _inputs(windows, scenarios, _policy())).results["paper_trading_gate"]
    assert off.verdict.passed and "sequential_e_value" not in [c.name for c in off.verdict.checks]
    assert off.metrics.sequential_e_value == check.value and off.metrics.sequential_decided_day is None


def test_a_futile_or_overlong_session_is_rejected_while_bars_remain(windows, scenarios) -> None:
    venue = _OpenEndedVenue(windows=windows, fee_bps=1.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES)
    paper = {"min_days": 1.0, "required_grades": list("ABCDF")}
    # No edge against a floor of 10: the futility bound shows the Sharpe ratio is below it long
    # before the window ends, so the session stops there instead of trading on.
    futile = _policy(paper={**paper, "sequential": {"enabled": True, "sharpe_floor": 10.0}})
    outcome = evaluate_trial(_trial(), _inputs(windows, scenarios, futile, venue)).results["paper_trading_gate"]
    assert not isinstance(outcome, PaperPending) and not outcome.verdict.passed
    m = outcome.metrics
    assert m.sequential_decided_day is None and 5 < m.sequential_futile_day < m.market_days
    # Without the futility bound the same session is still waiting for the test to decide.
    patient = _policy(paper={**paper, "sequential": {"enabled": True, "sharpe_floor": 10.0, "futility": False}})
    assert isinstance(evaluate_trial(_trial(), _inputs(windows, scenarios, patient, venue)).results["paper_trading_gate"], PaperPending)
    # Undecided, but graded below the required grades: the grade rejects it, although bars remain.
    strict = _policy(paper={
        "min_days": 1.0, "required_grades": ["A"], "grading": {"min_trades": 10_000},
        "sequential": {"enabled": True, "futility": False},
    })
    outcome = evaluate_trial(_trial(), _inputs(windows, scenarios, strict, venue)).results["paper_trading_gate"]
    assert not isinstance(outcome, PaperPending) and not outcome.verdict.passed
    assert outcome.metrics.grade != "A" and outcome.metrics.sequential_decided_day is None
    # Undecided after the market days allowed: rejected, although bars remain.
    capped = _policy(paper={**paper, "sequential": {"enabled": True, "max_days": 30}})
    outcome = evaluate_trial(_trial(), _inputs(windows, scenarios, capped, venue)).results["paper_trading_gate"]
    assert not isinstance(outcome, PaperPending) and not outcome.verdict.passed
    assert outcome.metrics.sequential_futile_day is None and outcome.metrics.market_days >= 30
