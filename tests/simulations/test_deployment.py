"""The pure deployment decision (simulations/deployment.py)."""

from __future__ import annotations

import datetime as dt
from typing import get_args

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from pydantic import ValidationError

from simulations.deployment import (
    GATE_ORDER,
    RANKING_HIGHER_IS_BETTER,
    Candidate,
    Decision,
    DeploymentSettings,
    LiveEntry,
    decide,
)
from simulations.vocabulary import RankingMetric
from simulations.gates import GRADES, GatePolicy, GateVerdict, ThresholdCheck, evaluate_cge_gate, evaluate_paper_gate

#: Paper-session values of a good candidate (the seven grading checks).
PAPER_VALUES = {
    "days": 14.0,
    "n_trades": 12.0,
    "win_rate": 0.4,
    "alpha": 0.1,
    "sharpe": 1.0,
    "max_drawdown": 0.05,
    "total_return": 0.03,
}
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def gate_verdict(gate: str, *, passed: bool = True, grade: str = "A", **paper: float) -> GateVerdict:
    """A verdict of ``gate``; the paper verdict carries grading checks with ``paper`` values."""
    check = ThresholdCheck(
        name="metric", value=1.0 if passed else -1.0, threshold=0.0, comparator=">=", passed=passed,
        margin=1.0 if passed else -1.0,
    )
    reason = "all thresholds met" if passed else check.describe()
    if gate != "paper_trading_gate":
        return GateVerdict(gate=gate, passed=passed, checks=(check,), reason=reason)
    values = {**PAPER_VALUES, **paper}
    grading = tuple(
        ThresholdCheck(name=name, value=value, threshold=0.0, comparator=">=", passed=True, margin=value)
        for name, value in values.items()
    )
    return GateVerdict(gate=gate, passed=passed, grade=grade, checks=(check,), grading_checks=grading, reason=reason)


def make_candidate(
    number: int = 0,
    *,
    study: str = "demo",
    failed: tuple[str, ...] = (),
    grade: str = "A",
    code_version: str = "v1",
    params_hash: str = "params-0",
    data_hashes: dict[str, str] | None = None,
    paper_mode: str = "forward",
    **paper: float,
) -> Candidate:
    """A candidate of ``study`` trial ``number``; gates in ``failed`` fail."""
    return Candidate(
        study=study,
        number=number,
        partition_key=f"{study}__t{number:08d}",
        params_hash=params_hash,
        code_version=code_version,
        data_hashes=data_hashes if data_hashes is not None else {"backtest": "b" * 8, "forward": "f" * 8},
        verdicts={
            gate: gate_verdict(gate, passed=gate not in failed, grade=grade, **paper) for gate in GATE_ORDER
        },
        paper_mode=paper_mode,
    )


def live_entry(number: int, *, decision_id: int | None = None, study: str = "demo", **paper: float) -> LiveEntry:
    values = {**PAPER_VALUES, **paper}
    return LiveEntry(
        partition_key=f"{study}__t{number:08d}",
        study=study,
        number=number,
        decision_id=decision_id if decision_id is not None else number + 1,
        promoted_at=START + dt.timedelta(hours=number),
        grade="A",
        params_hash=f"params-{number}",
        code_version="v1",
        ranking_metrics={name: values[name] for name in RANKING_HIGHER_IS_BETTER},
    )


SETTINGS = DeploymentSettings()


# --------------------------------------------------------------------------- gates


def test_promotes_when_every_gate_passed_and_a_slot_is_free() -> None:
    decision = decide(candidate=make_candidate(), settings=SETTINGS, live=[live_entry(7)], emergency_stop=False)
    assert decision.decision == "promoted"
    assert decision.replaces is None
    assert "grade A" in decision.reason and "a live slot is free (1/3 in use before it)" in decision.reason


@pytest.mark.parametrize("gate", GATE_ORDER)
def test_each_failing_gate_rejects_and_names_the_gate(gate: str) -> None:
    decision = decide(candidate=make_candidate(failed=(gate,)), settings=SETTINGS, live=[], emergency_stop=False)
    assert decision.decision == "rejected"
    assert decision.reason.startswith(f"{gate} failed: metric -1 < min 0")
    assert decision.replaces is None
    assert [g for g in GATE_ORDER if g in decision.reason] == [gate]


