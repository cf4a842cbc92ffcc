"""The gauntlet of one trial: its gated stages as rows of one ordered table, and the pure evaluation.

Each row names a stage (the asset it produces), its gate and the function that evaluates it.
The Dagster pipeline, the gate calibration and the tests read this table; the pipeline adds
the Dagster half of each row (asset keys, checks, events) in ``pipeline_assets.stage_table``.
Nothing here touches Dagster or an artifact store: a stage sees the trial, its study
context and the shared inputs (market windows, stress scenarios, gate policy, costs, and a
paper venue that trades forward bars).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from simulations.backtest import BacktestResult, backtest_strategy
from simulations.causality import check_causality
from simulations.constants import SECONDS_PER_DAY
from simulations.errors import EvaluationError, TrialDataError
from simulations.gates import (
    GateName,
    GatePolicy,
    GateVerdict,
    evaluate_backtest_gate,
    evaluate_cge_gate,
    evaluate_paper_gate,
)
from simulations.market import MarketWindows
from simulations.metrics import BacktestMetrics, compute_metrics, deflated_sharpe_ratio
from simulations.paper import PaperMetrics, SessionState, advance_session, paper_metrics
from simulations.vocabulary import PaperMode
from simulations.strategies import StrategyRegistry
from simulations.stress import StressReport, StressScenarios, stress_test
from simulations.stage_names import BACKTEST_NAMES, GATE_ORDER, PAPER_NAMES, STRESS_NAMES, StageNames
from simulations.trial import TrialSnapshot


# ------------------------------------------------------------------------------- what a stage sees
@dataclass(frozen=True)
class StudyContext:
    """Deflated-Sharpe inputs as of one trial: the trials completed up to and including it.

    Counting only trials numbered at or below the evaluated one keeps a trial's evaluation
    the same whenever it is rematerialized, however large the study has grown since.

    Attributes
    ----------
    n_trials
        Completed trials of the study numbered at or below this one.
    sharpe_variance_annual
        Variance of their own in-sample Sharpe ratios on the train window (annualised,
        squared), whatever the study's objective.
    """

    n_trials: int
    sharpe_variance_annual: float


def study_contexts(*, sharpes: Sequence[tuple[int, float]], numbers: Sequence[int]) -> dict[int, StudyContext]:
    """`StudyContext` for each trial number, from every completed trial's in-sample Sharpe ratio.

    Parameters
    ----------
    sharpes
        (trial number, annualised in-sample Sharpe ratio) of every completed trial of the
        study, as Gauntlet computes it (:func:`simulations.in_sample.in_sample_sharpe`),
        never the study's objective, which may be a loss, a profit or minimised. A NaN (a
        trial that could not be backtested) counts as a trial but adds nothing to the variance.
    numbers
        The trials to build a context for.

    Raises
    ------
    EvaluationError
        If a trial number appears twice in ``sharpes``.
    """
    ordered = sorted(sharpes, key=lambda pair: pair[0])
    trial_numbers = np.array([n for n, _ in ordered], dtype=np.int64)
    if np.any(np.diff(trial_numbers) == 0):
        duplicate = int(trial_numbers[np.flatnonzero(np.diff(trial_numbers) == 0)[0]])
        raise EvaluationError(f"trial {duplicate} has two in-sample Sharpe ratios; each trial has one")
    values = np.array([v for _, v in ordered], dtype=np.float64)
    finite = np.isfinite(values)
    contexts = {}
    for number in numbers:
        tried = int(np.searchsorted(trial_numbers, number, side="right"))
        known = values[:tried][finite[:tried]]
        variance = float(np.var(known, ddof=1)) if known.size >= 2 else 0.0
        contexts[number] = StudyContext(n_trials=max(1, tried), sharpe_variance_annual=variance)
    return contexts


@dataclass(frozen=True)
class TrialCase:
    """One trial as the stages see it: its partition key, snapshot and study context.

    ``context`` is needed by gate 1 only; a run that does not evaluate it may leave it out.
    """

    key: str
    snapshot: TrialSnapshot
    context: StudyContext | None = None

    @property
    def strategy_name(self) -> str:
        """The strategy the trial names in its ``strategy`` user attribute."""
        name = self.snapshot.user_attrs.get("strategy")
        if not isinstance(name, str):
            raise TrialDataError("user_attr 'strategy' is missing or not a string: the trial names no strategy")
        return name


class PaperProgress(Protocol):
    """How far a paper session has traded, where it started, and the costs it trades with."""

    @property
    def days_elapsed(self) -> float: ...

    fee_bps: float
    slippage_bps: float
    bar_seconds: float
    #: Forward bars before the session's first (the newest bar when a forward session started; 0 for a holdout).
    origin: int
    mode: PaperMode


class PaperVenue(Protocol):
    """Where gate 3's sessions trade: a paper broker in the pipeline, a replay in the calibration."""

    def advance(self, *, trial_key: str, strategy_name: str, params: Mapping[str, Any]) -> PaperProgress:
        """Start the trial's session if needed (idempotent) and trade what has arrived since."""

    def bars(self, *, trial_key: str) -> pl.DataFrame:
        """The session's per-bar record so far (:data:`simulations.paper.BAR_SCHEMA`)."""

    def exhausted(self, *, trial_key: str) -> bool:
        """Whether the session has traded every bar it will get (its clock released them all)."""


