"""`optuna_trial_sensor`: every COMPLETE trial gets exactly one final decision, with nothing manual.

A trial's decision is final when its `deployment_record` is materialized by a run that was not
a dry run (``gauntlet run --dry-run``), when a gate check failed for it (a rejection), or when
its run failed on a deterministic error (it waits for ``gauntlet retry`` after the cause is
fixed). A trial waiting in paper trading (observed pending on `paper_trading_grade`) is in the
`paper_session_sensor`'s hands. Every other COMPLETE trial is *owed* a decision: the cursor
holds the owed trials, and each tick requests those that have no run in flight, so a partial
(``--until``) or dry run never consumes a trial.

Exactly once: the cursor (per study, a watermark plus the ids still running below it; the owed
trials; where the scan of failed runs stopped) is reserved by the daemon together with the run
requests, and an interrupted tick is resumed by the daemon. A reset cursor re-owes every known
trial and rescans every failed run, and trials already decided are not requested again.
RUNNING trials are revisited until they finish; PRUNED and FAILED ones are dropped.

Failed runs are read from the event log's run failures after a stored storage id, never "the
newest N". Dagster's run retries re-run a run that failed outside user code; once they are
exhausted (``dagster/will_retry`` is not true) a failure is classified: a run that died outside
user code, or whose failed steps all raised transient errors (a `TransientError` past the retry
policy's budget), is re-requested with exponential backoff, capped, under a new run key per
attempt (the daemon runs a run key once); any other failure is deterministic and waits for
``gauntlet retry``. Failed paper-grading runs are the `paper_session_sensor`'s.

A bad trial is isolated to itself: a study that cannot be read is logged and skipped (its
cursor kept) while the others proceed, and a COMPLETE trial whose rows are unreadable is logged
and gets a run of its own, which fails with the `StorageCorruptError` (the run-failure alert
names it) and waits for ``gauntlet retry`` like any deterministic error.
"""

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from resources.dagster_private import (
    NOT_FINISHED_STATUSES,
    PARTITION_NAME_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
    AssetCheckExecutionRecordStatus,
    RunFailureReason,
    SerializableErrorInfo,
    UnresolvedAssetJobDefinition,
)
from pipeline_assets.deployment_stage import DEPLOYMENT_RECORD
from pipeline_assets.paper_stage import PAPER
from pipeline_assets.partitions import trials_partitions_def
from pipeline_assets.trial_keys import (
    DEFAULT_SENSOR_INTERVAL_SECONDS,
    MAX_TRIALS_PER_RUN,
    parse_trial_partition_key,
    trial_partition_key,
)
from pipeline_assets.shared_assets import awaited_instrument, missing_instruments
from pipeline_assets.stage_table import GATE_CHECKS, PIPELINE_CODE_VERSION
from pipeline_assets.trial_assets import DRY_RUN_TAG, STUDY_TAG
from resources.market_data import InstrumentsResource
from resources.optuna_study import StudyCursor, StudySourceResource
from sensors.paper_session_sensor import in_flight_partitions
from simulations.errors import PipelineError, TransientError

#: Backoff between re-requests of a trial owed a decision: doubling from the base, capped so
#: a long outage is retried at least hourly once it ends.
RETRY_BACKOFF_SECONDS = 60.0
RETRY_BACKOFF_CAP_SECONDS = 3600.0
#: Run failures read per page of the scan, and partitions per `IN (...)` query.
FAILURE_PAGE = 500
PARTITION_CHUNK = 500
ATTEMPT_TAG = "gauntlet/attempt"
#: The tag `paper_session_sensor` puts on its grading runs (their failures are its own).
PAPER_GRADING_TAGS = {"gauntlet/stage": "paper_grading"}
_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@dataclass
class Owed:
    """A trial owed a final decision: its study, requests made so far, earliest next request."""

    study: str
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class SensorCursor:
    """Everything the sensor carries between ticks.

    ``owed`` is None for a cursor written before owed trials were tracked (or a reset one): the
    tick then owes every known trial, and the decided ones drop out in the same tick.
    ``failures_after`` is the storage id of the last run failure looked at (None: from the start).
    """

    studies: dict[str, StudyCursor] = field(default_factory=dict)
    owed: dict[str, Owed] | None = None
    failures_after: int | None = None


def backoff_seconds(attempts: int) -> float:
    """Delay before request number ``attempts + 1`` of a trial."""
    return min(RETRY_BACKOFF_CAP_SECONDS, RETRY_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0))


def encode_cursor(cursor: SensorCursor) -> str:
    """Serialise the sensor's cursor (stable key order, compact)."""
    data: dict = {"studies": {name: [c.watermark, list(c.pending)] for name, c in sorted(cursor.studies.items())}}
    if cursor.owed is not None:
        data["owed"] = {k: [o.study, o.attempts, o.not_before] for k, o in sorted(cursor.owed.items())}
    if cursor.failures_after is not None:
        data["failures_after"] = cursor.failures_after
    return json.dumps(data, separators=(",", ":"))


