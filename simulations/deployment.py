"""The deployment decision: pure, deterministic, and the only place promotion rules live.

:func:`decide` turns a :class:`Candidate` (a trial with all three gate verdicts), the
:class:`DeploymentSettings`, the current live set and the emergency-stop flag into one
:class:`Decision`. It never touches storage: the deployment registry
(``resources/registry.py``) reads the live set and the stop flag inside the transaction
that records the decision and applies its live change, so the rules below hold under
concurrent runs too.

The rules, in the order they are applied:

1. ``rejected`` unless every gate passed and the paper grade is in ``required_grades``
   (the reason names each failed gate and why);
2. ``held_emergency_stop`` while the emergency stop is set;
3. ``held_manual`` when the paper grade comes from a mode ``paper_modes`` does not admit (by
   default only ``forward``: a ``holdout`` replay traded bars that existed before the study),
   or when ``auto_promote`` is off (a person promotes by hand);
4. ``promoted`` (a refresh) when the trial is already live: its live entry now records
   this evaluation, and ``replaces`` is the trial's own key;
5. ``promoted`` into a free slot while fewer than ``live_capacity`` trials are live;
6. at capacity, ``held_capacity`` with ``keep_incumbent``; with ``replace_weakest``,
   ``promoted`` replacing the weakest live trial if the candidate ranks strictly higher
   on ``ranking_metric``, else ``held_capacity``.

With ``dry_run`` the outcome of these rules is returned as a ``dry_run`` decision whose
``would_have`` and ``replaces`` say what would have happened; nothing goes live.
``retired`` and ``rolled_back`` are decisions people (or the CLI) take through the
registry; :func:`decide` never returns them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_serializer, field_validator, model_validator

from simulations.constants import DEFAULT_LIVE_CAPACITY
from simulations.gates import GRADES, GateName, GateVerdict, Grade, PaperGatePolicy
from simulations.stage_names import GATE_ORDER
from simulations.vocabulary import AtCapacity, PaperMode, RankingMetric

DecisionKind = Literal[
    "promoted",
    "dry_run",
    "rejected",
    "held_emergency_stop",
    "held_manual",
    "held_capacity",
    "retired",
    "rolled_back",
]
DECISION_KINDS: tuple[str, ...] = get_args(DecisionKind)



#: Paper-session metrics a live set can be ranked by (names of the paper gate's grading
#: checks) and whether a larger value ranks higher.
RANKING_HIGHER_IS_BETTER: dict[str, bool] = {
    "sharpe": True,
    "total_return": True,
    "alpha": True,
    "win_rate": True,
    "max_drawdown": False,
}

#: Longest partition key the registry stores (its column width).
PARTITION_KEY_MAX_LENGTH = 255

# Control characters and commas break Dagster UI backfills (DESIGN.md); so does "...".
_UNSAFE_KEY = re.compile(r"[\x00-\x1f\x7f,]")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _check_partition_key(key: str) -> str:
    if _UNSAFE_KEY.search(key) or "..." in key:
        raise ValueError(f"partition key {key!r} must not contain commas, '...' or control characters")
    return key


def ranking_metrics_of(paper_verdict: GateVerdict) -> dict[str, float]:
    """The rankable paper-session metrics carried by a paper gate verdict.

    Parameters
    ----------
    paper_verdict
        The ``paper_trading_gate`` verdict (from ``evaluate_paper_gate``), whose grading
        checks hold the session's measured values.

    Returns
    -------
    dict
        Metric name (a key of :data:`RANKING_HIGHER_IS_BETTER`) to its measured value.

    Raises
    ------
    ValueError
        If the verdict is not the paper gate's or lacks one of the rankable metrics.
    """
    if paper_verdict.gate != "paper_trading_gate":
        raise ValueError(f"ranking metrics come from the paper_trading_gate verdict, got {paper_verdict.gate}")
    values = {check.name: check.value for check in paper_verdict.grading_checks}
    missing = sorted(set(RANKING_HIGHER_IS_BETTER) - set(values))
    if missing:
        raise ValueError(
            f"paper_trading_gate verdict lacks grading checks {missing}; build it with evaluate_paper_gate"
        )
    return {name: values[name] for name in RANKING_HIGHER_IS_BETTER}


class DeploymentSettings(_Frozen):
    """How passing trials are deployed.

    Attributes
    ----------
    auto_promote
        Promote passing trials without a person; off, they are held (``held_manual``).
    required_grades
        Paper grades a trial needs on top of passing every gate; by default the paper
        gate's own (the pipeline passes the policy's, so the two never disagree).
    live_capacity
        Most trials live at once; the registry enforces it in the database and refuses
        settings that disagree with its slot count.
    at_capacity
        With every slot taken: ``keep_incumbent`` holds the candidate;
        ``replace_weakest`` replaces the live trial ranking lowest on ``ranking_metric``
        if the candidate ranks strictly higher.
    ranking_metric
        Paper-session metric that ranks live trials against a candidate (the paper gate's
        grading check of that name; ``max_drawdown`` ranks lower values higher). Default:
        the annualised paper Sharpe ratio, the one risk-adjusted measure every grade uses.
    dry_run
        Record what would have happened as a ``dry_run`` decision and change nothing live.
    paper_modes
        Paper modes whose grades may promote (`simulations.vocabulary.PaperMode`): by default
        ``forward`` only, bars that arrived after the trial; a ``holdout`` grade is held.
    """

    auto_promote: bool = True
    required_grades: frozenset[Grade] = PaperGatePolicy().required_grades
    live_capacity: int = Field(default=DEFAULT_LIVE_CAPACITY, ge=1)
    at_capacity: AtCapacity = "keep_incumbent"
    ranking_metric: RankingMetric = "sharpe"
    dry_run: bool = False
    paper_modes: frozenset[PaperMode] = frozenset({"forward"})

    @field_validator("required_grades", "paper_modes")
    @classmethod
    def _some(cls, values: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        if not values:
            choices = list(GRADES) if info.field_name == "required_grades" else list(get_args(PaperMode))
            raise ValueError(f"{info.field_name} must name at least one of {choices}")
        return values

    @field_serializer("required_grades", "paper_modes")
    def _sorted(self, values: frozenset[str]) -> list[str]:
        # Sorted so the settings serialise identically in every process (idempotency keys).
        return sorted(values)


class Candidate(_Frozen):
    """A trial at the deployment stage: its identity, its inputs and its three gate verdicts.

    Attributes
    ----------
    study, number
        The Optuna study and the trial's number in it.
    partition_key
        The trial's ``trials`` partition key.
    params_hash
        Hash of the trial's params (what would be deployed).
    code_version
        Version of the code that evaluated it.
    data_hashes
        Hashes of the data every gate saw (window name to hash).
    verdicts
        One verdict per gate, keyed by gate name: ``backtest_gate``, ``cge_gate``,
        ``paper_trading_gate``.
    paper_mode
        How the paper grade was earned: ``forward`` or ``holdout`` (`simulations.vocabulary.PaperMode`).
    """

    study: str = Field(min_length=1)
    number: int = Field(ge=0)
    partition_key: str = Field(min_length=1, max_length=PARTITION_KEY_MAX_LENGTH)
    params_hash: str = Field(min_length=1)
    code_version: str = Field(min_length=1)
    data_hashes: dict[str, str]
    verdicts: dict[GateName, GateVerdict]
    paper_mode: PaperMode

    @field_validator("partition_key")
    @classmethod
    def _safe_key(cls, key: str) -> str:
        return _check_partition_key(key)

    @model_validator(mode="after")
    def _every_gate_once(self) -> Candidate:
        missing = [gate for gate in GATE_ORDER if gate not in self.verdicts]
        if missing:
            raise ValueError(f"a candidate needs a verdict of every gate; missing {missing}")
        mislabelled = [f"{key} holds {v.gate}" for key, v in self.verdicts.items() if v.gate != key]
        if mislabelled:
            raise ValueError(f"verdicts must be keyed by their own gate: {mislabelled}")
        ranking_metrics_of(self.verdicts["paper_trading_gate"])
        return self

    @property
    def label(self) -> str:
        """Human-readable reference, ``study#number``."""
        return f"{self.study}#{self.number}"

    @property
    def grade(self) -> Grade | None:
        """The paper-trading grade (graded even when the paper gate is disabled)."""
        return self.verdicts["paper_trading_gate"].grade

    @property
    def ranking_metrics(self) -> dict[str, float]:
        """The paper-session metrics a live set is ranked by."""
        return ranking_metrics_of(self.verdicts["paper_trading_gate"])


