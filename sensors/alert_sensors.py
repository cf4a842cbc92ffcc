"""Alert sensors: every failed gate and every failed run, once, through the `notifier` resource.

`gate_alert_sensor` polls the execution history of the three gate checks: Dagster OSS has no
sensor type for check results (DESIGN.md). Its cursor holds, per check, a watermark ``after``
(every execution row with an id up to it is settled and its failure, if any, delivered) and
the ids above it already delivered. The watermark cannot simply follow the largest FAILED id:
a run creates the rows of all its trials as PLANNED when it starts and turns them FAILED or
SUCCEEDED later, so rows do not fail in id order, and another run may fail a lower row after
a higher one was alerted. The watermark therefore stops below the oldest row still PLANNED by
an unfinished run. A row still PLANNED after its run finished is settled: the trial stopped
at an earlier gate and this one will never be evaluated.

How rejections are alerted is the notifier's ``gate_alerts``: ``digest`` (the default) sends one
alert per study per tick listing its rejections by gate (a first daemon start over an old study
is one alert, not one per trial), ``each`` one alert per rejection, ``off`` none (the cursor
still advances; run failures are always alerted).

Delivery is at least once: an alert is delivered before the cursor passes it, and a notifier
that raises fails the tick with the cursor unchanged; on the next tick the notifier's ledger
skips what the failed tick had already delivered. The alert key names the execution record,
so a trial re-evaluated and rejected again alerts again, but one record never alerts twice.

`run_failure_alert_sensor` polls the instance's run-failure events the same way, with a cursor
of its own: the storage id of the last failure alerted. It is not Dagster's run-failure sensor,
because Dagster advances a run-status sensor's cursor past a run even when the sensor raised
for it, so an alert whose delivery failed was never retried. Here a delivery error fails the
tick with the cursor unchanged, and the next tick tries again until it is delivered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from resources.dagster_private import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
    EventLogStorage,
    SerializableErrorInfo,
)
from pipeline_assets.trial_keys import parse_trial_partition_key
from pipeline_assets.stage_table import GATE_CHECKS
from simulations.stage_names import FAILED_THRESHOLDS
from pipeline_assets.trial_assets import STUDY_TAG
from resources.notifier import Alert, NotifierResource
from simulations.errors import ConfigurationError, StorageCorruptError

GATE_ALERT_INTERVAL_SECONDS = 30
RUN_ALERT_INTERVAL_SECONDS = 30
#: Bounds one tick's deliveries (a webhook call each) well inside the sensor evaluation timeout;
#: a backlog (alerting switched on for an old instance) drains over the following ticks.
MAX_ALERTS_PER_TICK = 50
#: Rejections one tick folds into its digests (one alert per study), and those a digest lists
#: one by one in its details (the counts cover every one).
MAX_REJECTIONS_PER_DIGEST_TICK = 2_000
MAX_REJECTIONS_LISTED = 200

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

_FAILED = AssetCheckExecutionRecordStatus.FAILED
_PLANNED = AssetCheckExecutionRecordStatus.PLANNED
# History pages run newest first and grow: a quiet tick reads a few rows, a backlog few pages.
_FIRST_PAGE = 16
_MAX_PAGE = 1024


class CheckCursor(BaseModel):
    """Where `gate_alert_sensor` stands on one gate check."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, description="Rows with an id up to this are settled and alerted.")
    delivered: list[int] = Field(default_factory=list, description="Ids above `after` already alerted.")


_CURSOR = TypeAdapter(dict[str, CheckCursor])


def read_gate_cursor(raw: str | None) -> dict[str, CheckCursor]:
    """The cursor per check (keyed ``asset:check``); empty when the sensor never ran."""
    if not raw:
        return {}
    try:
        return _CURSOR.validate_json(raw)
    except ValidationError as exc:
        raise ConfigurationError(
            f"gate_alert_sensor cursor {raw[:80]!r} is invalid ({exc.errors()[0]['msg']}); reset it in the UI: "
            "the notifier's ledger keeps alerts already delivered from going out again",
            stage="gate_alert_sensor",
        ) from exc


def _open_rows(storage: EventLogStorage, key: dg.AssetCheckKey, after: int) -> list[AssetCheckExecutionRecord]:
    """FAILED and PLANNED executions of ``key`` with an id above ``after``, oldest first."""
    rows: list[AssetCheckExecutionRecord] = []
    cursor: int | None = None
    limit = _FIRST_PAGE
    while True:
        page = storage.get_asset_check_execution_history(key, limit=limit, cursor=cursor, status={_FAILED, _PLANNED})
        newer = [r for r in page if r.id > after]
        rows.extend(newer)
        if len(page) < limit or len(newer) < len(page):
            return rows[::-1]
        cursor = page[-1].id
        limit = min(limit * 2, _MAX_PAGE)


