"""`optuna_trial_sensor`: every new COMPLETE trial becomes a `trials` partition and a run.

Exactly once: the cursor (per study, a watermark plus the ids still running below it) is
reserved by the daemon together with the run requests, and an interrupted tick is resumed by
the daemon, so a crash between the two neither loses nor repeats a trial. Trials that are
already materialized are skipped as well, so resetting the cursor never re-runs them.
RUNNING trials are revisited until they finish; PRUNED and FAILED ones are dropped.

Nothing is lost when run workers die: Dagster's run retries re-run a run that failed outside
user code, and once those are exhausted (``dagster/will_retry`` is false) this sensor requests
the run's trials once more, keyed by the failed run's id so each such failure is recovered
once. A run that failed inside user code (a deterministic error) is left to ``gauntlet retry``
after its cause is fixed.
"""

import hashlib
import json
from collections.abc import Sequence

import dagster as dg

from pipeline_assets.dagster_private import (
    NOT_FINISHED_STATUSES,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
    RunFailureReason,
    UnresolvedAssetJobDefinition,
)
from pipeline_assets.partitions import trial_partition_key, trials_partitions_def
from pipeline_assets.shared_assets import SHARED_ASSET_KEYS
from pipeline_assets.optuna_trial_stage import OPTUNA_TRIAL
from pipeline_assets.stage_table import PIPELINE_CODE_VERSION
from pipeline_assets.trial_assets import MAX_TRIALS_PER_RUN, STUDY_TAG
from resources.optuna_study import StudyCursor, StudySourceResource

DEFAULT_INTERVAL_SECONDS = 15
#: Most recent failed runs looked at per tick for recovery.
RECOVERY_SCAN_RUNS = 100
_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def encode_cursor(cursors: dict[str, StudyCursor]) -> str:
    """Serialise per-study cursors (stable key order, compact)."""
    return json.dumps(
        {name: [c.watermark, list(c.pending)] for name, c in sorted(cursors.items())},
        separators=(",", ":"),
    )


def decode_cursor(raw: str | None) -> dict[str, StudyCursor]:
    """Inverse of `encode_cursor`; an empty cursor means "from the beginning"."""
    if not raw:
        return {}
    data = json.loads(raw)
    return {name: StudyCursor(watermark=w, pending=tuple(p)) for name, (w, p) in data.items()}


def _shared_missing(instance: dg.DagsterInstance) -> bool:
    return any(instance.get_latest_materialization_event(k) is None for k in SHARED_ASSET_KEYS)


def _shared_request(instance: dg.DagsterInstance, shared_job_name: str) -> dg.RunRequest | None:
    """A run of the shared assets if one is missing and none is already on its way."""
    missing = [k for k in SHARED_ASSET_KEYS if instance.get_latest_materialization_event(k) is None]
    if not missing:
        return None
    in_flight = instance.get_run_records(
        dg.RunsFilter(job_name=shared_job_name, statuses=NOT_FINISHED_STATUSES), limit=1
    )
    if in_flight:
        return None
    # No run key: a failed shared run must be retried by the next tick, and run keys are forever.
    return dg.RunRequest(job_name=shared_job_name, tags={"gauntlet/shared": "missing"})


