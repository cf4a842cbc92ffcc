"""The Dagster half of the stage table: a row per trial asset, and the events every stage shares.

A row (`TrialStage`) pairs a pure stage of :mod:`simulations.gauntlet` with the asset it
produces, the gate check on that asset and the function that turns one trial's outcome into
stored artifacts and metadata. `StageRun` is what one run of the trial step knows and how it
writes events so that the UI tells the truth:

* every materialization records its data provenance (the data and code versions of its
  inputs, as Dagster records them for outputs), so a freshly evaluated trial is not
  "Unsynced", and a new version of one input or one stage's code marks exactly the assets
  that depend on it stale;
* every gate evaluation points at the materialization it judged
  (``target_materialization_data``), which is what the check's partition counters, dots and
  filters count;
* a trial stopped at a gate gets an observation on every later asset of the run that says
  which gate stopped it, and the run's tags carry the true counts of the run.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from resources.dagster_private import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    AssetCheckEvaluationTargetMaterializationData,
    AssetCheckExecutionRecordStatus,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from pipeline_assets.metadata import records_table
from pipeline_assets.shared_assets import SHARED_ASSET_KEYS
from resources.artifacts import ArtifactStoreResource
from simulations.errors import PipelineError
from simulations.gates import GatePolicy, GateVerdict
from simulations.gauntlet import GauntletInputs, PaperPending, Stage, StageResult, StudyContext, TrialCase
from simulations.market import check_declared_train_end
from simulations.stage_names import FAILED_THRESHOLDS, StageNames
from simulations.trial import TrialSnapshot

TRIALS_GROUP = "trials"
OWNERS = ("team:quant-research",)
#: Run tags with the true counts of a run (the Runs list shows them; a backfill's status cannot).
COUNT_TAGS = {
    "evaluated": "gauntlet/evaluated",
    "passed": "gauntlet/passed",
    "rejected": "gauntlet/rejected",
    "pending": "gauntlet/pending",
    "errors": "gauntlet/errors",
}
REJECTED_BY_TAG = "gauntlet/rejected_by"
#: Dagster's data version of an input it has no version for (e.g. recorded before versions were).
_UNVERSIONED = "INITIAL"


@dataclass(frozen=True)
class StageRecord:
    """What a stage stores for one trial: its metadata, one-line description and data version."""

    description: str
    metadata: Mapping[str, Any]
    data_version: str


@dataclass(frozen=True)
class TrialStage:
    """One row of the stage table: a trial asset, its gate and how its events are built.

    Attributes
    ----------
    names
        Its asset (partitioned by trial), gate and where-a-trial-stands words
        (`simulations.stage_names`).
    description
        The asset's one-line business description (the UI shows it).
    deps
        The assets it is computed from: the previous stage and the shared inputs it reads (all
        their instruments in the lineage; a trial's provenance records its own instrument's).
    kinds
        Kind tags shown on the asset.
    code_version
        The stage's code version; a new one marks this asset stale, and only this one.
    stage
        The pure stage (:data:`simulations.gauntlet.STAGES`) for a gated asset, else ``None``.
    check_description
        What the gate checks (the check's description in the UI), for a gated asset.
    record
        Stores one trial's outcome as artifacts and returns its `StageRecord`.
    pending
        For a stage whose result can be pending: the observation that shows its progress.
    """

    names: StageNames
    description: str
    deps: tuple[dg.AssetKey, ...]
    kinds: frozenset[str]
    code_version: str
    stage: Stage | None = None
    check_description: str | None = None
    record: Callable[[StageRun, str, Any], StageRecord] | None = None
    pending: Callable[[StageRun, str, PaperPending], dg.AssetObservation] | None = None

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(self.names.asset)

    @property
    def reached(self) -> str:
        return self.names.reached

    @property
    def waiting(self) -> str | None:
        return self.names.waiting

    @property
    def name(self) -> str:
        return self.key.to_user_string()

    @property
    def check(self) -> dg.AssetCheckKey | None:
        """The gate check on this asset, if it is gated."""
        return dg.AssetCheckKey(self.key, self.names.gate) if self.names.gate is not None else None

    def spec(self, partitions_def: dg.PartitionsDefinition) -> dg.AssetSpec:
        return dg.AssetSpec(
            self.key,
            description=self.description,
            deps=[
                # A trial reads its instrument's partition; Dagster maps a trial to no single one.
                dg.AssetDep(dep, partition_mapping=dg.AllPartitionMapping()) if dep in SHARED_ASSET_KEYS else dep
                for dep in self.deps
            ],
            partitions_def=partitions_def,
            group_name=TRIALS_GROUP,
            code_version=self.code_version,
            kinds=set(self.kinds),
            owners=list(OWNERS),
        )

    def check_spec(self, partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
        """The gate as a check. Not blocking in Dagster's sense (a failed blocking check fails the
        whole run); the trial step itself stops the trial there and carries the others on."""
        assert self.check is not None
        return dg.AssetCheckSpec(
            self.check.name,
            asset=self.key,
            blocking=False,
            partitions_def=partitions_def,
            description=self.check_description,
        )


@dataclass(frozen=True)
class Pointer:
    """A materialization another event refers to: its data version and where it is stored."""

    data_version: str
    storage_id: int
    run_id: str
    timestamp: float


def content_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of canonical JSON: the data version of a stage's result."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """A frame as Parquet bytes (written through the atomic artifact store)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def stage_artifact(key: str, stage: TrialStage | dg.AssetKey) -> str:
    """Where a stage's JSON summary of a trial is stored (its verdict included)."""
    asset = stage.key if isinstance(stage, TrialStage) else stage
    return f"trials/{key}/{asset.to_user_string()}.json"