def _finished_runs(instance: dg.DagsterInstance, run_ids: set[str]) -> set[str]:
    if not run_ids:
        return set()
    runs = {run.run_id: run for run in instance.get_runs(filters=dg.RunsFilter(run_ids=sorted(run_ids)))}
    # A deleted run will never write its results: as settled as a finished one.
    return {run_id for run_id in run_ids if run_id not in runs or runs[run_id].is_finished}


@dataclass
class _Scan:
    """One check's rows above its watermark, as this tick found them."""

    key: dg.AssetCheckKey
    state: CheckCursor
    due: list[AssetCheckExecutionRecord]
    oldest_pending: int | None
    newest: int

    def advanced(self, delivered_now: set[int]) -> CheckCursor:
        """The cursor after delivering ``delivered_now``: below anything pending or undelivered."""
        barriers = [r.id for r in self.due if r.id not in delivered_now]
        if self.oldest_pending is not None:
            barriers.append(self.oldest_pending)
        after = min(barriers) - 1 if barriers else self.newest
        delivered = sorted(i for i in {*self.state.delivered, *delivered_now} if i > after)
        return CheckCursor(after=after, delivered=delivered)


def _scan(instance: dg.DagsterInstance, key: dg.AssetCheckKey, state: CheckCursor) -> _Scan:
    storage = instance.event_log_storage
    rows = _open_rows(storage, key, state.after)
    finished = _finished_runs(instance, {r.run_id for r in rows if r.status == _PLANNED})
    if finished:
        # Read again: a run found finished has written all its results by now, so a row of it
        # still PLANNED in this read is settled; in the first read it might have failed since.
        rows = _open_rows(storage, key, state.after)
    pending = [r.id for r in rows if r.status == _PLANNED and r.run_id not in finished]
    delivered = set(state.delivered)
    return _Scan(
        key=key,
        state=state,
        due=[r for r in rows if r.status == _FAILED and r.id not in delivered],
        oldest_pending=min(pending, default=None),
        newest=max((r.id for r in rows), default=state.after),
    )


def _study_of(trial: str | None) -> str | None:
    if trial is None:
        return None
    try:
        prefix, _number = parse_trial_partition_key(trial)
    except ValueError:
        # Not a trial key (a check evaluated outside the trials partitions): no study to name.
        prefix = None
    return prefix


def _metadata_json(value: dg.MetadataValue) -> JsonValue:
    if isinstance(value, dg.TableMetadataValue):
        return [dict(row.data) for row in value.records]
    return value.value if isinstance(value.value, (str, int, float, bool, list, dict)) else str(value.value)


def gate_alert(record: AssetCheckExecutionRecord) -> Alert:
    """The alert for one FAILED gate execution: trial, gate, the one-line reason, thresholds."""
    evaluation = record.evaluation
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or record.event is None:
        raise StorageCorruptError(
            f"execution {record.id} of gate {record.key.to_user_string()} is FAILED but holds no evaluation",
            trial=record.partition,
            stage="gate_alert_sensor",
        )
    metadata = evaluation.metadata
    reason = evaluation.description or (str(metadata["reason"].value) if "reason" in metadata else "")
    details: dict[str, JsonValue] = {
        "asset": record.key.asset_key.to_user_string(),
        "check": record.key.name,
        "record_id": record.id,
        **{name: _metadata_json(metadata[name]) for name in ("verdict", "phase", "grade") if name in metadata},
    }
    if FAILED_THRESHOLDS in metadata:  # the numbers themselves
        details["failed_thresholds"] = _metadata_json(metadata[FAILED_THRESHOLDS])
    elif "thresholds" in metadata:  # evaluations recorded before the numbers were
        rows = _metadata_json(metadata["thresholds"])
        details["failed_thresholds"] = [r for r in rows if isinstance(r, dict) and r.get("verdict") == "FAIL"]
    return Alert(
        key=f"gate:{record.key.name}:{record.partition or '-'}:{record.id}",
        kind="gate_failed",
        trial=record.partition,
        study=_study_of(record.partition),
        stage=record.key.name,
        reason=reason or f"{record.key.name} failed",
        run_id=record.run_id or None,
        at=dt.datetime.fromtimestamp(record.event.timestamp, dt.UTC),
        details=details,
    )