def recovery_requests(instance: dg.DagsterInstance, job_name: str) -> list[dg.RunRequest]:
    """New runs for trials whose run died outside user code after its last automatic retry."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.FAILURE], tags={WILL_RETRY_TAG: "false"}),
        limit=RECOVERY_SCAN_RUNS,
    )
    requests = []
    for record in records:
        run = record.dagster_run
        if run.tags.get(RUN_FAILURE_REASON_TAG) == RunFailureReason.STEP_FAILURE.value:
            continue
        tags = {k: v for k, v in run.tags.items() if k in (STUDY_TAG, "gauntlet/trials", *_RANGE_TAGS)}
        tags["gauntlet/recovery_of"] = run.run_id
        partition = run.tags.get("dagster/partition")
        if partition is None and not all(t in tags for t in _RANGE_TAGS):
            continue
        requests.append(
            dg.RunRequest(run_key=f"recover:{run.run_id}", job_name=job_name, partition_key=partition, tags=tags)
        )
    return requests


def batch_run_requests(
    study: str, keys: Sequence[str], max_per_run: int, *, job_name: str, existing: set[str] = frozenset()
) -> list[dg.RunRequest]:
    """One run per chunk of ``keys``, at most ``max_per_run`` trials each.

    A multi-trial run names its trials as a partition range, so a chunk must be contiguous in
    partition order: keys added together by this tick are; a key that already existed (a tick
    interrupted after adding partitions) sits elsewhere in the order and gets a run of its own.
    """
    fresh = [k for k in keys if k not in existing]
    chunks = [fresh[i : i + max_per_run] for i in range(0, len(fresh), max_per_run)]
    chunks += [[k] for k in keys if k in existing]
    requests = []
    for chunk in chunks:
        digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:16]
        run_key = f"{chunk[0]}+{len(chunk) - 1}#{digest}@v{PIPELINE_CODE_VERSION}"
        tags = {STUDY_TAG: study, "gauntlet/trials": str(len(chunk))}
        if len(chunk) == 1:
            requests.append(dg.RunRequest(run_key=run_key, job_name=job_name, partition_key=chunk[0], tags=tags))
        else:
            tags["dagster/asset_partition_range_start"] = chunk[0]
            tags["dagster/asset_partition_range_end"] = chunk[-1]
            requests.append(dg.RunRequest(run_key=run_key, job_name=job_name, tags=tags))
    return requests


def build_optuna_trial_sensor(
    *,
    job: UnresolvedAssetJobDefinition,
    shared_job: UnresolvedAssetJobDefinition,
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
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
        context: dg.SensorEvaluationContext, optuna_study: StudySourceResource
    ) -> dg.SensorResult:
        shared = _shared_request(context.instance, shared_job.name)
        if shared is not None or _shared_missing(context.instance):
            # Trials wait (cursor unchanged) until the data every trial shares exists.
            return dg.SensorResult(
                run_requests=[shared] if shared else [],
                skip_reason=None if shared else "waiting for the shared assets to be materialized",
            )
        cursors = decode_cursor(context.cursor)
        done = context.instance.get_materialized_partitions(OPTUNA_TRIAL)
        new_keys_by_study: dict[str, list[str]] = {}
        running = 0
        existing: set[str] = set()
        for study in optuna_study.list_studies():
            batch = optuna_study.read_new_trials(study, cursors.get(study, StudyCursor()))
            for error in batch.rejected:
                context.log.error(f"trial not admitted: {error}")
            keys = [trial_partition_key(study, s.number) for s in batch.completed]
            new_keys_by_study[study] = sorted(k for k in keys if k not in done)
            existing |= {
                k
                for k in new_keys_by_study[study]
                if context.instance.has_dynamic_partition(trials_partitions_def.name, k)
            }
            cursors[study] = batch.cursor
            running += batch.still_running

        all_new = [k for keys in new_keys_by_study.values() for k in keys]
        cursor = encode_cursor(cursors)
        recoveries = recovery_requests(context.instance, job.name)
        if not all_new and not recoveries:
            return dg.SensorResult(
                skip_reason=f"no new complete trials ({running} still running)", cursor=cursor
            )
        requests = recoveries + [
            request
            for study, keys in new_keys_by_study.items()
            if keys
            for request in batch_run_requests(study, keys, max_trials_per_run, job_name=job.name, existing=existing)
        ]
        context.log.info(
            f"{len(all_new)} new trial(s) in {len(requests) - len(recoveries)} run(s), "
            f"{len(recoveries)} recovery run(s); {running} still running"
        )
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[
                trials_partitions_def.build_add_request([k for k in all_new if k not in existing])
            ],
            cursor=cursor,
        )

    return optuna_trial_sensor
