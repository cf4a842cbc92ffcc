"""Where every trial stands: the read model behind ``gauntlet status`` and ``gauntlet retry``.

Everything is read from the two sources of truth (DESIGN.md): the Dagster instance and the
deployment registry, plus the paper sessions still trading. No Dagster and no numerics are
imported: the instance's tables are read as plain SQL (`resources.dagster_storage`, each read
checked against the Dagster API it stands in for), the registry and the sessions through their
SQL stores, so a cold ``gauntlet status`` answers without loading the pipeline. The number of
queries does not grow with the number of trials; the ones that return a row per trial are
single set-based queries:

* partitions: the ``trials`` dynamic partitions (their order is the partition order that run
  ranges refer to);
* stage: the materialized partitions of every trial asset, in one query;
* gate verdicts: one query for the three gates' latest execution per partition (the status
  and run `get_asset_check_partition_info` reports). ``PLANNED`` is the latest record when a
  run planned the check but never evaluated it (the trial stopped at an earlier gate or
  failed) or when that run is still in flight;
* last failure: the ``RUN_FAILURE`` events of the most recent ``failed_runs`` runs of any job
  (``gauntlet status --failed-runs``, bounded so the cost does not grow with the history),
  mapped to trials by the run's partition tags and the ``[trial <key>, stage <stage>]`` lines
  `PipelineError` puts in every message. A failure counts until a later materialization of
  the trial supersedes it (storage ids, one query over the failed trials only);
* rejections (on request): per gate, its ``FAILED`` executions newest first, in pages, until
  each rejected trial has its latest one: the reason ("sharpe 0.12 < min 0.3 (short by 0.18)")
  and every threshold it failed, with value and margin;
* in flight: unfinished runs covering trial partitions, and requested backfills (decoded by
  Dagster, imported only while one is requested);
* paper sessions: the store's ``sessions()``; decisions: the registry's log, latest per trial.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from resources.dagster_storage import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    DagsterTables,
    asset_key_string,
)
from pipeline_assets.trial_keys import TRIALS_PARTITIONS_NAME, parse_trial_partition_key
from resources.paper_sessions import PaperSessionStore, SessionInfo
from resources.registry_store import ControlState, DecisionRecord, SqlRegistry
from simulations.gates import PaperGatePolicy
from simulations.stage_names import FAILED_THRESHOLDS, TRIAL_STAGE_NAMES, trial_stage_labels

#: Where a trial can stand, in pipeline order (from the stage table); it stands at the
#: furthest stage it has reached.
Stage = str
STAGES: tuple[str, ...] = trial_stage_labels()
Verdict = Literal["passed", "failed", "not_evaluated", "running"]
#: The trial assets and the gate checks, as the instance's tables name them.
TRIAL_ASSETS: tuple[str, ...] = tuple(asset_key_string([names.asset]) for names in TRIAL_STAGE_NAMES)
GATES: tuple[tuple[str, str], ...] = tuple(
    (asset_key_string([names.asset]), names.gate) for names in TRIAL_STAGE_NAMES if names.gate is not None
)

#: Longest error message kept per trial: the whole cause of any typed error (its field and
#: value included); the UI has the traceback.
MAX_ERROR_CHARS = 4_000
#: Failed gate executions read per query when explaining rejections.
_EXECUTIONS_PER_PAGE = 1_000

#: Verdicts of the check execution statuses as stored (`AssetCheckExecutionRecordStatus` values).
_CHECK_VERDICTS: dict[str, Verdict] = {"SUCCEEDED": "passed", "FAILED": "failed"}
# `PipelineError` renders "[trial <key>, stage <stage>] <cause>"; without a trial, "[stage <stage>] <cause>".
_TRIAL_ERROR = re.compile(r"\[trial (?P<trial>[^,\]\s]+), stage (?P<stage>[^\]]+)\] (?P<cause>[^\n]*)")
_STAGE_ERROR = re.compile(r"\[stage (?P<stage>[^\]]+)\] (?P<cause>[^\n]*)")
_EXCEPTION_PATH = re.compile(r"^(?:[A-Za-z_][\w]*\.)+(?P<name>[A-Za-z_]\w*): ")


@dataclass(frozen=True, slots=True)
class TrialFailure:
    """The most recent failed run of a trial that nothing has superseded since."""

    run_id: str
    failed_at: dt.datetime
    stage: str | None
    message: str
    #: Storage id of the run's failure event: a later materialization of the trial supersedes it.
    storage_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "failed_at": self.failed_at.isoformat(),
            "stage": self.stage,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """The gate that rejected a trial: its reason and each threshold failed (value, rule, margin)."""

    gate: str
    reason: str
    failed_checks: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "reason": self.reason, "failed_checks": list(self.failed_checks)}


@dataclass(frozen=True, slots=True)
class TrialStatus:
    """One trial partition: its stage, gate verdicts, what it waits for, its last error and decision."""

    partition_key: str
    study: str | None
    number: int | None
    stage: Stage
    gates: dict[str, Verdict]
    pending: tuple[str, ...]
    last_error: TrialFailure | None
    decision: DecisionRecord | None
    in_flight: bool
    rejection: Rejection | None = None
    #: Its paper session, if gate 2 passed it.
    paper: SessionInfo | None = None

    @property
    def errored(self) -> bool:
        """Its last run failed (an infrastructure error, for `gauntlet retry`)."""
        return self.last_error is not None

    @property
    def rejected(self) -> bool:
        """A gate rejected it."""
        return "failed" in self.gates.values()

    def to_json(self) -> dict[str, Any]:
        return {
            "partition_key": self.partition_key,
            "study": self.study,
            "number": self.number,
            "stage": self.stage,
            "gates": self.gates,
            "pending": list(self.pending),
            "in_flight": self.in_flight,
            "last_error": self.last_error.to_json() if self.last_error else None,
            "rejection": self.rejection.to_json() if self.rejection else None,
            "paper": self._paper_json(),
            "decision": (
                {
                    "id": self.decision.id,
                    "decision": self.decision.decision,
                    "paper_mode": self.decision.paper_mode,
                    "reason": self.decision.reason,
                    "decided_by": self.decision.decided_by,
                    "decided_at": self.decision.decided_at.isoformat(),
                }
                if self.decision
                else None
            ),
        }

    def _paper_json(self) -> dict[str, Any] | None:
        session = self.paper
        if session is None:
            return None
        if session.status == "stopped":
            state = "stopped"
        elif self.stage in ("graded", "decided"):
            state = "graded"
        else:
            state = "trading" if session.bars_processed else "awaiting_bars"
        return {
            "mode": session.mode,
            **session.bar_times(),
            "market_days": session.market_days,
            "bars": session.bars_processed,
            "state": state,
        }


@dataclass(frozen=True)
class StatusReport:
    """Every trial (or a filtered selection), the emergency stop, and how much history was read."""

    trials: list[TrialStatus]
    emergency_stop: ControlState
    failed_runs_read: int
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def select(
        self,
        *,
        study_prefix: str | None = None,
        stages: Iterable[str] = (),
        failed: bool = False,
        errored: bool = False,
    ) -> StatusReport:
        """The trials of one study (by key prefix), in the given stages; ``failed``: rejected by a
        gate or errored; ``errored``: whose last run failed. All filters AND."""
        wanted = set(stages)
        trials = [
            t
            for t in self.trials
            if (study_prefix is None or t.study == study_prefix)
            and (not wanted or t.stage in wanted)
            and (not failed or t.rejected or t.errored)
            and (not errored or t.errored)
        ]
        return replace(self, trials=trials)

    def summary(self) -> dict[str, Any]:
        by_stage = {stage: 0 for stage in STAGES}
        for trial in self.trials:
            by_stage[trial.stage] += 1
        return {
            "trials": len(self.trials),
            "by_stage": by_stage,
            "rejected": sum(t.rejected for t in self.trials),
            "errored": sum(t.errored for t in self.trials),
            "in_flight": sum(t.in_flight for t in self.trials),
            "failed_runs_read": self.failed_runs_read,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(),
            "emergency_stop": self.emergency_stop.model_dump(mode="json"),
            "summary": self.summary(),
            "trials": [t.to_json() for t in self.trials],
        }


def run_partitions(tags: Mapping[str, str], keys: Sequence[str], position: Mapping[str, int]) -> list[str]:
    """The trial partitions a run covers: its partition tag, or its range over the partition order."""
    single = tags.get(PARTITION_NAME_TAG)
    if single is not None:
        return [single] if single in position else []
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start in position and end in position:
        return list(keys[position[start] : position[end] + 1])
    return []


def _short(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return _EXCEPTION_PATH.sub(r"\g<name>: ", line)[:MAX_ERROR_CHARS]


def attribute_failure(text: str, covered: Sequence[str]) -> dict[str, tuple[str | None, str]]:
    """Per trial of a failed run: (stage, cause).

    A batch run fails naming each bad trial on its own line (`fail_for`), so only those trials
    are attributed; an error that names no trial of the run (market data missing, the run
    worker died) is every covered trial's.
    """
    covered_set = set(covered)
    named = {
        match["trial"]: (match["stage"], match["cause"].strip()[:MAX_ERROR_CHARS])
        for match in _TRIAL_ERROR.finditer(text)
        if match["trial"] in covered_set
    }
    if named:
        return named
    stage_match = _STAGE_ERROR.search(text)
    stage = stage_match["stage"] if stage_match else None
    cause = stage_match["cause"].strip()[:MAX_ERROR_CHARS] if stage_match else _short(text)
    return {key: (stage, cause) for key in covered}


def last_failures(
    tables: DagsterTables, keys: Sequence[str], position: Mapping[str, int], *, failed_runs: int
) -> tuple[dict[str, TrialFailure], int]:
    """Each trial's most recent failure among the last ``failed_runs`` run failures, unless superseded.

    Returns the failures by partition key and how many run failures were read.
    """
    # Any job: trial_job runs from the sensors, and the asset-job runs of backfills and of the
    # UI's Materialize; a run covers trials if its partition tags name `trials` partitions.
    records = tables.run_failures(limit=failed_runs)
    failures: dict[str, TrialFailure] = {}
    for record in records:  # newest first: a trial keeps its most recent failure
        covered = run_partitions(record.tags, keys, position)
        failed_at = dt.datetime.fromtimestamp(record.timestamp, dt.UTC)
        for key, (stage, cause) in attribute_failure(record.message, covered).items():
            failures.setdefault(
                key,
                TrialFailure(
                    run_id=record.run_id, failed_at=failed_at, stage=stage, message=cause, storage_id=record.storage_id
                ),
            )
    if failures:
        latest = tables.latest_materialization_ids(TRIAL_ASSETS, partitions=set(failures))
        failures = {key: f for key, f in failures.items() if latest.get(key, 0) < f.storage_id}
    return failures, len(records)


def _in_flight(
    tables: DagsterTables, keys: Sequence[str], position: Mapping[str, int]
) -> tuple[dict[str, list[str]], set[str]]:
    """Pending reasons of trials with an unfinished run or a requested backfill, and those run ids."""
    reasons: dict[str, list[str]] = defaultdict(list)
    run_ids: set[str] = set()
    # Every unfinished run (queued ones included), whatever its job: the queue is short, and
    # backfill and UI runs of the trial assets run as the asset job, not as trial_job.
    for run in tables.unfinished_runs():
        run_ids.add(run.run_id)
        for key in run_partitions(run.tags, keys, position):
            reasons[key].append(f"run {run.run_id[:8]} {run.status.lower()}")
    requested = tables.requested_backfills()
    if requested:
        # Only Dagster can decode a backfill's partitions; a backfill is requested rarely and briefly.
        from resources.dagster_private import backfill_partitions_waiting

        for backfill_id, body in requested:
            for key in backfill_partitions_waiting(body, asset_keys=TRIAL_ASSETS):
                if key in position:
                    reasons[key].append(f"backfill {backfill_id} requested")
    return reasons, run_ids


def _verdicts(tables: DagsterTables, running_runs: set[str]) -> dict[str, dict[str, Verdict]]:
    """Per gate, per partition: the latest verdict (one query for every gate and partition).

    A partition the gate never planned is absent (read as ``not_evaluated``).
    """
    verdicts: dict[str, dict[str, Verdict]] = {gate: {} for _, gate in GATES}
    for execution in tables.latest_check_executions(GATES):
        verdict = _CHECK_VERDICTS.get(execution.status)
        if verdict is None:  # PLANNED: in flight, or the trial stopped before this gate
            verdict = "running" if execution.run_id in running_runs else "not_evaluated"
        verdicts[execution.check_name][execution.partition] = verdict
    return verdicts


def _rejections(tables: DagsterTables, verdicts: Mapping[str, Mapping[str, Verdict]]) -> dict[str, Rejection]:
    """Why each rejected trial was rejected, by the first gate in pipeline order that did.

    Per gate, the failed executions are read newest first in pages of ``_EXECUTIONS_PER_PAGE``
    until every partition whose latest verdict is ``failed`` has its latest failed evaluation.
    """
    found: dict[str, Rejection] = {}
    for check in GATES:
        gate = check[1]
        wanted = {key for key, verdict in verdicts[gate].items() if verdict == "failed" and key not in found}
        before_id = None
        while wanted:
            page = tables.failed_check_evaluations(
                check,
                metadata_key=FAILED_THRESHOLDS,
                limit=_EXECUTIONS_PER_PAGE,
                before_id=before_id,
            )
            for evaluation in page:
                if evaluation.partition not in wanted:
                    continue
                wanted.discard(evaluation.partition)
                failed = evaluation.metadata_data
                found[evaluation.partition] = Rejection(
                    gate=gate,
                    reason=evaluation.description or "rejected",
                    failed_checks=tuple(failed) if isinstance(failed, list) else (),
                )
            if len(page) < _EXECUTIONS_PER_PAGE:
                break
            before_id = page[-1].storage_id
    return found


def _stage(key: str, materialized: Mapping[str, set[str]], sessions: Mapping[str, SessionInfo]) -> Stage:
    """The furthest stage materialized, or the stage after it that waits (a paper session)."""
    for index in range(len(TRIAL_STAGE_NAMES) - 1, -1, -1):
        names = TRIAL_STAGE_NAMES[index]
        if key in materialized[TRIAL_ASSETS[index]]:
            following = TRIAL_STAGE_NAMES[index + 1] if index + 1 < len(TRIAL_STAGE_NAMES) else None
            if following is not None and following.waiting and key in sessions:
                return following.waiting
            return names.reached
    return "detected"


def _paper_reason(session: SessionInfo, paper: PaperGatePolicy) -> str:
    if session.status == "stopped":
        return "paper session stopped"
    if session.mode == "forward" and not session.bars_processed:
        after = session.origin_bar.isoformat() if session.origin_bar else "the newest bar"
        return f"paper trading forward: waiting for bars after {after}"
    if session.days_elapsed < paper.min_days:
        return f"paper trading {session.days_elapsed:.1f} of {paper.min_days:g} days"
    if paper.sequential.enabled:
        end = "the window ends" if session.mode == "holdout" else "its grade or max_days stops it"
        return f"paper trading {session.days_elapsed:.1f} days, until the sequential test decides or {end}"
    return f"paper trading {session.days_elapsed:.1f} days, waiting for grading"


def read_status(
    tables: DagsterTables,
    *,
    registry: SqlRegistry,
    paper_sessions: PaperSessionStore,
    paper: PaperGatePolicy,
    failed_runs: int,
    rejection_reasons: bool = False,
) -> StatusReport:
    """Every trial partition's status, sorted by study and trial number (see the module
    docstring for what is read and how); with ``rejection_reasons``, why each gate rejected."""
    keys = tables.dynamic_partitions(TRIALS_PARTITIONS_NAME)
    position = {key: i for i, key in enumerate(keys)}
    materialized = tables.materialized_partitions(TRIAL_ASSETS)
    waiting, running_runs = _in_flight(tables, keys, position)
    verdicts = _verdicts(tables, running_runs)
    rejections = _rejections(tables, verdicts) if rejection_reasons else {}
    failures, n_failed_runs = last_failures(tables, keys, position, failed_runs=failed_runs)
    sessions = {s.trial_key: s for s in paper_sessions.sessions()}
    decisions: dict[str, DecisionRecord] = {}
    for record in registry.decisions():  # newest first: the first one seen is the latest
        decisions.setdefault(record.partition_key, record)

    trials = []
    for key in keys:
        try:
            study, number = parse_trial_partition_key(key)
        except ValueError:
            # Partitions added by hand in the UI need not follow the key format; show them as they are.
            study, number = None, None
        stage = _stage(key, materialized, sessions)
        pending = list(waiting.get(key, ()))
        if stage == "paper_pending":
            pending.append(_paper_reason(sessions[key], paper))
        if stage == "detected" and not pending and key not in failures:
            pending.append("no run in flight")
        trials.append(
            TrialStatus(
                partition_key=key,
                study=study,
                number=number,
                stage=stage,
                gates={gate: by_key.get(key, "not_evaluated") for gate, by_key in verdicts.items()},
                pending=tuple(pending),
                last_error=failures.get(key),
                decision=decisions.get(key),
                in_flight=key in waiting,
                rejection=rejections.get(key),
                paper=sessions.get(key),
            )
        )
    # Keys made by hand in the UI (no study, no number) last, in partition order.
    trials.sort(key=lambda t: (t.study is None, t.study or "", position[t.partition_key] if t.number is None else t.number))
    return StatusReport(trials=trials, emergency_stop=registry.emergency_stop(), failed_runs_read=n_failed_runs)