@dg.sensor(
    name="gate_alert_sensor",
    minimum_interval_seconds=GATE_ALERT_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts through the notifier for failed gate checks (a digest per study, or one each), "
    "with the trials and the reasons.",
)
def gate_alert_sensor(context: dg.SensorEvaluationContext, notifier: NotifierResource) -> dg.SensorResult:
    cursor = read_gate_cursor(context.cursor)
    scans = [_scan(context.instance, key, cursor.get(key.to_user_string(), CheckCursor())) for key in GATE_CHECKS]
    # Oldest evaluation first across the three gates, so a capped tick leaves the newest.
    queue = sorted(
        ((scan, record.id, gate_alert(record)) for scan in scans for record in scan.due),
        key=lambda item: (item[2].at, item[1]),
    )
    delivered_now: dict[dg.AssetCheckKey, set[int]] = {scan.key: set() for scan in scans}
    mode = notifier.gate_alerts
    cap = MAX_ALERTS_PER_TICK if mode == "each" else MAX_REJECTIONS_PER_DIGEST_TICK
    taken = queue[:cap]
    if mode == "each":
        outgoing = [alert for _, _, alert in taken]
    elif mode == "digest":
        by_study: dict[str | None, list[Alert]] = {}
        for _, _, alert in taken:
            by_study.setdefault(alert.study, []).append(alert)
        outgoing = [gate_digest(study, alerts) for study, alerts in by_study.items()]
    else:
        outgoing = []
    # A delivery error propagates: the tick fails and this cursor is never returned.
    sent = [alert.key for alert in outgoing if notifier.notify(alert)]
    for scan, record_id, _ in taken:
        delivered_now[scan.key].add(record_id)
    new_cursor = {scan.key.to_user_string(): scan.advanced(delivered_now[scan.key]) for scan in scans}
    left = max(len(queue) - cap, 0)
    if sent:
        context.log.info(f"delivered {len(sent)} gate alert(s) ({mode}): {', '.join(sent)}")
    if not queue:
        summary = "no new failed gate"
    elif mode == "off":
        summary = f"{len(taken)} rejection(s), not alerted (notifier.gate_alerts: off)"
    else:
        summary = f"{len(taken)} rejection(s) in {len(sent)} gate alert(s) delivered ({mode})"
    if left:
        summary += f"; {left} more next tick"
    return dg.SensorResult(skip_reason=summary, cursor=_CURSOR.dump_json(new_cursor).decode())


