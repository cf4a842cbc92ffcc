"""The one module that imports Dagster's private APIs (`dagster._core…`, `dagster._utils…`, `dagster_shared`).

Dagster may move or rename these between releases, so everything else imports them from here and a
Dagster upgrade touches this one file. `tests/test_architecture.py` enforces it.
"""

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

# Run tags and data-version tags: written on runs and materializations, read back by status, CLI and sensors.
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

# A check evaluation's pointer to the materialization it judged: without it the UI counts the
# evaluation nowhere (DESIGN.md).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    GRPC_INFO_TAG,
    PARENT_RUN_ID_TAG,
    PARTITION_NAME_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
)

# Run states: which runs are still in flight, and why a failed one failed (sensors, status, CLI).
from dagster._core.events import RunFailureReason
from dagster._core.storage.dagster_run import FINISHED_STATUSES, NOT_FINISHED_STATUSES

# Event log and asset-check records: read by status, reporting and the alert sensors.
from dagster._core.event_api import RunStatusChangeRecordsFilter
from dagster._core.events import DagsterEventType
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster_shared.serdes import unpack_value

# Backfills and sensor ticks: the CLI launches backfills and reports the daemon's instigator state.
from dagster._core.definitions.sensor_definition import DEFAULT_SENSOR_DAEMON_INTERVAL
from dagster._daemon.controller import DEFAULT_HEARTBEAT_INTERVAL_SECONDS
from dagster._daemon.types import DaemonHeartbeat
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, TickStatus
from dagster._core.utils import make_new_backfill_id

# Errors: a missing DAGSTER_HOME, and the serialized error of a failed run or step.
from dagster._core.errors import DagsterHomeNotSetError
from dagster_shared.error import SerializableErrorInfo

# Jobs the sensors target (the type `dg.define_asset_job` returns).
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# The run launcher's health check.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# Tests and bench only: building events, runs and run-queue state by hand.
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.events import DagsterEvent, EngineEventData, JobFailureData
from dagster._core.events.log import EventLogEntry
from dagster._core.execution.plan.objects import StepFailureData, UserFailureData
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster._core.utils import make_new_run_id
from dagster._utils.tags import TagConcurrencyLimitsCounter

# Tests only: Dagster's tables, against which `resources/dagster_storage.py`'s plain SQL is checked.
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.runs.schema import RunStorageSqlMetadata


def __getattr__(name: str) -> Any:
    # `dagster._core.test_utils` (bench only) costs ~60 ms to import, so it loads on first use.
    if name == "create_run_for_test":
        from dagster._core.test_utils import create_run_for_test

        return create_run_for_test
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AssetCheckEvaluationTargetMaterializationData",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "BACKFILL_ID_TAG",
    "CODE_VERSION_TAG",
    "DATA_VERSION_IS_USER_PROVIDED_TAG",
    "DATA_VERSION_TAG",
    "DEFAULT_HEARTBEAT_INTERVAL_SECONDS",
    "DEFAULT_SENSOR_DAEMON_INTERVAL",
    "FINISHED_STATUSES",
    "GRPC_INFO_TAG",
    "NOT_FINISHED_STATUSES",
    "PARENT_RUN_ID_TAG",
    "PARTITION_NAME_TAG",
    "RUN_FAILURE_REASON_TAG",
    "WILL_RETRY_TAG",
    "AssetCheckEvaluationPlanned",
    "AssetCheckExecutionRecord",
    "AssetCheckExecutionRecordStatus",
    "BulkActionStatus",
    "CheckRunHealthResult",
    "DagsterEvent",
    "DagsterEventType",
    "DagsterHomeNotSetError",
    "DaemonHeartbeat",
    "EngineEventData",
    "EventLogEntry",
    "EventLogStorage",
    "FailedCheckEvaluation",
    "LatestCheckExecution",
    "InstigatorState",
    "InstigatorStatus",
    "InstigatorType",
    "JobFailureData",
    "PartitionBackfill",
    "QueuedRunCoordinator",
    "RunFailureReason",
    "RunStatusChangeRecordsFilter",
    "RunStorageSqlMetadata",
    "SerializableErrorInfo",
    "SqlEventLogStorageMetadata",
    "StepFailureData",
    "TagConcurrencyLimitsCounter",
    "TickStatus",
    "UnresolvedAssetJobDefinition",
    "UserFailureData",
    "WorkerStatus",
    "create_run_for_test",
    "failed_check_evaluations",
    "latest_check_executions",
    "make_new_backfill_id",
    "make_new_run_id",
]