class LiveEntry(_Frozen):
    """One live deployment, as the registry holds it.

    Attributes
    ----------
    partition_key, study, number
        The live trial.
    decision_id
        The registry decision that put this evaluation live; on equal ranking the older
        decision (smaller id) counts as weaker.
    promoted_at
        When this evaluation went live (UTC).
    grade
        Its paper grade.
    params_hash, code_version
        What is deployed.
    ranking_metrics
        Its paper-session metrics (see :data:`RANKING_HIGHER_IS_BETTER`).
    """

    partition_key: str = Field(min_length=1, max_length=PARTITION_KEY_MAX_LENGTH)
    study: str = Field(min_length=1)
    number: int = Field(ge=0)
    decision_id: int = Field(ge=1)
    promoted_at: dt.datetime
    grade: Grade | None
    params_hash: str
    code_version: str
    ranking_metrics: dict[str, float]

    @field_validator("ranking_metrics")
    @classmethod
    def _rankable(cls, metrics: dict[str, float]) -> dict[str, float]:
        missing = sorted(set(RANKING_HIGHER_IS_BETTER) - set(metrics))
        if missing:
            raise ValueError(f"a live entry needs every ranking metric; missing {missing}")
        return metrics


class Decision(_Frozen):
    """What happens to one candidate.

    Attributes
    ----------
    decision
        The outcome (see the module docstring for when each is returned).
    reason
        One line saying why.
    replaces
        Partition key of the live deployment this one replaces (its own key for a refresh
        of an already-live trial), or ``None``.
    would_have
        For ``dry_run`` only: the decision that would have been taken.
    """

    decision: DecisionKind
    reason: str = Field(min_length=1)
    replaces: str | None = None
    would_have: DecisionKind | None = None

    @field_validator("reason")
    @classmethod
    def _one_line(cls, reason: str) -> str:
        if "\n" in reason or "\r" in reason:
            raise ValueError("a decision reason is one line")
        return reason

    @model_validator(mode="after")
    def _would_have_only_for_dry_runs(self) -> Decision:
        if (self.decision == "dry_run") != (self.would_have is not None):
            raise ValueError("would_have is set exactly for dry_run decisions")
        if self.would_have == "dry_run":
            raise ValueError("a dry run cannot wrap another dry run")
        return self

    @property
    def goes_live(self) -> bool:
        """Whether recording this decision changes the live set."""
        return self.decision == "promoted"