def test_every_failed_gate_is_named() -> None:
    decision = decide(candidate=make_candidate(failed=GATE_ORDER), settings=SETTINGS, live=[], emergency_stop=False)
    assert decision.decision == "rejected"
    assert all(f"{gate} failed" in decision.reason for gate in GATE_ORDER)


def test_grade_outside_required_grades_rejects_even_if_the_paper_gate_passed() -> None:
    decision = decide(candidate=make_candidate(grade="C"), settings=SETTINGS, live=[], emergency_stop=False)
    assert decision.decision == "rejected"
    assert "paper_trading_gate grade C not in required grades ['A']" in decision.reason
    assert SETTINGS.required_grades == GatePolicy().paper.required_grades
    assert decide(candidate=make_candidate(grade="B"), settings=SETTINGS, live=[], emergency_stop=False).decision == (
        "rejected"
    )
    lenient = DeploymentSettings(required_grades={"A", "B"})
    assert decide(candidate=make_candidate(grade="B"), settings=lenient, live=[], emergency_stop=False).decision == (
        "promoted"
    )


def test_real_gate_verdicts_make_a_candidate() -> None:
    policy = GatePolicy()
    cge = evaluate_cge_gate(
        summary={
            "share_profitable": 0.6,
            "median_sharpe": 0.8,
            "median_max_drawdown": 0.1,
            "median_drawdown_multiple": 0.8,
            "worst_return": -0.3,
            "n_catastrophic": 0,
        },
        policy=policy,
    )
    paper = evaluate_paper_gate(
        **{**PAPER_VALUES, "n_trades": 12}, e_value=policy.paper.sequential.threshold, policy=policy
    )
    candidate = Candidate(
        study="demo",
        number=3,
        partition_key="demo__t00000003",
        params_hash="p",
        code_version="v1",
        data_hashes={},
        verdicts={"backtest_gate": gate_verdict("backtest_gate"), "cge_gate": cge, "paper_trading_gate": paper},
        paper_mode="forward",
    )
    assert candidate.grade == "A"
    assert candidate.ranking_metrics["sharpe"] == PAPER_VALUES["sharpe"]
    assert decide(candidate=candidate, settings=SETTINGS, live=[], emergency_stop=False).decision == "promoted"


# --------------------------------------------------------------------------- holds and dry runs


def test_emergency_stop_holds_a_passing_candidate() -> None:
    decision = decide(candidate=make_candidate(), settings=SETTINGS, live=[], emergency_stop=True)
    assert decision.decision == "held_emergency_stop"
    assert "emergency stop" in decision.reason


def test_auto_promote_off_holds_for_a_person() -> None:
    decision = decide(
        candidate=make_candidate(), settings=DeploymentSettings(auto_promote=False), live=[], emergency_stop=False
    )
    assert decision.decision == "held_manual"


def test_a_holdout_grade_is_held_unless_holdout_grades_are_admitted() -> None:
    holdout = make_candidate(paper_mode="holdout")
    held = decide(candidate=holdout, settings=SETTINGS, live=[], emergency_stop=False)
    assert held.decision == "held_manual"
    assert held.reason == (
        "every gate passed (grade A) in holdout paper trading, which deployment.paper_modes ['forward'] does not "
        "admit; grade it forward, or promote by hand"
    )
    admitted = DeploymentSettings(paper_modes={"forward", "holdout"})
    assert decide(candidate=holdout, settings=admitted, live=[], emergency_stop=False).decision == "promoted"
    # The emergency stop still comes first, and a forward grade is not affected.
    assert decide(candidate=holdout, settings=SETTINGS, live=[], emergency_stop=True).decision == "held_emergency_stop"
    assert decide(candidate=make_candidate(), settings=SETTINGS, live=[], emergency_stop=False).decision == "promoted"