def decode_cursor(raw: str | None) -> SensorCursor:
    """Inverse of `encode_cursor`; an empty cursor means "from the beginning".

    A cursor of the earlier format (only the per-study cursors) keeps its studies and owes
    every known trial once.
    """
    if not raw:
        return SensorCursor()
    data = json.loads(raw)
    if "studies" not in data:
        data = {"studies": data}
    owed = data.get("owed")
    return SensorCursor(
        studies={name: StudyCursor(watermark=w, pending=tuple(p)) for name, (w, p) in data["studies"].items()},
        owed=None if owed is None else {k: Owed(study=s, attempts=a, not_before=t) for k, (s, a, t) in owed.items()},
        failures_after=data.get("failures_after"),
    )


def shared_requests(instance: dg.DagsterInstance, shared_job_name: str, missing: Sequence[str]) -> list[dg.RunRequest]:
    """A run of the shared assets per missing instrument, unless one is already on its way."""
    if not missing:
        return []
    in_flight = instance.get_run_records(dg.RunsFilter(job_name=shared_job_name, statuses=NOT_FINISHED_STATUSES))
    flying = {record.dagster_run.tags.get(PARTITION_NAME_TAG) for record in in_flight}
    # No run key: a failed shared run must be retried by the next tick, and run keys are forever.
    return [
        dg.RunRequest(job_name=shared_job_name, partition_key=name, tags={"gauntlet/shared": "missing"})
        for name in missing
        if name not in flying
    ]


def _chunks(keys: Iterable[str], size: int) -> Iterable[list[str]]:
    keys = list(keys)
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


def _partitions_of(run: dg.DagsterRun, position: Mapping[str, int], order: Sequence[str]) -> list[str]:
    """The trials a run was asked to evaluate (its partition, or its partition range)."""
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    start, end = (run.tags.get(t) for t in _RANGE_TAGS)
    if start in position and end in position:
        return list(order[position[start] : position[end] + 1])
    return []


def _transient_names() -> set[str]:
    """Class names of every `TransientError` subclass (walked at call time: resources add some)."""
    names, todo = set(), [TransientError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


def _error_chain(error: SerializableErrorInfo | None) -> Iterable[SerializableErrorInfo]:
    while error is not None:
        yield error
        yield from _error_chain(error.context)
        error = error.cause


def failed_transiently(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether a failed run may succeed when run again, or would only repeat its failure.

    A run that died outside user code (its failure reason is not a step failure) is
    infrastructure: transient. A step failure is transient only when every failed step raised a
    transient `PipelineError` (re-raised past the retry policy's budget, or `fail_for`'s
    ``transient`` metadata); a deterministic `dg.Failure`, or any error of unknown kind, is not:
    repeating a bug in a loop only hides it.
    """
    reason = run.tags.get(RUN_FAILURE_REASON_TAG)
    if reason is not None and reason != RunFailureReason.STEP_FAILURE.value:
        return True
    failures = [
        entry.dagster_event.step_failure_data
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        if entry.dagster_event is not None
    ]
    if not failures:
        # No failure reason and no failed step: the run was cut short outside any step.
        # A step failure without its event is of unknown kind: left to `gauntlet retry`.
        return reason is None
    transient = _transient_names()
    return all(
        # A `dg.Failure` is how `fail_for` and `no_retry_for_deterministic_errors` mark a
        # deterministic error (its metadata names the error types); transient ones stay exceptions.
        failure.user_failure_data is None and any(e.cls_name in transient for e in _error_chain(failure.error))
        for failure in failures
    )


@dataclass
class FailureScan:
    """Trials of newly failed runs: transient ones (with the failure's time), deterministic ones."""

    transient: dict[str, float] = field(default_factory=dict)
    deterministic: set[str] = field(default_factory=set)
    after: int | None = None


def scan_failures(
    instance: dg.DagsterInstance, job_name: str, after: int | None, order: Sequence[str]
) -> FailureScan:
    """Every run failure of ``job_name`` after storage id ``after``, in order: the last one wins."""
    scan = FailureScan(after=after)
    position = {key: i for i, key in enumerate(order)}
    while True:
        page = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=scan.after),
            limit=FAILURE_PAGE,
            ascending=True,
        )
        run_ids = list({r.run_id for r in page.records})
        runs = {r.dagster_run.run_id: r.dagster_run for r in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))} if run_ids else {}
        for record in page.records:
            scan.after = record.storage_id
            run = runs.get(record.run_id)
            if (
                run is None
                or run.job_name != job_name
                or run.tags.get(WILL_RETRY_TAG) == "true"  # Dagster launches the retry itself
                or all(run.tags.get(k) == v for k, v in PAPER_GRADING_TAGS.items())
            ):
                continue
            keys = _partitions_of(run, position, order)
            if failed_transiently(instance, run):
                for key in keys:
                    scan.transient[key] = record.timestamp
                    scan.deterministic.discard(key)
            else:
                scan.deterministic.update(keys)
                for key in keys:
                    scan.transient.pop(key, None)
        if len(page.records) < FAILURE_PAGE:
            return scan