@dataclass(frozen=True)
class GauntletInputs:
    """What every trial of a run shares: the same data, thresholds, costs, strategies and paper venue."""

    windows: MarketWindows
    scenarios: StressScenarios
    policy: GatePolicy
    fee_bps: float
    slippage_bps: float
    paper: PaperVenue
    #: The strategies a trial may name: the built-ins and the configuration's plug-ins.
    strategies: StrategyRegistry


# ------------------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class BacktestOutcome:
    """What gate 1 found for one trial."""

    result: BacktestResult
    metrics: BacktestMetrics
    dsr: float
    context: StudyContext
    verdict: GateVerdict


@dataclass(frozen=True)
class StressOutcome:
    """What gate 2 found for one trial."""

    report: StressReport
    summary: dict[str, float | int]
    verdict: GateVerdict


@dataclass(frozen=True)
class PaperOutcome:
    """What gate 3 found for one session that has traded long enough to be graded."""

    session: PaperProgress
    metrics: PaperMetrics
    bars: pl.DataFrame
    benchmark: np.ndarray
    verdict: GateVerdict


@dataclass(frozen=True)
class PaperPending:
    """A session not graded yet: short of the policy's minimum days, or past them with a grade
    the policy requires, the sequential test undecided and bars still to come. Neither passed
    nor failed."""

    session: PaperProgress
    min_days: float
    #: Set when the minimum days are traded but the sequential test has not decided.
    undecided: str | None = None


Outcome = BacktestOutcome | StressOutcome | PaperOutcome
StageResult = Outcome | PaperPending


# ------------------------------------------------------------------------------------ the stages
def evaluate_backtest(trial: TrialCase, inputs: GauntletInputs) -> BacktestOutcome:
    """Gate 1: the trial's strategy on the backtest window, deflated for the study's trials.

    The strategy is first checked for look-ahead on the same bars (history included).

    Raises
    ------
    LookAheadError
        The strategy's positions depend on later bars (an infrastructure error, never a verdict).
    """
    if trial.context is None:
        raise TrialDataError("gate 1 needs the study context (completed trials and their Sharpe ratios)")
    strategy, params = inputs.strategies.build(name=trial.strategy_name, params=trial.snapshot.params)
    windows, context = inputs.windows, trial.context
    window, history = windows.backtest, windows.history_before(name="backtest")
    # Before anything is measured: a strategy that looks ahead would pass on prices it cannot know.
    check_causality(strategy=strategy, params=params, close=window.close, history=history)
    result = backtest_strategy(
        strategy=strategy, params=params, close=window.close, history=history,
        fee_bps=inputs.fee_bps, slippage_bps=inputs.slippage_bps, bar_seconds=window.bar_seconds,
    )
    metrics = compute_metrics(result=result, periods_per_year=window.periods_per_year)
    dsr = deflated_sharpe_ratio(
        sharpe=metrics.sharpe_per_period,
        n_observations=metrics.n_observations,
        skew=metrics.skew,
        kurtosis=metrics.kurtosis,
        n_trials=context.n_trials,
        sharpe_variance=context.sharpe_variance_annual / window.periods_per_year,
    )
    verdict = evaluate_backtest_gate(metrics=metrics, policy=inputs.policy, n_completed_trials=context.n_trials, dsr=dsr)
    return BacktestOutcome(result=result, metrics=metrics, dsr=dsr, context=context, verdict=verdict)


def evaluate_stress(trial: TrialCase, inputs: GauntletInputs) -> StressOutcome:
    """Gate 2: the trial's strategy on every stress-scenario path, with gate 1's backtester."""
    strategy, params = inputs.strategies.build(name=trial.strategy_name, params=trial.snapshot.params)
    scenarios = inputs.scenarios
    n_paths, n_bars = scenarios.paths.shape
    warmup = np.broadcast_to(scenarios.warmup, (n_paths, scenarios.warmup.size))
    full = np.concatenate([warmup, scenarios.paths], axis=1)
    positions = strategy.positions(close=full, params=params)[:, -n_bars:]
    report = stress_test(
        close_paths=scenarios.paths,
        positions=positions,
        fee_bps=inputs.fee_bps,
        slippage_bps=inputs.slippage_bps,
        periods_per_year=scenarios.periods_per_year,
        catastrophic_loss=inputs.policy.cge.catastrophic_loss,
    )
    summary = report.summary
    return StressOutcome(report=report, summary=summary, verdict=evaluate_cge_gate(summary=summary, policy=inputs.policy))