def verdict_from_summary(raw: bytes) -> GateVerdict:
    """The verdict a stage's stored JSON summary holds."""
    return GateVerdict.model_validate(json.loads(raw)["verdict"])


def _pointer(record: Any) -> Pointer:
    tags = record.asset_materialization.tags or {}
    return Pointer(
        data_version=tags.get(DATA_VERSION_TAG, _UNVERSIONED),
        storage_id=record.storage_id,
        run_id=record.run_id,
        timestamp=record.timestamp,
    )


def latest_materializations(instance: dg.DagsterInstance, asset: dg.AssetKey, keys: Sequence[str]) -> dict[str, Pointer]:
    """The latest materialization of each partition in ``keys`` that has one.

    One query when every partition's latest materialization is among the newest
    ``len(keys)`` (always so for what a run has just written); one more per partition left.
    """
    if not keys:
        return {}
    found: dict[str, Pointer] = {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=list(keys)), limit=len(keys)
    ).records
    for record in records:
        found.setdefault(record.partition_key, _pointer(record))
    for key in keys:
        if key not in found:
            more = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[key]), limit=1
            ).records
            if more:
                found[key] = _pointer(more[0])
    return found


def gate_evaluation(
    check: dg.AssetCheckKey, partition: str, verdict: GateVerdict, target: Pointer | None
) -> dg.AssetCheckEvaluation:
    """One gate result for one trial partition, linked to the materialization it judged."""
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
    failed = [
        {"threshold": c.name, "value": c.value, "rule": f"{c.comparator} {c.threshold:g}", "limit": c.threshold,
         "margin": c.margin}
        for c in verdict.checks
        if not c.passed
    ]  # fmt: skip
    if failed:
        # The numbers themselves (the table above is formatted), for `gauntlet status --failed --json`.
        metadata[FAILED_THRESHOLDS] = dg.MetadataValue.json(failed)
    if verdict.phase:
        metadata["phase"] = verdict.phase
    if verdict.grade:
        metadata["grade"] = verdict.grade
    return dg.AssetCheckEvaluation(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=verdict.passed,
        partition=partition,
        blocking=False,
        description=verdict.reason,
        metadata=metadata,
        target_materialization_data=(
            AssetCheckEvaluationTargetMaterializationData(
                storage_id=target.storage_id, run_id=target.run_id, timestamp=target.timestamp
            )
            if target is not None
            else None
        ),
    )