def _latest_per_partition(records: Iterable[dg.EventLogRecord]) -> dict[str, dg.EventLogRecord]:
    latest: dict[str, dg.EventLogRecord] = {}
    for record in records:
        key = record.partition_key
        if key is not None and (key not in latest or record.storage_id > latest[key].storage_id):
            latest[key] = record
    return latest


def _records(fetch, asset_key: dg.AssetKey, partitions: Sequence[str]) -> list[dg.EventLogRecord]:
    """Every event record of ``asset_key`` for ``partitions``, paged."""
    records, cursor = [], None
    while True:
        page = fetch(dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(partitions)), limit=PARTITION_CHUNK, cursor=cursor)
        records += page.records
        if not page.has_more:
            return records
        cursor = page.cursor


def settled(instance: dg.DagsterInstance, keys: set[str]) -> set[str]:
    """Which of ``keys`` have a final decision or wait in paper trading (set-based queries).

    One query per chunk of partitions for each kind of evidence, never one per trial; the
    latest deployment record of a trial is looked up only when it has one.
    """
    if not keys:
        return set()
    done: set[str] = set()
    deployed = sorted(keys & instance.get_materialized_partitions(DEPLOYMENT_RECORD))
    for chunk in _chunks(deployed, PARTITION_CHUNK):
        latest = _latest_per_partition(_records(instance.fetch_materializations, DEPLOYMENT_RECORD, chunk))
        run_ids = list({r.run_id for r in latest.values()})
        dry = {
            r.dagster_run.run_id
            for r in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
            if r.dagster_run.tags.get(DRY_RUN_TAG) == "true"
        }
        done |= {key for key, record in latest.items() if record.run_id not in dry}
    rest = sorted(keys - done)
    for chunk in _chunks(rest, PARTITION_CHUNK):
        for info in instance.event_log_storage.get_asset_check_partition_info(list(GATE_CHECKS), partition_keys=chunk):
            if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.partition_key:
                done.add(info.partition_key)
    for chunk in _chunks(sorted(keys - done), PARTITION_CHUNK):
        # Paper sessions are observed only while pending; the paper sensor grades them.
        done |= {r.partition_key for r in _records(instance.fetch_observations, PAPER.key, chunk) if r.partition_key}
    return done


def batch_run_requests(
    keys: Sequence[str],
    owed: Mapping[str, Owed],
    position: Mapping[str, int],
    max_per_run: int,
    *,
    job_name: str,
    alone: set[str] = frozenset(),
) -> list[dg.RunRequest]:
    """Runs for ``keys``: chunks of at most ``max_per_run`` trials of one study, adjacent in partition order.

    A multi-trial run names its trials as a partition range, so a chunk must be contiguous in
    partition order (trials between them would be re-evaluated). Each request's run key names
    its trials and their attempt numbers: a new attempt is a new key.
    """
    chunks: list[list[str]] = []
    for key in sorted(keys, key=lambda k: position[k]):
        last = chunks[-1] if chunks else None
        if (
            last is not None
            and key not in alone
            and last[-1] not in alone
            and len(last) < max_per_run
            and position[key] == position[last[-1]] + 1
            and owed[key].study == owed[last[-1]].study
        ):
            last.append(key)
        else:
            chunks.append([key])
    requests = []
    for chunk in chunks:
        labels = [f"{k}:{owed[k].attempts + 1}" for k in chunk]
        digest = hashlib.sha256("\n".join(labels).encode()).hexdigest()[:16]
        run_key = f"{chunk[0]}+{len(chunk) - 1}#{digest}@v{PIPELINE_CODE_VERSION}"
        tags = {STUDY_TAG: owed[chunk[0]].study, "gauntlet/trials": str(len(chunk))}
        attempt = max(owed[k].attempts for k in chunk) + 1
        if attempt > 1:
            tags[ATTEMPT_TAG] = str(attempt)
        if len(chunk) == 1:
            requests.append(dg.RunRequest(run_key=run_key, job_name=job_name, partition_key=chunk[0], tags=tags))
        else:
            tags[_RANGE_TAGS[0]], tags[_RANGE_TAGS[1]] = chunk[0], chunk[-1]
            requests.append(dg.RunRequest(run_key=run_key, job_name=job_name, tags=tags))
    return requests