def test_dry_run_says_what_it_would_have_done() -> None:
    full = [live_entry(n, sharpe=0.5 + n) for n in (1, 2, 3)]
    dry = DeploymentSettings(dry_run=True, at_capacity="replace_weakest")
    decision = decide(candidate=make_candidate(sharpe=2.0), settings=dry, live=full, emergency_stop=False)
    assert decision.decision == "dry_run"
    assert decision.would_have == "promoted"
    assert decision.replaces == "demo__t00000001"
    assert decision.reason.startswith("dry run, would have been promoted:")
    stopped = decide(candidate=make_candidate(), settings=dry, live=[], emergency_stop=True)
    assert (stopped.decision, stopped.would_have) == ("dry_run", "held_emergency_stop")
    # A dry run into a free slot states the slot; it took nothing.
    free = decide(candidate=make_candidate(), settings=dry, live=full[:2], emergency_stop=False)
    assert free.reason == (
        "dry run, would have been promoted: every gate passed (grade A); a live slot is free (2/3 in use before it)"
    )


# --------------------------------------------------------------------------- capacity


def test_keep_incumbent_holds_at_capacity() -> None:
    full = [live_entry(n) for n in (1, 2, 3)]
    decision = decide(candidate=make_candidate(sharpe=9.0), settings=SETTINGS, live=full, emergency_stop=False)
    assert decision.decision == "held_capacity"
    assert "3/3" in decision.reason and "keep_incumbent" in decision.reason


def test_replace_weakest_replaces_only_a_weaker_entry() -> None:
    settings = DeploymentSettings(live_capacity=2, at_capacity="replace_weakest")
    live = [live_entry(1, sharpe=2.0), live_entry(2, sharpe=0.8)]
    better = decide(candidate=make_candidate(sharpe=1.0), settings=settings, live=live, emergency_stop=False)
    assert (better.decision, better.replaces) == ("promoted", "demo__t00000002")
    assert "sharpe 1 vs weakest live demo__t00000002 0.8" in better.reason
    tied = decide(candidate=make_candidate(sharpe=0.8), settings=settings, live=live, emergency_stop=False)
    assert (tied.decision, tied.replaces) == ("held_capacity", None)


def test_lower_drawdown_ranks_higher() -> None:
    settings = DeploymentSettings(live_capacity=2, at_capacity="replace_weakest", ranking_metric="max_drawdown")
    live = [live_entry(1, max_drawdown=0.02), live_entry(2, max_drawdown=0.09)]
    decision = decide(candidate=make_candidate(max_drawdown=0.05), settings=settings, live=live, emergency_stop=False)
    assert decision.replaces == "demo__t00000002"


def test_ties_make_the_older_decision_the_weakest() -> None:
    settings = DeploymentSettings(live_capacity=2, at_capacity="replace_weakest")
    live = [live_entry(1, decision_id=9, sharpe=0.5), live_entry(2, decision_id=4, sharpe=0.5)]
    decision = decide(candidate=make_candidate(sharpe=1.0), settings=settings, live=live, emergency_stop=False)
    assert decision.replaces == "demo__t00000002"


def test_an_already_live_trial_refreshes_its_entry_even_at_capacity() -> None:
    full = [live_entry(n) for n in (0, 1, 2)]
    decision = decide(
        candidate=make_candidate(0, code_version="v2"), settings=SETTINGS, live=full, emergency_stop=False
    )
    assert (decision.decision, decision.replaces) == ("promoted", "demo__t00000000")
    assert "already live" in decision.reason


# --------------------------------------------------------------------------- validation


def test_candidate_needs_every_gate_under_its_own_name() -> None:
    good = make_candidate()
    verdicts = dict(good.verdicts)
    del verdicts["cge_gate"]
    with pytest.raises(ValidationError, match="missing \\['cge_gate'\\]"):
        Candidate(**{**good.model_dump(), "verdicts": verdicts})
    swapped = {**good.verdicts, "cge_gate": good.verdicts["backtest_gate"]}
    with pytest.raises(ValidationError, match="cge_gate holds backtest_gate"):
        Candidate(**{**good.model_dump(), "verdicts": swapped})
    bare_paper = GateVerdict(gate="paper_trading_gate", passed=True, grade="A", reason="ok")
    with pytest.raises(ValidationError, match="evaluate_paper_gate"):
        Candidate(**{**good.model_dump(), "verdicts": {**good.verdicts, "paper_trading_gate": bare_paper}})


@pytest.mark.parametrize("key", ["a,b", "a...b", "a\nb", ""])
def test_candidate_rejects_unsafe_partition_keys(key: str) -> None:
    with pytest.raises(ValidationError):
        Candidate(**{**make_candidate().model_dump(), "partition_key": key})