def passed_in_instance(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, keys: Iterable[str]) -> set[str]:
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


Event = dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation


@dataclass
class StageRun:
    """The trials of one run of the trial step and what its stages have learned about them."""

    instance: dg.DagsterInstance
    run_id: str
    keys: list[str]
    policy: GatePolicy
    artifacts: ArtifactStoreResource
    selected: frozenset[dg.AssetKey]
    #: The per-trial assets (their dependencies on each other are per partition).
    trial_assets: frozenset[dg.AssetKey]
    #: Per instrument, what the run's trials on it share; set once the shared inputs are loaded.
    inputs: dict[str, GauntletInputs] = field(default_factory=dict)
    #: Each trial's instrument (its study's).
    instrument_of: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, TrialSnapshot] = field(default_factory=dict)
    contexts: dict[str, StudyContext] = field(default_factory=dict)
    errors: list[PipelineError] = field(default_factory=list)
    #: Per asset, the materialization of each trial that later events refer to.
    pointers: dict[dg.AssetKey, dict[str, Pointer]] = field(default_factory=dict)
    #: Per shared asset, the newest of its events (any instrument's) when the run read it.
    shared_cursors: dict[dg.AssetKey, str] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)
    rejected_by: Counter = field(default_factory=Counter)
    #: The trials still in the gauntlet after the last stage.
    alive: list[str] = field(default_factory=list)

    def fail(self, key: str, stage: str, error: PipelineError) -> None:
        """Record an infrastructure error for one trial; the others go on."""
        self.errors.append(error.for_trial(key, stage))
        self.outcomes["errors"] += 1

    def inputs_for(self, key: str) -> GauntletInputs:
        """What trial ``key`` is evaluated on: its instrument's windows, scenarios, costs and venue."""
        return self.inputs[self.instrument_of[key]]

    def case(self, key: str) -> TrialCase:
        """The trial as the stages see it, once it is known to have been tuned on the train window only."""
        snapshot = self.snapshots[key]
        check_declared_train_end(user_attrs=snapshot.user_attrs, windows=self.inputs_for(key).windows)
        return TrialCase(key=key, snapshot=snapshot, context=self.contexts.get(key))

    # ------------------------------------------------------------------------------ provenance
    def pointer_to(self, asset: dg.AssetKey, partition: str) -> Pointer | None:
        """The latest materialization of ``asset``'s ``partition`` (a trial, or a shared asset's instrument)."""
        known = self.pointers.setdefault(asset, {})
        if partition not in known:
            known.update(latest_materializations(self.instance, asset, [partition]))
        return known.get(partition)

    def remember(self, asset: dg.AssetKey, keys: Sequence[str]) -> dict[str, Pointer]:
        """Read back the materializations just written for ``keys`` (one query)."""
        fresh = latest_materializations(self.instance, asset, keys)
        self.pointers.setdefault(asset, {}).update(fresh)
        return fresh

    def provenance_tags(self, row: TrialStage, key: str, data_version: str) -> dict[str, str]:
        """Tags that make a hand-made materialization carry what Dagster records for outputs."""
        tags = {
            DATA_VERSION_TAG: data_version,
            DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
            CODE_VERSION_TAG: row.code_version,
        }
        for dep in row.deps:
            # The trial's own partition of a trial asset; its instrument's of a shared one.
            pointer = self.pointer_to(dep, key if dep in self.trial_assets else self.instrument_of[key])
            tags[get_input_data_version_tag(dep)] = pointer.data_version if pointer else _UNVERSIONED
            if dep in self.trial_assets:
                tags[get_input_event_pointer_tag(dep)] = str(pointer.storage_id) if pointer else "NULL"
            else:
                tags[get_input_event_pointer_tag(dep)] = self.shared_cursor(dep)
        return tags

    def shared_cursor(self, asset: dg.AssetKey) -> str:
        """The event pointer a trial records for a shared asset: its newest event, whichever instrument's.

        Dagster maps a trial to every instrument's partition and judges each against this one
        pointer: a partition built after it with a new data version makes the trial stale. The
        trial's own instrument's build is at or before it, so a trial is fresh when evaluated
        and goes stale when its instrument gets new data (or, Dagster mapping no trial to one
        instrument, when another instrument does); its data version tag is its own instrument's.
        """
        if asset not in self.shared_cursors:
            records = self.instance.fetch_materializations(asset, limit=1).records
            self.shared_cursors[asset] = str(records[0].storage_id) if records else "NULL"
        return self.shared_cursors[asset]

    # ---------------------------------------------------------------------------------- events
    def materializations(self, row: TrialStage, results: Mapping[str, Any]) -> Iterator[dg.AssetMaterialization]:
        """Store each trial's result and yield its materialization, with provenance."""
        assert row.record is not None
        for key, result in results.items():
            stored = row.record(self, key, result)
            yield dg.AssetMaterialization(
                asset_key=row.key,
                partition=key,
                description=stored.description,
                metadata=stored.metadata,
                tags=self.provenance_tags(row, key, stored.data_version),
            )

    def gate(
        self, row: TrialStage, alive: list[str], evaluate: Callable[[str], StageResult], later: Sequence[TrialStage]
    ) -> Iterator[Event]:
        """One gated stage over the trials still alive; leaves in ``self.alive`` those that pass.

        When the stage is not selected (a user rematerializes a later asset alone), the trials
        that go on are those whose latest evaluation of this gate passed.
        """
        assert row.check is not None and row.stage is not None
        if row.key not in self.selected:
            passed = passed_in_instance(self.instance, row.check, alive)
            self.alive = [k for k in alive if k in passed]
            return
        results: dict[str, StageResult] = {}
        for key in alive:
            try:
                results[key] = evaluate(key)
            except PipelineError as exc:
                self.fail(key, row.name, exc)
        judged = {k: r for k, r in results.items() if not isinstance(r, PaperPending)}
        yield from self.materializations(row, judged)
        for key, result in results.items():
            if isinstance(result, PaperPending):
                assert row.pending is not None
                self.outcomes["pending"] += 1
                yield row.pending(self, key, result)
        targets = self.remember(row.key, list(judged))
        for key, outcome in judged.items():
            yield gate_evaluation(row.check, key, outcome.verdict, targets.get(key))
        for key, outcome in judged.items():
            if not outcome.verdict.passed:
                self.outcomes["rejected"] += 1
                self.rejected_by[row.stage.gate] += 1
                yield from self.stopped(key, row, outcome.verdict, later)
        self.alive = [k for k in alive if k in judged and judged[k].verdict.passed]

    def stopped(
        self, key: str, row: TrialStage, verdict: GateVerdict, later: Sequence[TrialStage]
    ) -> Iterator[dg.AssetObservation]:
        """On each later asset of the run: this trial was not evaluated here, and why."""
        assert row.check is not None
        for stage in later:
            if stage.key in self.selected:
                yield dg.AssetObservation(
                    asset_key=stage.key,
                    partition=key,
                    description=f"not evaluated: stopped at {row.check.name} ({verdict.reason})",
                    metadata={"status": "stopped", "stopped_by": row.check.name, "reason": verdict.reason},
                )

    def count_tags(self) -> dict[str, str]:
        """The run's true counts, as run tags."""
        counts = {
            "evaluated": len(self.keys),
            "passed": self.outcomes["passed"],
            "rejected": self.outcomes["rejected"],
            "pending": self.outcomes["pending"],
            "errors": self.outcomes["errors"],
        }
        tags = {COUNT_TAGS[name]: str(n) for name, n in counts.items()}
        if self.rejected_by:
            tags[REJECTED_BY_TAG] = ", ".join(f"{gate} {n}" for gate, n in sorted(self.rejected_by.items()))
        return tags