def build_optuna_trial_sensor(
    *,
    job: UnresolvedAssetJobDefinition,
    shared_job: UnresolvedAssetJobDefinition,
    interval_seconds: int = DEFAULT_SENSOR_INTERVAL_SECONDS,
    max_trials_per_run: int = MAX_TRIALS_PER_RUN,
) -> dg.SensorDefinition:
    """The sensor that feeds `job` with new trials every ``interval_seconds``."""

    @dg.sensor(
        name="optuna_trial_sensor",
        jobs=[job, shared_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a `trials` partition for every new COMPLETE Optuna trial and runs the gauntlet on it.",
    )
    def optuna_trial_sensor(
        context: dg.SensorEvaluationContext, optuna_study: StudySourceResource, instruments: InstrumentsResource
    ) -> dg.SensorResult:
        instance = context.instance
        missing = missing_instruments(instance, instruments)
        shared = shared_requests(instance, shared_job.name, missing)
        cursor = decode_cursor(context.cursor)
        order = instance.get_dynamic_partitions(trials_partitions_def.name)
        known = set(order)
        owed = (
            cursor.owed
            if cursor.owed is not None
            else {k: Owed(study=parse_trial_partition_key(k)[0]) for k in order}
        )
        fresh: list[str] = []
        alone: set[str] = set()
        running = 0
        for study in optuna_study.list_studies():
            waiting_for = awaited_instrument(study, instruments, missing)
            if waiting_for is not None:
                # Its trials wait (cursor unchanged) until the data of its instrument exists.
                context.log.info(f"study {study!r} waits for the shared assets of instrument {waiting_for!r}")
                continue
            try:
                batch = optuna_study.read_new_trials(study, cursor.studies.get(study, StudyCursor()))
            except PipelineError as error:
                # One study's trouble is its own: the others go on, and this one is read again
                # from the same cursor next tick.
                context.log.error(f"study {study!r} skipped this tick: {error}")
                continue
            for error in batch.rejected:
                context.log.error(f"trial not admitted: {error}")
            for number, why in batch.unreadable.items():
                key = trial_partition_key(study, number)
                context.log.error(f"trial {key} is unreadable; its own run will fail and wait for `gauntlet retry`: {why}")
                alone.add(key)
            numbers = [s.number for s in batch.completed] + list(batch.unreadable)
            for key in sorted(trial_partition_key(study, n) for n in numbers):
                if key not in known and key not in fresh:
                    fresh.append(key)
                owed.setdefault(key, Owed(study=study))
            cursor.studies[study] = batch.cursor
            running += batch.still_running

        failures = scan_failures(instance, job.name, cursor.failures_after, order)
        for key in failures.deterministic & owed.keys():
            context.log.warning(f"trial {key} failed on a deterministic error: it waits for `gauntlet retry`")
            del owed[key]
        for key, failed_at in failures.transient.items():
            entry = owed.setdefault(key, Owed(study=parse_trial_partition_key(key)[0]))
            entry.not_before = max(entry.not_before, failed_at + backoff_seconds(entry.attempts))
        for key in settled(instance, owed.keys() - set(fresh)):
            del owed[key]

        now = time.time()
        busy = in_flight_partitions(instance, job.name)
        # A trial owed from an earlier tick (a retry, a study whose instrument changed) waits for
        # its instrument's shared data as new trials do, rather than failing in the trial step.
        held = {study for study in {e.study for e in owed.values()} if awaited_instrument(study, instruments, missing)}
        due = [k for k, entry in owed.items() if k not in busy and entry.not_before <= now and entry.study not in held]
        position = {key: i for i, key in enumerate([*order, *fresh])}
        requests = batch_run_requests(due, owed, position, max_trials_per_run, job_name=job.name, alone=alone)
        for key in due:
            owed[key].attempts += 1
            # Until the run shows up in flight (or if it ends without a decision), wait.
            owed[key].not_before = now + backoff_seconds(owed[key].attempts)
        encoded = encode_cursor(SensorCursor(studies=cursor.studies, owed=owed, failures_after=failures.after))
        waiting = len(owed) - len(due)
        if not requests and not shared:
            why = f"waiting for the shared assets of {', '.join(missing)}; " if missing else ""
            return dg.SensorResult(
                skip_reason=f"{why}no new complete trials ({running} still running, {waiting} owed a decision waiting)",
                cursor=encoded,
            )
        context.log.info(
            f"{len(fresh)} new trial(s); {len(due)} trial(s) in {len(requests)} run(s); "
            f"{waiting} owed a decision waiting (run in flight or backoff); {running} still running"
        )
        return dg.SensorResult(
            run_requests=[*shared, *requests],
            dynamic_partitions_requests=[trials_partitions_def.build_add_request(fresh)] if fresh else [],
            cursor=encoded,
        )

    return optuna_trial_sensor
