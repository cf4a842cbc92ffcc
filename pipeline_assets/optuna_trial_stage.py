"""The first row of the stage table: each trial frozen as a `TrialSnapshot`, read from Optuna or stored."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

from pipeline_assets.metadata import key_value_table
from pipeline_assets.trial_keys import parse_trial_partition_key, study_key_prefix
from pipeline_assets.stages import StageRecord, StageRun, TrialStage
from resources.optuna_study import StudySourceResource
from simulations.errors import PipelineError, TrialDataError
from simulations.stage_names import OPTUNA_TRIAL_NAMES
from simulations.trial import TrialSnapshot

OPTUNA_TRIAL = dg.AssetKey(OPTUNA_TRIAL_NAMES.asset)


def snapshot_artifact_key(partition_key: str) -> str:
    """Where the `optuna_trial` snapshot of a partition is stored."""
    return f"trials/{partition_key}/optuna_trial.json"


def resolve_trials(keys: Sequence[str], study_names: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Map partition keys to (study name, trial number) using the studies in the storage."""
    by_prefix = {study_key_prefix(name): name for name in study_names}
    resolved: dict[str, tuple[str, int]] = {}
    for key in keys:
        try:
            prefix, number = parse_trial_partition_key(key)
        except ValueError as exc:
            raise TrialDataError(str(exc), trial=key) from exc
        if prefix not in by_prefix:
            raise TrialDataError(f"no study in the Optuna storage has key prefix {prefix!r}", trial=key)
        resolved[key] = (by_prefix[prefix], number)
    return resolved


def snapshots_from_optuna(run: StageRun, optuna_study: StudySourceResource) -> None:
    """Read every trial of the run from the Optuna storage; a bad trial fails alone."""
    resolved = resolve_trials(run.keys, optuna_study.list_studies())
    keys_by_study: dict[str, dict[int, str]] = defaultdict(dict)
    for key, (study, number) in resolved.items():
        keys_by_study[study][number] = key
    for study, keys in keys_by_study.items():
        try:
            found = {s.number: s for s in optuna_study.get_trials(study, list(keys))}
        except TrialDataError:
            # One bad trial must not hide the others: read them one by one.
            found = {}
            for number, key in keys.items():
                try:
                    found[number] = optuna_study.get_trials(study, [number])[0]
                except TrialDataError as exc:
                    run.fail(key, OPTUNA_TRIAL.to_user_string(), exc)
        for number, snapshot in found.items():
            run.snapshots[keys[number]] = snapshot


def snapshots_from_artifacts(run: StageRun) -> None:
    """Read every trial of the run back from its stored snapshot (a later stage run alone)."""
    for key in run.keys:
        try:
            raw = run.artifacts.read_bytes(snapshot_artifact_key(key))
            run.snapshots[key] = TrialSnapshot.from_json(raw.decode())
        except PipelineError as exc:
            run.fail(key, OPTUNA_TRIAL.to_user_string(), exc)


def record(run: StageRun, key: str, snapshot: TrialSnapshot) -> StageRecord:
    """Store the snapshot; its content hash is the data version every later stage records."""
    artifact = snapshot_artifact_key(key)
    run.artifacts.write_bytes(artifact, snapshot.to_json().encode())
    return StageRecord(
        description=f"{snapshot.label}: params {snapshot.params}",
        data_version=snapshot.content_hash,
        metadata={
            "study": snapshot.study_name,
            "trial_number": snapshot.number,
            "trial_id": snapshot.trial_id,
            "objective": dg.MetadataValue.float(snapshot.value) if snapshot.value is not None else "none",
            "strategy": str(snapshot.user_attrs.get("strategy", "—")),
            "params": key_value_table(snapshot.params, key="param"),
            "user_attrs": dg.MetadataValue.json(snapshot.user_attrs),
            "completed_at": snapshot.datetime_complete.isoformat() if snapshot.datetime_complete else "—",
            "content_hash": snapshot.content_hash,
            "artifact": dg.MetadataValue.path(run.artifacts.uri(artifact)),
        },
    )


OPTUNA_TRIAL_STAGE = TrialStage(
    names=OPTUNA_TRIAL_NAMES,
    description="A completed Optuna trial: its params, objective and attributes, frozen as a snapshot.",
    deps=(),
    kinds=frozenset({"optuna"}),
    code_version="1",
    record=record,
)