def upath_partition_paths(io_manager: Any, context: Any) -> dict[str, Any]:
    """Each partition's path, as a `dg.UPathIOManager` would load it (``_get_paths_for_partitions``)."""
    return io_manager._get_paths_for_partitions(context)  # noqa: SLF001 - the adapter's purpose


@dataclass(frozen=True, slots=True)
class FailedCheckEvaluation:
    """One FAILED execution of an asset check, as much of it as `gauntlet status` shows."""

    storage_id: int
    partition: str | None
    description: str | None
    #: The one metadata entry asked for (a `dg.MetadataValue`), or None if the evaluation has none.
    metadata_value: Any


def failed_check_evaluations(
    storage: EventLogStorage, check: Any, *, metadata_key: str, limit: int, before_id: int | None = None
) -> list[FailedCheckEvaluation]:
    """The FAILED executions of ``check`` (a `dg.AssetCheckKey`), newest first, ``limit`` of them
    with a storage id below ``before_id``: the rows `get_asset_check_execution_history` reads.

    That method rebuilds every evaluation event as Dagster objects (metadata tables, plots), which
    for the thousands of rejections of a large study is most of `gauntlet status --failed`. Here
    the event is parsed as plain JSON and only the description and the ``metadata_key`` entry are
    rebuilt, by Dagster's own `unpack_value`.
    """
    table = AssetCheckExecutionsTable
    query = (
        sa.select(table.c.id, table.c.partition, table.c.evaluation_event)
        .where(
            table.c.asset_key == check.asset_key.to_string(),
            table.c.check_name == check.name,
            table.c.execution_status == AssetCheckExecutionRecordStatus.FAILED.value,
        )
        .order_by(table.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    with storage.index_connection() as conn:  # type: ignore[attr-defined]  # every SQL event log has it
        rows = conn.execute(query).fetchall()
    evaluations = []
    for storage_id, partition, event in rows:
        dagster_event = json.loads(event).get("dagster_event") if event else None
        data = (dagster_event or {}).get("event_specific_data") or {}
        packed = (data.get("metadata") or {}).get(metadata_key)
        evaluations.append(
            FailedCheckEvaluation(
                storage_id=storage_id,
                partition=partition,
                description=data.get("description"),
                metadata_value=unpack_value(packed) if packed is not None else None,
            )
        )
    return evaluations


@dataclass(frozen=True, slots=True)
class LatestCheckExecution:
    """A partition's latest execution of an asset check: planned, or evaluated with its outcome."""

    check_name: str
    partition: str
    status: AssetCheckExecutionRecordStatus
    #: The run that planned (and, unless still PLANNED, evaluated) it.
    run_id: str | None


def latest_check_executions(storage: EventLogStorage, checks: Any) -> list[LatestCheckExecution]:
    """The latest execution of each of ``checks`` (`dg.AssetCheckKey` s) per partition, in one
    query: the status and run id `get_asset_check_partition_info` reports, without the latest
    materialization it joins in per check (the status does not use it).
    """
    table = AssetCheckExecutionsTable
    wanted = sa.or_(
        *(sa.and_(table.c.asset_key == c.asset_key.to_string(), table.c.check_name == c.name) for c in checks)
    )
    latest = (
        sa.select(sa.func.max(table.c.id).label("id"))
        .where(
            wanted,
            table.c.partition.is_not(None),
            # As Dagster reads them: older PLANNED rows may lack the event's storage id.
            table.c.evaluation_event_storage_id.is_not(None),
        )
        .group_by(table.c.asset_key, table.c.check_name, table.c.partition)
        .subquery()
    )
    query = sa.select(table.c.check_name, table.c.partition, table.c.execution_status, table.c.run_id).join(
        latest, table.c.id == latest.c.id
    )
    with storage.index_connection() as conn:  # type: ignore[attr-defined]  # every SQL event log has it
        rows = conn.execute(query).fetchall()
    return [
        LatestCheckExecution(
            check_name=name, partition=partition, status=AssetCheckExecutionRecordStatus(status), run_id=run_id
        )
        for name, partition, status, run_id in rows
    ]