def test_settings_validation_and_stable_serialisation() -> None:
    with pytest.raises(ValidationError):
        DeploymentSettings(live_capacity=0)
    with pytest.raises(ValidationError, match="at least one"):
        DeploymentSettings(required_grades=set())
    with pytest.raises(ValidationError, match="paper_modes must name at least one of \\['forward', 'holdout'\\]"):
        DeploymentSettings(paper_modes=set())
    with pytest.raises(ValidationError):
        DeploymentSettings(paper_modes={"replay"})
    assert DeploymentSettings(paper_modes={"holdout", "forward"}).model_dump(mode="json")["paper_modes"] == [
        "forward",
        "holdout",
    ]
    with pytest.raises(ValidationError):
        DeploymentSettings(at_capacity="evict_all")
    with pytest.raises(ValidationError):
        DeploymentSettings(ranking_metric="n_trades")
    assert DeploymentSettings(required_grades={"B", "A", "C"}).model_dump(mode="json")["required_grades"] == [
        "A",
        "B",
        "C",
    ]
    assert set(get_args(RankingMetric)) == set(RANKING_HIGHER_IS_BETTER)


def test_decision_shape_is_enforced() -> None:
    with pytest.raises(ValidationError, match="one line"):
        Decision(decision="rejected", reason="a\nb")
    with pytest.raises(ValidationError, match="would_have"):
        Decision(decision="promoted", reason="x", would_have="promoted")
    with pytest.raises(ValidationError, match="would_have"):
        Decision(decision="dry_run", reason="x")


def test_decide_rejects_malformed_arguments() -> None:
    with pytest.raises(TypeError, match="Candidate"):
        decide(candidate={"study": "x"}, settings=SETTINGS, live=[], emergency_stop=False)
    with pytest.raises(TypeError, match="emergency_stop"):
        decide(candidate=make_candidate(), settings=SETTINGS, live=[], emergency_stop=1)
    with pytest.raises(ValueError, match="twice"):
        decide(candidate=make_candidate(), settings=SETTINGS, live=[live_entry(1), live_entry(1)], emergency_stop=False)


# --------------------------------------------------------------------------- invariants


@st.composite
def scenarios(draw):
    failed = tuple(gate for gate in GATE_ORDER if draw(st.booleans()))
    grade = draw(st.sampled_from(GRADES))
    sharpe = draw(st.floats(-3, 3, allow_nan=False))
    settings = DeploymentSettings(
        auto_promote=draw(st.booleans()),
        required_grades=draw(st.sets(st.sampled_from(GRADES), min_size=1)),
        live_capacity=draw(st.integers(1, 4)),
        at_capacity=draw(st.sampled_from(["keep_incumbent", "replace_weakest"])),
        ranking_metric=draw(st.sampled_from(sorted(RANKING_HIGHER_IS_BETTER))),
        dry_run=draw(st.booleans()),
    )
    numbers = draw(st.lists(st.integers(0, 8), unique=True, max_size=5))
    live = [live_entry(n, sharpe=draw(st.floats(-3, 3, allow_nan=False))) for n in numbers]
    candidate = make_candidate(draw(st.integers(0, 8)), failed=failed, grade=grade, sharpe=sharpe)
    return candidate, settings, live, draw(st.booleans())


@hsettings(max_examples=300, deadline=None)
@given(scenarios())
def test_decide_invariants(scenario) -> None:
    candidate, settings, live, stop = scenario
    decision = decide(candidate=candidate, settings=settings, live=live, emergency_stop=stop)
    all_passed = all(v.passed for v in candidate.verdicts.values()) and candidate.grade in settings.required_grades
    live_keys = {e.partition_key for e in live}
    if decision.decision == "promoted":
        assert all_passed and not stop and settings.auto_promote and not settings.dry_run
        if candidate.partition_key not in live_keys and len(live) >= settings.live_capacity:
            assert decision.replaces in live_keys
    if not all_passed:
        assert "rejected" in (decision.decision, decision.would_have)
    elif stop:
        assert "held_emergency_stop" in (decision.decision, decision.would_have)
    assert decision.replaces is None or decision.replaces in live_keys
    assert (decision.decision == "dry_run") == settings.dry_run
    assert decision.decision not in {"retired", "rolled_back"}
    assert "\n" not in decision.reason