def _score(metrics: Mapping[str, float], metric: str) -> float:
    value = metrics[metric]
    return value if RANKING_HIGHER_IS_BETTER[metric] else -value


def _rejection(candidate: Candidate, settings: DeploymentSettings) -> str | None:
    failures = [
        f"{gate} failed: {candidate.verdicts[gate].reason}"
        for gate in GATE_ORDER
        if not candidate.verdicts[gate].passed
    ]
    if candidate.grade not in settings.required_grades:
        failures.append(
            f"paper_trading_gate grade {candidate.grade or 'none'} not in required grades "
            f"{sorted(settings.required_grades)}"
        )
    return "; ".join(failures) if failures else None


def _rule_outcome(
    candidate: Candidate, settings: DeploymentSettings, live: list[LiveEntry], emergency_stop: bool
) -> Decision:
    rejection = _rejection(candidate, settings)
    if rejection is not None:
        return Decision(decision="rejected", reason=rejection)
    grade = f"every gate passed (grade {candidate.grade})"
    if emergency_stop:
        return Decision(
            decision="held_emergency_stop", reason=f"{grade}, but the emergency stop is set; clear it to promote"
        )
    if candidate.paper_mode not in settings.paper_modes:
        return Decision(
            decision="held_manual",
            reason=f"{grade} in {candidate.paper_mode} paper trading, which deployment.paper_modes "
            f"{sorted(settings.paper_modes)} does not admit; grade it forward, or promote by hand",
        )
    if not settings.auto_promote:
        return Decision(decision="held_manual", reason=f"{grade}; auto_promote is off, promote by hand")
    if any(entry.partition_key == candidate.partition_key for entry in live):
        return Decision(
            decision="promoted",
            reason=f"{grade}; already live, its live entry now records this evaluation",
            replaces=candidate.partition_key,
        )
    if len(live) < settings.live_capacity:
        return Decision(
            decision="promoted",
            # Worded for a dry run as much as for a promotion: it states the slot, not an act.
            reason=f"{grade}; a live slot is free ({len(live)}/{settings.live_capacity} in use before it)",
        )
    full = f"live set full ({len(live)}/{settings.live_capacity})"
    if settings.at_capacity == "keep_incumbent":
        return Decision(decision="held_capacity", reason=f"{grade}; {full}, at_capacity=keep_incumbent")
    metric = settings.ranking_metric
    weakest = min(live, key=lambda e: (_score(e.ranking_metrics, metric), e.decision_id, e.partition_key))
    ours = candidate.ranking_metrics[metric]
    theirs = weakest.ranking_metrics[metric]
    versus = f"{metric} {ours:.4g} vs weakest live {weakest.partition_key} {theirs:.4g}"
    if _score(candidate.ranking_metrics, metric) > _score(weakest.ranking_metrics, metric):
        return Decision(
            decision="promoted",
            reason=f"{grade}; {full}, replaces the weakest: {versus}",
            replaces=weakest.partition_key,
        )
    return Decision(decision="held_capacity", reason=f"{grade}; {full}, does not beat the weakest: {versus}")