def grade_session(
    *, bars: pl.DataFrame, strategy_name: str, params: Mapping[str, Any], strategies: StrategyRegistry,
    windows: MarketWindows, policy: GatePolicy, fee_bps: float, slippage_bps: float, bar_seconds: float,
    origin: int,
) -> tuple[PaperMetrics, GateVerdict]:
    """Grade a paper session's per-bar record and apply gate 3.

    The session is reconciled with the backtester over the same bars, warmed up on every bar
    before the session's first.

    Parameters
    ----------
    bars
        The session's per-bar record: forward bars ``origin..origin+n-1``.
    strategies
        Where ``strategy_name`` is looked up.
    fee_bps, slippage_bps
        The session's costs (basis points).
    bar_seconds
        Bar length (seconds).
    origin
        Forward bars before the session's first (`MarketWindows.forward_from`).
    """
    n = bars.height
    history, close, _ = windows.forward_from(origin=origin)
    strategy, model = strategies.build(name=strategy_name, params=params)
    backtest = backtest_strategy(
        strategy=strategy, params=model, close=close[:n], history=history,
        fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=bar_seconds,
    )
    metrics = paper_metrics(
        bars=bars, fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=bar_seconds,
        periods_per_year=windows.forward.periods_per_year, policy=policy, backtest=backtest,
        benchmark_close=close[:n],
    )
    return metrics, evaluate_paper_gate(**metrics.gate_inputs(), policy=policy)


def evaluate_paper(trial: TrialCase, inputs: GauntletInputs) -> PaperOutcome | PaperPending:
    """Gate 3: advance the trial's paper session; grade it once it has traded the minimum days."""
    name = trial.strategy_name
    session = inputs.paper.advance(trial_key=trial.key, strategy_name=name, params=trial.snapshot.params)
    min_days = inputs.policy.paper.min_days
    if session.days_elapsed < min_days:
        return PaperPending(session=session, min_days=min_days)
    bars = inputs.paper.bars(trial_key=trial.key)
    metrics, verdict = grade_session(
        bars=bars, strategy_name=name, params=trial.snapshot.params, strategies=inputs.strategies,
        windows=inputs.windows, policy=inputs.policy,
        fee_bps=session.fee_bps, slippage_bps=session.slippage_bps, bar_seconds=session.bar_seconds,
        origin=session.origin,
    )
    sequential = inputs.policy.paper.sequential
    decided = metrics.sequential_e_value >= sequential.threshold or metrics.sequential_futile_day is not None
    out_of_days = sequential.out_of_days(metrics.market_days)
    graded_out = metrics.grade not in inputs.policy.paper.required_grades
    if (
        sequential.enabled
        and not (decided or out_of_days or graded_out)
        and not inputs.paper.exhausted(trial_key=trial.key)
    ):
        # Undecided, its grade good enough, and more bars will come: the session trades on.
        undecided = (
            f"sequential test undecided after {metrics.market_days} market days "
            f"(e-value {metrics.sequential_e_value:.3g} of {sequential.threshold:g})"
        )
        return PaperPending(session=session, min_days=min_days, undecided=undecided)
    # grade_session checked the origin against the window.
    close = inputs.windows.forward.close[session.origin :]
    return PaperOutcome(
        session=session, metrics=metrics, bars=bars, benchmark=close[: bars.height] / close[0], verdict=verdict
    )


# ------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Stage:
    """One gated stage: the asset it produces, its gate and how a trial is evaluated.

    Attributes
    ----------
    names
        Its asset (produced for each trial) and its gate (an asset check on the asset that
        decides whether the trial goes on), `simulations.stage_names`.
    evaluate
        The stage's pure evaluation of one trial.
    code_version
        Bump it when the stage's evaluation changes: trials evaluated by an older version show
        as stale at this stage (and only this one) in the UI.
    """

    names: StageNames
    evaluate: Callable[[TrialCase, GauntletInputs], StageResult]
    code_version: str

    @property
    def asset(self) -> str:
        return self.names.asset

    @property
    def gate(self) -> GateName:
        if self.names.gate is None:
            raise ValueError(f"stage {self.names.asset} has no gate: only gated stages are pure stages")
        return self.names.gate


