"""The one module that imports Dagster's private APIs (`dagster._core…`, `dagster._utils…`, `dagster_shared`).

Dagster may move or rename these between releases, so everything else imports them from here and a
Dagster upgrade touches this one file. `tests/test_architecture.py` enforces it.
"""

from collections.abc import Sequence
from typing import Any

from dagster import AssetKey

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
from dagster_shared.serdes import deserialize_value

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
    "make_new_backfill_id",
    "make_new_run_id",
]


def upath_partition_paths(io_manager: Any, context: Any) -> dict[str, Any]:
    """Each partition's path, as a `dg.UPathIOManager` would load it (``_get_paths_for_partitions``)."""
    return io_manager._get_paths_for_partitions(context)  # noqa: SLF001 - the adapter's purpose


def backfill_partitions_waiting(serialized: str, *, asset_keys: Sequence[str]) -> set[str]:
    """The partitions of ``asset_keys`` (as the instance's tables name them, `AssetKey.to_string`)
    that a requested backfill, stored as ``serialized``, has not turned into runs yet.

    A job backfill names its partitions (its launched runs show as in flight themselves).
    """
    backfill = deserialize_value(serialized, PartitionBackfill)
    data = backfill.asset_backfill_data
    if data is None:
        return set(backfill.partition_names or ())
    waiting: set[str] = set()
    for key in asset_keys:
        asset = AssetKey.from_db_string(key)
        target = data.target_subset.partitions_subsets_by_asset_key.get(asset) if asset is not None else None
        if target is None:
            continue
        requested = data.requested_subset.partitions_subsets_by_asset_key.get(asset)
        done = set(requested.get_partition_keys()) if requested is not None else set()
        waiting.update(k for k in target.get_partition_keys() if k not in done)
    return waiting