def gate_digest(study: str | None, alerts: Sequence[Alert]) -> Alert:
    """One alert for a study's rejections: counts by gate, the first few reasons, every one in details.

    Its key names the evaluations it covers, so a digest re-sent after a failed tick is
    deduplicated by the ledger when it covers the same ones.
    """
    by_gate: dict[str, int] = {}
    for alert in alerts:
        by_gate[alert.stage] = by_gate.get(alert.stage, 0) + 1
    counts = ", ".join(f"{gate} {n}" for gate, n in by_gate.items())
    examples = "; ".join(f"{alert.trial}: {alert.stage}: {alert.reason}" for alert in alerts[:3])
    covered = hashlib.sha256("\n".join(sorted(alert.key for alert in alerts)).encode()).hexdigest()[:16]
    listed = [
        {"trial": a.trial, "gate": a.stage, "reason": a.reason, "run_id": a.run_id, **a.details} for a in alerts
    ]
    return Alert(
        key=f"gates:{study or '-'}:{covered}",
        kind="gates_failed",
        trial=alerts[0].trial if len(alerts) == 1 else None,
        study=study,
        stage="gates",
        reason=f"{len(alerts)} trial(s) rejected ({counts}): {examples}" + (" …" if len(alerts) > 3 else ""),
        run_id=alerts[0].run_id if len({a.run_id for a in alerts}) == 1 else None,
        at=max(alert.at for alert in alerts),
        details={
            "rejections": listed[:MAX_REJECTIONS_LISTED],
            "rejected": len(alerts),
            "by_gate": by_gate,
            **({"not_listed": len(alerts) - MAX_REJECTIONS_LISTED} if len(alerts) > MAX_REJECTIONS_LISTED else {}),
        },
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_text(error: SerializableErrorInfo | None) -> str:
    """An error and its causes on one line (a retried step's own message is only "Exceeded max_retries")."""
    parts: list[str] = []
    while error is not None:
        parts.append(_one_line(error.message))
        error = error.cause
    return " <- caused by: ".join(parts)


def _run_trials(tags: Mapping[str, str]) -> tuple[list[str], list[str] | None]:
    """(the run's single partition, if any; its partition range, if any) from its tags."""
    if PARTITION_TAG in tags:
        return [tags[PARTITION_TAG]], None
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return [], [tags[RANGE_START_TAG], tags[RANGE_END_TAG]]
    return [], None


def run_failure_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, failure_event: dg.DagsterEvent) -> Alert:
    """The alert for a failed run: its error (per failed step) and the trials it concerns."""
    reasons: list[str] = []
    steps: list[str] = []
    failed_trials: list[str] = []
    step_failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    for event in (entry.dagster_event for entry in step_failures if entry.dagster_event is not None):
        steps.append(event.step_key or "run")
        data = event.step_failure_data
        user = data.user_failure_data if data else None
        # A dg.Failure's description is the clean message; other errors need their cause chain.
        if user and user.description:
            reasons.append(_one_line(user.description))
        else:
            reasons.append(_error_text(data.error if data else None))
        if user and "failed_trials" in user.metadata:
            named = user.metadata["failed_trials"].value
            failed_trials.extend(t for t in (named if isinstance(named, list) else []) if isinstance(t, str))
    partition, partition_range = _run_trials(run.tags)
    trials: Sequence[str] = failed_trials or partition
    record = instance.get_run_record_by_id(run.run_id)
    ended = record.end_time if record and record.end_time else None
    details: dict[str, JsonValue] = {
        "job": run.job_name,
        "failed_steps": list(steps),
        "trials": list(trials),
        "failure_reason": run.tags.get("dagster/failure_reason"),
    }
    if partition_range:
        details["partition_range"] = list(partition_range)
    first_trial = trials[0] if trials else (partition_range[0] if partition_range else None)
    return Alert(
        key=f"run:{run.run_id}",
        kind="run_failed",
        trial=trials[0] if len(trials) == 1 else None,
        study=run.tags.get(STUDY_TAG) or _study_of(first_trial),
        stage=", ".join(steps) or "run",
        reason="; ".join(r for r in reasons if r) or failure_event.message or f"run {run.run_id} failed",
        run_id=run.run_id,
        at=dt.datetime.fromtimestamp(ended, dt.UTC) if ended else dt.datetime.now(dt.UTC),
        details=details,
    )


class RunAlertCursor(BaseModel):
    """Where `run_failure_alert_sensor` stands: every run failure up to this storage id is alerted."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0)


def read_run_cursor(raw: str | None) -> RunAlertCursor:
    """The cursor; from the first failure when the sensor never ran (the ledger drops repeats)."""
    if not raw:
        return RunAlertCursor()
    try:
        return RunAlertCursor.model_validate_json(raw)
    except ValidationError as exc:
        raise ConfigurationError(
            f"run_failure_alert_sensor cursor {raw[:80]!r} is invalid ({exc.errors()[0]['msg']}); reset it in the UI: "
            "the notifier's ledger keeps alerts already delivered from going out again",
            stage="run_failure_alert_sensor",
        ) from exc


@dg.sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=RUN_ALERT_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts through the notifier for every failed run, with the error and its trials, until delivered.",
)
def run_failure_alert_sensor(context: dg.SensorEvaluationContext, notifier: NotifierResource) -> dg.SensorResult:
    cursor = read_run_cursor(context.cursor)
    failures = context.instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=cursor.after),
        limit=MAX_ALERTS_PER_TICK,
        ascending=True,
    )
    after, sent = cursor.after, []
    for record in failures.records:
        run = context.instance.get_run_by_id(record.run_id)
        event = record.event_log_entry.dagster_event
        # A run deleted since it failed has nothing left to tell.
        if run is not None and event is not None:
            alert = run_failure_alert(context.instance, run, event)
            # A delivery error propagates: the tick fails and this cursor is never returned.
            if notifier.notify(alert):
                sent.append(alert.key)
        after = record.storage_id
    if sent:
        context.log.info(f"delivered {len(sent)} run alert(s): {', '.join(sent)}")
    summary = f"{len(sent)} run alert(s) delivered" if failures.records else "no new failed run"
    if failures.has_more:
        summary += "; more next tick"
    return dg.SensorResult(skip_reason=summary, cursor=RunAlertCursor(after=after).model_dump_json())