def decide(
    *, candidate: Candidate, settings: DeploymentSettings, live: list[LiveEntry], emergency_stop: bool
) -> Decision:
    """Decide what happens to ``candidate`` (pure; the rules are in the module docstring).

    Parameters
    ----------
    candidate
        The trial with its three gate verdicts.
    settings
        Deployment settings.
    live
        The live set at decision time (no two entries with one partition key).
    emergency_stop
        Whether the emergency stop is set.

    Returns
    -------
    Decision
        Never ``promoted`` with a failed gate, a grade outside ``required_grades``, the
        emergency stop set, ``auto_promote`` off or in a dry run; a promotion into a full
        live set always names the entry it replaces.

    Raises
    ------
    TypeError
        If an argument is not of the documented type.
    ValueError
        If ``live`` holds a partition key twice.
    """
    if not isinstance(candidate, Candidate):
        raise TypeError(f"candidate must be a Candidate, got {type(candidate).__name__}")
    if not isinstance(settings, DeploymentSettings):
        raise TypeError(f"settings must be DeploymentSettings, got {type(settings).__name__}")
    if not isinstance(emergency_stop, bool):
        raise TypeError(f"emergency_stop must be a bool, got {emergency_stop!r}")
    if any(not isinstance(entry, LiveEntry) for entry in live):
        raise TypeError("live must be a list of LiveEntry")
    keys = [entry.partition_key for entry in live]
    if len(set(keys)) != len(keys):
        raise ValueError(f"live set holds a partition key twice: {sorted(keys)}")
    outcome = _rule_outcome(candidate, settings, live, emergency_stop)
    if settings.dry_run:
        return Decision(
            decision="dry_run",
            reason=f"dry run, would have been {outcome.decision}: {outcome.reason}",
            replaces=outcome.replaces,
            would_have=outcome.decision,
        )
    return outcome
