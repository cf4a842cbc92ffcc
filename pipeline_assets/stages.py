"""What every trial stage shares: the batch being evaluated, gate events, artifact formats."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from pipeline_assets.dagster_private import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    AssetCheckExecutionRecordStatus,
)
from pipeline_assets.metadata import records_table
from resources.artifacts import ArtifactStoreResource
from simulations.errors import PipelineError
from simulations.gates import GatePolicy, GateVerdict
from simulations.trial import TrialSnapshot

#: Bump when evaluation logic changes: it is each trial asset's code version and part of the
#: sensor's run keys, so a new version is visible as such in the UI.
PIPELINE_CODE_VERSION = "2"


@dataclass
class TrialBatch:
    """The trials of one run and what the stages learned about them so far."""

    keys: list[str]
    policy: GatePolicy
    artifacts: ArtifactStoreResource
    snapshots: dict[str, TrialSnapshot] = field(default_factory=dict)
    errors: list[PipelineError] = field(default_factory=list)

    def fail(self, key: str, stage: str, error: PipelineError) -> None:
        """Record an infrastructure error for one trial; the others go on."""
        self.errors.append(error.for_trial(key, stage))


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of canonical JSON: the data version of a stage's result."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def versioned_tags(data_version: str) -> dict[str, str]:
    """Tags that make a hand-made materialization carry a data and code version."""
    return {
        DATA_VERSION_TAG: data_version,
        DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
        CODE_VERSION_TAG: PIPELINE_CODE_VERSION,
    }


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """A frame as Parquet bytes (written through the atomic artifact store)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def gate_evaluation(asset_key: dg.AssetKey, partition: str, verdict: GateVerdict) -> dg.AssetCheckEvaluation:
    """One gate result for one trial partition.

    ``blocking=False`` on the event: a rejection is a result, not an error, and must not fail
    the run; the stages carry only passing trials downstream themselves. The check's spec is
    blocking, which is what the UI and declarative automation read.
    """
    rows = [
        {
            "threshold": c.name,
            "value": c.value,
            "rule": f"{c.comparator} {c.threshold:.6g}",
            "margin": c.margin,
            "verdict": "pass" if c.passed else "FAIL",
        }
        for c in verdict.checks
    ]
    metadata: dict[str, Any] = {
        "verdict": "disabled" if verdict.disabled else ("pass" if verdict.passed else "FAIL"),
        "reason": verdict.reason,
        "thresholds": records_table(
            rows,
            [
                ("threshold", "metric"),
                ("value", "measured"),
                ("rule", "comparator and threshold"),
                ("margin", "signed distance to the threshold; negative = failed by"),
                ("verdict", "pass / FAIL"),
            ],
        ),
    }
    if verdict.phase:
        metadata["phase"] = verdict.phase
    if verdict.grade:
        metadata["grade"] = verdict.grade
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=verdict.gate,
        passed=verdict.passed,
        partition=partition,
        blocking=False,
        description=verdict.reason,
        metadata=metadata,
    )


def passed_in_instance(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, keys: Iterable[str]
) -> set[str]:
    """Keys whose latest evaluation of ``check_key`` passed (for stages run on their own)."""
    keys = list(keys)
    if not keys:
        return set()
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key], partition_keys=keys)
    return {
        info.partition_key
        for info in infos
        if info.partition_key and info.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED
    }