#: The gated stages in the order a trial meets them. A new gate is a function and a row here.
STAGES: tuple[Stage, ...] = (
    Stage(names=BACKTEST_NAMES, evaluate=evaluate_backtest, code_version="4"),
    Stage(names=STRESS_NAMES, evaluate=evaluate_stress, code_version="4"),
    Stage(names=PAPER_NAMES, evaluate=evaluate_paper, code_version="3"),
)


def stage_for_gate(gate: str) -> Stage:
    """The row of ``gate``."""
    for stage in STAGES:
        if stage.gate == gate:
            return stage
    raise KeyError(f"no stage has gate {gate!r}; gates: {', '.join(GATE_ORDER)}")


@dataclass(frozen=True)
class TrialEvaluation:
    """What the gauntlet found for one trial, by gate, in table order.

    Attributes
    ----------
    results
        Each evaluated gate's result (an outcome, or a pending paper session).
    stopped_at
        The first gate the trial failed, or ``None``.
    pending
        The trial waits at this gate (a paper session still short of its minimum days).
    """

    results: dict[str, StageResult] = field(default_factory=dict)
    stopped_at: str | None = None
    pending: str | None = None

    @property
    def passed(self) -> bool:
        """Every gate was evaluated and passed."""
        return self.stopped_at is None and self.pending is None and len(self.results) == len(STAGES)

    def verdicts(self) -> dict[str, GateVerdict]:
        """The verdict of every gate that reached one."""
        return {gate: r.verdict for gate, r in self.results.items() if not isinstance(r, PaperPending)}


def evaluate_trial(
    trial: TrialCase, inputs: GauntletInputs, *, every_gate: bool = False, known: Mapping[str, StageResult] | None = None
) -> TrialEvaluation:
    """Take one trial through every gate of :data:`STAGES`, in order.

    Parameters
    ----------
    trial
        The trial, its key and its study context.
    inputs
        The shared inputs.
    every_gate
        Judge every gate even after one failed (the calibration measures each gate on its
        own); by default the trial stops at its first failed gate, as in the pipeline.
    known
        Results already computed for this trial, by gate name (a caller's cache): reused
        instead of evaluated again.

    Raises
    ------
    PipelineError
        An infrastructure error (bad params, unknown strategy, NaN metrics, ...).
    """
    evaluation = TrialEvaluation()
    results = evaluation.results
    for stage in STAGES:
        result = (known or {}).get(stage.gate)
        results[stage.gate] = result if result is not None else stage.evaluate(trial, inputs)
        if isinstance(results[stage.gate], PaperPending):
            return TrialEvaluation(results=results, stopped_at=evaluation.stopped_at, pending=stage.gate)
        if not results[stage.gate].verdict.passed and evaluation.stopped_at is None:
            evaluation = TrialEvaluation(results=results, stopped_at=stage.gate)
            if not every_gate:
                return evaluation
    return evaluation


# ----------------------------------------------------------------------------- a venue for replays
@dataclass
class ReplayVenue:
    """A paper venue that has already released the whole forward window (no database).

    What the paper broker's holdout sessions on the ``replay`` clock do; the gate calibration
    grades its sessions with it.
    """

    windows: MarketWindows
    fee_bps: float
    slippage_bps: float
    strategies: StrategyRegistry
    _bars: dict[str, pl.DataFrame] = field(default_factory=dict)

    @dataclass(frozen=True)
    class Progress:
        days_elapsed: float
        fee_bps: float
        slippage_bps: float
        bar_seconds: float
        origin: int = 0
        mode: PaperMode = "holdout"

    def advance(self, *, trial_key: str, strategy_name: str, params: Mapping[str, Any]) -> ReplayVenue.Progress:
        if trial_key not in self._bars:
            strategy, model = self.strategies.build(name=strategy_name, params=params)
            forward = self.windows.forward
            self._bars[trial_key] = advance_session(
                state=SessionState(),
                history_close=self.windows.history_before(name="forward"),
                forward_close=forward.close,
                forward_timestamps=forward.timestamps,
                n_available=forward.n_bars,
                strategy=strategy,
                params=model,
                fee_bps=self.fee_bps,
                slippage_bps=self.slippage_bps,
            ).bars
        forward = self.windows.forward
        return ReplayVenue.Progress(
            days_elapsed=self._bars[trial_key].height * forward.bar_seconds / SECONDS_PER_DAY,
            fee_bps=self.fee_bps,
            slippage_bps=self.slippage_bps,
            bar_seconds=forward.bar_seconds,
        )

    def bars(self, *, trial_key: str) -> pl.DataFrame:
        return self._bars[trial_key]

    def exhausted(self, *, trial_key: str) -> bool:
        # A replay releases the whole forward window at once.
        return True
