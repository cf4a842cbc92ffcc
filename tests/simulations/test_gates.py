"""GatePolicy defaults and the three gate evaluations (simulations/gates.py)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from simulations.errors import EvaluationError
from simulations.gates import (
    CALIBRATED_MIN_BACKTEST_SHARPE,
    GatePolicy,
    evaluate_backtest_gate,
    evaluate_cge_gate,
    evaluate_paper_gate,
    grade_paper,
)
from simulations.metrics import BacktestMetrics
from tests.simulations.previous_system import previous_system_policy

# Most tests exercise the gates' mechanics with DESIGN.md's thresholds (the previous system's,
# which the demo keeps); the calibrated defaults differ only in the floors checked below.
POLICY = previous_system_policy()
DEFAULT = GatePolicy()

GOOD_METRICS = dict(
    n_observations=4319,
    periods_per_year=8766.0,
    risk_free_rate=0.0,
    total_return=0.12,
    cagr=0.26,
    annualised_volatility=0.25,
    sharpe=1.1,
    sharpe_per_period=1.1 / math.sqrt(8766.0),
    sortino=1.6,
    max_drawdown=0.10,
    calmar=2.6,
    n_trades=40,
    win_rate=0.3,
    exposure=0.9,
    turnover=60.0,
    total_costs=0.018,
    alpha=0.2,
    beta=0.1,
    benchmark_total_return=0.02,
    skew=-0.1,
    kurtosis=5.0,
    probabilistic_sharpe=0.77,
    min_track_record_length=9000.0,
)


def metrics(**changes: float) -> BacktestMetrics:
    return BacktestMetrics(**{**GOOD_METRICS, **changes})


def _policy(**sections: dict) -> GatePolicy:
    return GatePolicy.model_validate({**POLICY.model_dump(), **sections})


# --------------------------------------------------------------------------- policy


def test_the_previous_system_policy_follows_the_design() -> None:
    phases = {phase.name: phase for phase in POLICY.backtest.phases}
    assert [(p.until_completed_trials, p.max_loss, p.min_sharpe, p.max_drawdown) for p in phases.values()] == [
        (20, -0.5, None, 0.8),
        (50, -0.2, -0.5, 0.5),
        (100, -0.1, 0.0, 0.35),
        (None, 0.0, 0.3, 0.15),
    ]
    assert [p.min_dsr for p in phases.values()] == [None, None, 0.10, 0.25]
    cge = POLICY.cge
    assert (cge.min_share_profitable, cge.min_median_sharpe, cge.max_drawdown_multiple, cge.catastrophic_loss,
            cge.max_catastrophic) == (0.20, -1.5, 1.5, 0.90, 0)  # fmt: skip
    assert POLICY.paper.min_days == 7 and POLICY.paper.required_grades == {"A", "B"}
    assert POLICY.paper.grading.max_drawdown == 0.10 and not POLICY.paper.sequential.enabled
    assert POLICY.backtest.enabled and POLICY.cge.enabled and POLICY.paper.enabled


def test_defaults_are_the_design_with_the_calibrated_floors() -> None:
    assert CALIBRATED_MIN_BACKTEST_SHARPE == 3.0
    assert [p.min_sharpe for p in DEFAULT.backtest.phases] == [CALIBRATED_MIN_BACKTEST_SHARPE] * 4
    assert DEFAULT.paper.required_grades == {"A"} and DEFAULT.paper.grading.max_drawdown == 0.25
    calibrated = POLICY.model_dump()
    for phase in calibrated["backtest"]["phases"]:
        phase["min_sharpe"] = CALIBRATED_MIN_BACKTEST_SHARPE
    calibrated["paper"]["required_grades"] = frozenset({"A"})
    calibrated["paper"]["grading"]["max_drawdown"] = 0.25
    calibrated["paper"]["sequential"]["enabled"] = True  # the previous system (the demo's) had none
    calibrated["cge"] |= {"min_share_profitable": 0.40, "min_median_sharpe": 0.0}  # DESIGN.md's; the demo's are lower
    assert GatePolicy.model_validate(calibrated) == DEFAULT


def test_the_calibrated_floor_stops_what_the_design_let_through() -> None:
    lucky = metrics(sharpe=2.4)
    assert evaluate_backtest_gate(metrics=lucky, policy=POLICY, n_completed_trials=50, dsr=0.9).passed
    verdict = evaluate_backtest_gate(metrics=lucky, policy=DEFAULT, n_completed_trials=50, dsr=0.9)
    assert not verdict.passed and verdict.reason == "sharpe 2.4 < min 3 (short by 0.6)"


def test_policy_is_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        POLICY.cge = None  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        GatePolicy.model_validate({"cge": {"min_share_profitabel": 0.5}})
    with pytest.raises(ValidationError, match="best grades"):
        GatePolicy.model_validate({"paper": {"required_grades": ["A", "C"]}})
    with pytest.raises(ValidationError, match="strictly increasing"):
        _policy(backtest={"phases": [
            {"name": "a", "until_completed_trials": 50, "max_loss": -0.5, "max_drawdown": 0.5},
            {"name": "b", "until_completed_trials": 20, "max_loss": -0.5, "max_drawdown": 0.5},
            {"name": "c", "max_loss": -0.5, "max_drawdown": 0.5},
        ]})
    with pytest.raises(ValidationError, match="last phase"):
        _policy(backtest={"phases": [{"name": "a", "until_completed_trials": 5, "max_loss": -0.5, "max_drawdown": 0.5}]})


# --------------------------------------------------------------------------- backtest gate


@pytest.mark.parametrize(
    ("n_completed", "phase"),
    [(0, "early"), (19, "early"), (20, "mid"), (49, "mid"), (50, "late"), (99, "late"), (100, "mature"), (10**6, "mature")],
)
def test_phase_boundaries(n_completed: int, phase: str) -> None:
    verdict = evaluate_backtest_gate(metrics=metrics(), policy=POLICY, n_completed_trials=n_completed, dsr=0.9)
    assert verdict.phase == phase and verdict.passed and verdict.reason == "all thresholds met"


def test_each_phase_applies_its_own_thresholds() -> None:
    # Sharpe -0.3, drawdown 0.55, return -0.15, DSR 0.05: fine early, then failing ever more.
    weak = metrics(sharpe=-0.3, max_drawdown=0.55, total_return=-0.15)
    failed = {
        n: {c.name for c in evaluate_backtest_gate(metrics=weak, policy=POLICY, n_completed_trials=n, dsr=0.05).checks if not c.passed}
        for n in (0, 20, 50, 100)
    }
    assert failed == {
        0: set(),
        20: {"max_drawdown"},
        50: {"total_return", "sharpe", "max_drawdown", "dsr"},
        100: {"total_return", "sharpe", "max_drawdown", "dsr"},
    }


def test_reason_names_the_threshold_and_the_shortfall() -> None:
    verdict = evaluate_backtest_gate(metrics=metrics(sharpe=0.12), policy=POLICY, n_completed_trials=100, dsr=0.9)
    assert not verdict.passed
    assert verdict.reason == "sharpe 0.12 < min 0.3 (short by 0.18)"
    check = next(c for c in verdict.checks if c.name == "sharpe")
    assert check.comparator == ">=" and check.margin == pytest.approx(-0.18)
    verdict = evaluate_backtest_gate(metrics=metrics(max_drawdown=0.2), policy=POLICY, n_completed_trials=100, dsr=0.9)
    assert verdict.reason == "max_drawdown 0.2 > max 0.15 (over by 0.05)"


def test_thresholds_are_inclusive() -> None:
    edge = metrics(sharpe=0.3, max_drawdown=0.15, total_return=0.0, n_trades=1)
    verdict = evaluate_backtest_gate(metrics=edge, policy=POLICY, n_completed_trials=100, dsr=0.25)
    assert verdict.passed and all(c.margin == 0.0 for c in verdict.checks if c.name != "n_trades")


def test_zero_trade_backtest_never_passes() -> None:
    flat = metrics(n_trades=0, total_return=0.0, sharpe=0.0, max_drawdown=0.0, win_rate=0.0)
    verdict = evaluate_backtest_gate(metrics=flat, policy=POLICY, n_completed_trials=0, dsr=0.5)
    assert not verdict.passed and verdict.reason == "n_trades 0 < min 1 (short by 1)"


def test_disabled_backtest_gate_passes_visibly_but_still_refuses_nan() -> None:
    policy = _policy(backtest={**POLICY.backtest.model_dump(), "enabled": False})
    verdict = evaluate_backtest_gate(metrics=metrics(sharpe=-9.0), policy=policy, n_completed_trials=500, dsr=0.0)
    assert verdict.passed and verdict.disabled and verdict.reason == "disabled" and verdict.checks == ()
    with pytest.raises(EvaluationError, match="dsr"):
        evaluate_backtest_gate(metrics=metrics(), policy=policy, n_completed_trials=500, dsr=float("nan"))


@pytest.mark.parametrize(("dsr", "n"), [(float("nan"), 1), (1.5, 1), (0.5, -1), (0.5, 2.5)])
def test_backtest_gate_rejects_invalid_inputs(dsr: float, n: float) -> None:
    with pytest.raises(EvaluationError):
        evaluate_backtest_gate(metrics=metrics(), policy=POLICY, n_completed_trials=n, dsr=dsr)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- cge gate

GOOD_SUMMARY = {
    "share_profitable": 0.55,
    "median_sharpe": 0.4,
    "median_max_drawdown": 0.12,
    "median_drawdown_multiple": 0.9,
    "worst_return": -0.45,
    "n_catastrophic": 0,
    "expected_shortfall": -0.3,
}


def test_cge_gate_passes_and_fails_each_threshold() -> None:
    assert evaluate_cge_gate(summary=GOOD_SUMMARY, policy=DEFAULT).passed
    cases = {
        "share_profitable": ({"share_profitable": 0.39}, "share_profitable 0.39 < min 0.4 (short by 0.01)"),
        "median_sharpe": ({"median_sharpe": -0.1}, "median_sharpe -0.1 < min 0 (short by 0.1)"),
        "median_drawdown_multiple": (
            {"median_drawdown_multiple": 1.75}, "median_drawdown_multiple 1.75 > max 1.5 (over by 0.25)"
        ),
        "n_catastrophic": ({"n_catastrophic": 2, "worst_return": -0.95}, "n_catastrophic 2 > max 0 (over by 2)"),
    }
    for name, (change, reason) in cases.items():
        verdict = evaluate_cge_gate(summary={**GOOD_SUMMARY, **change}, policy=DEFAULT)
        assert not verdict.passed, name
        assert verdict.reason == reason


def test_cge_gate_boundaries_are_inclusive() -> None:
    edge = {**GOOD_SUMMARY, "share_profitable": 0.40, "median_sharpe": 0.0, "median_drawdown_multiple": 1.5}
    assert evaluate_cge_gate(summary=edge, policy=DEFAULT).passed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"median_sharpe": float("nan")}, "median_sharpe must be a finite number"),
        ({"share_profitable": 1.2}, "fraction"),
        ({"n_catastrophic": 0.5}, "whole number"),
        ({"worst_return": -0.95}, "inconsistent"),
        ({"n_catastrophic": 1}, "inconsistent"),
        ({"median_drawdown_multiple": -0.1}, "must be >= 0"),
        ({"median_drawdown_multiple": float("inf")}, "median_drawdown_multiple must be a finite number"),
    ],
)
def test_cge_gate_rejects_invalid_summaries(change: dict, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate_cge_gate(summary={**GOOD_SUMMARY, **change}, policy=DEFAULT)


def test_the_absolute_cge_drawdown_cap_is_refused_with_its_replacement() -> None:
    with pytest.raises(ValueError, match="replaced by gates.cge.max_drawdown_multiple"):
        _policy(cge={"max_drawdown": 0.25})


def test_cge_gate_missing_keys_and_disabled() -> None:
    with pytest.raises(EvaluationError, match="lacks \\['worst_return'\\]"):
        evaluate_cge_gate(summary={k: v for k, v in GOOD_SUMMARY.items() if k != "worst_return"}, policy=DEFAULT)
    policy = _policy(cge={**DEFAULT.cge.model_dump(), "enabled": False})
    verdict = evaluate_cge_gate(summary={**GOOD_SUMMARY, "share_profitable": 0.0}, policy=policy)
    assert verdict.passed and verdict.disabled and verdict.reason == "disabled"


# --------------------------------------------------------------------------- paper gate

# Inputs passing all seven default checks, in grading order, and a failing value for each.
PAPER_PASS = dict(days=20.0, n_trades=9, win_rate=0.5, alpha=0.1, sharpe=1.2, max_drawdown=0.04, total_return=0.03)
PAPER_FAIL = dict(days=10.0, n_trades=2, win_rate=0.1, alpha=-0.2, sharpe=-0.5, max_drawdown=0.3, total_return=-0.02)
ORDER = ("days", "n_trades", "win_rate", "alpha", "sharpe", "max_drawdown", "total_return")


@pytest.mark.parametrize(
    ("n_passing", "grade"), [(7, "A"), (6, "B"), (5, "C"), (4, "D"), (3, "F"), (2, "F"), (1, "F"), (0, "F")]
)
def test_grade_boundaries(n_passing: int, grade: str) -> None:
    inputs = {key: (PAPER_PASS if index < n_passing else PAPER_FAIL)[key] for index, key in enumerate(ORDER)}
    got, checks = grade_paper(**inputs, policy=POLICY)
    assert got == grade
    assert [c.name for c in checks] == list(ORDER)
    assert sum(c.passed for c in checks) == n_passing


def test_paper_gate_needs_min_days_and_a_required_grade() -> None:
    verdict = evaluate_paper_gate(**PAPER_PASS, policy=POLICY)
    assert verdict.passed and verdict.grade == "A" and len(verdict.grading_checks) == 7
    # 7 days: the gate's floor is met, the days check (14) is not: grade B still passes.
    verdict = evaluate_paper_gate(**{**PAPER_PASS, "days": 7.0}, policy=POLICY)
    assert verdict.passed and verdict.grade == "B"
    verdict = evaluate_paper_gate(**{**PAPER_PASS, "days": 6.5}, policy=POLICY)
    assert not verdict.passed and verdict.reason.startswith("days 6.5 < min 7 (short by 0.5)")
    verdict = evaluate_paper_gate(**{**PAPER_PASS, "days": 7.0, "sharpe": 0.1}, policy=POLICY)
    assert not verdict.passed and verdict.grade == "C"
    assert verdict.reason == (
        "grade C (5/7 checks) below B: days 7 < min 14 (short by 7), sharpe 0.1 < min 0.5 (short by 0.4)"
    )


def test_paper_gate_disabled_and_nan() -> None:
    policy = _policy(paper={**POLICY.paper.model_dump(), "enabled": False})
    verdict = evaluate_paper_gate(**PAPER_FAIL, policy=policy)
    assert verdict.passed and verdict.disabled and verdict.reason == "disabled" and verdict.grade == "F"
    for key in ("sharpe", "alpha", "days", "win_rate"):
        with pytest.raises(EvaluationError, match=key):
            evaluate_paper_gate(**{**PAPER_PASS, key: float("nan")}, policy=POLICY)
    with pytest.raises(EvaluationError, match="win_rate"):
        grade_paper(**{**PAPER_PASS, "win_rate": 1.5}, policy=POLICY)


def test_required_grades_can_be_widened() -> None:
    policy = _policy(paper={**POLICY.paper.model_dump(), "required_grades": ["A", "B", "C"]})
    inputs = {key: (PAPER_PASS if index < 5 else PAPER_FAIL)[key] for index, key in enumerate(ORDER)}
    assert evaluate_paper_gate(**inputs, policy=policy).passed
    assert not evaluate_paper_gate(**inputs, policy=POLICY).passed
