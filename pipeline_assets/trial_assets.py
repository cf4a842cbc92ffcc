"""Per-trial assets: one multi-asset step that evaluates a batch of trials stage by stage.

Why one step: a run over many trials must record each trial's gate result for its own
partition and carry only the passing trials downstream (DESIGN.md: blocking checks are not
per partition in multi-partition runs). Dagster materializes every partition of a run when an
asset returns an output, so each stage here yields one `AssetMaterialization` and one
`AssetCheckEvaluation` per trial instead, and the next stage sees only the trials that passed.
`can_subset=True` lets a user rematerialize any stage alone from the UI; earlier stages are
then read back from the artifact store.
"""

from collections import defaultdict
from collections.abc import Iterator, Sequence

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
)

from pipeline_assets.errors import TRANSIENT_RETRY_POLICY, fail_for
from pipeline_assets.metadata import key_value_table
from pipeline_assets.partitions import (
    parse_trial_partition_key,
    study_key_prefix,
    trials_partitions_def,
)
from resources.artifacts import ArtifactStoreResource
from resources.optuna_study import StudySourceResource
from simulations.errors import PipelineError, TrialDataError
from simulations.trial import TrialSnapshot

#: Bump when evaluation logic changes: it is each trial asset's code version and part of the
#: sensor's run keys, so a new version is visible as such in the UI.
PIPELINE_CODE_VERSION = "1"

#: Upper bound of trials evaluated in one run (UI backfills and sensor batches alike).
MAX_TRIALS_PER_RUN = 50

TRIALS_GROUP = "trials"
OPTUNA_TRIAL = dg.AssetKey("optuna_trial")
STUDY_TAG = "gauntlet/study"


def snapshot_artifact_key(partition_key: str) -> str:
    """Where the `optuna_trial` snapshot of a partition is stored."""
    return f"trials/{partition_key}/optuna_trial.json"


def _versioned_tags(data_version: str) -> dict[str, str]:
    return {
        DATA_VERSION_TAG: data_version,
        DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
        CODE_VERSION_TAG: PIPELINE_CODE_VERSION,
    }


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
            raise TrialDataError(
                f"no study in the Optuna storage has key prefix {prefix!r}", trial=key
            )
        resolved[key] = (by_prefix[prefix], number)
    return resolved


def _load_snapshots(
    keys: Sequence[str], optuna_study: StudySourceResource
) -> tuple[dict[str, TrialSnapshot], list[PipelineError]]:
    resolved = resolve_trials(keys, optuna_study.list_studies())
    numbers_by_study: dict[str, list[int]] = defaultdict(list)
    for study, number in resolved.values():
        numbers_by_study[study].append(number)
    snapshots: dict[str, TrialSnapshot] = {}
    errors: list[PipelineError] = []
    for study, numbers in numbers_by_study.items():
        try:
            found = {s.number: s for s in optuna_study.get_trials(study, numbers)}
        except TrialDataError:
            # One bad trial must not hide the others: fall back to reading them one by one.
            found = {}
            for number in numbers:
                try:
                    found[number] = optuna_study.get_trials(study, [number])[0]
                except TrialDataError as exc:
                    key = next(k for k, v in resolved.items() if v == (study, number))
                    errors.append(exc.for_trial(key, "optuna_trial"))
        for key, (s, n) in resolved.items():
            if s == study and n in found:
                snapshots[key] = found[n]
    return snapshots, errors


def _optuna_trial_events(
    snapshots: dict[str, TrialSnapshot], artifacts: ArtifactStoreResource
) -> Iterator[dg.AssetMaterialization]:
    for key, snap in snapshots.items():
        artifact = snapshot_artifact_key(key)
        artifacts.write_bytes(artifact, snap.to_json().encode())
        yield dg.AssetMaterialization(
            asset_key=OPTUNA_TRIAL,
            partition=key,
            metadata={
                "study": snap.study_name,
                "trial_number": snap.number,
                "trial_id": snap.trial_id,
                "objective": dg.MetadataValue.float(snap.value) if snap.value is not None else "none",
                "strategy": str(snap.user_attrs.get("strategy", "—")),
                "params": key_value_table(snap.params, key="param"),
                "user_attrs": dg.MetadataValue.json(snap.user_attrs),
                "completed_at": snap.datetime_complete.isoformat() if snap.datetime_complete else "—",
                "content_hash": snap.content_hash,
                "artifact": dg.MetadataValue.path(artifacts.uri(artifact)),
            },
            tags=_versioned_tags(snap.content_hash),
        )


@dg.multi_asset(
    name="trial_gauntlet",
    specs=[
        dg.AssetSpec(
            OPTUNA_TRIAL,
            description="A completed Optuna trial: its params, objective and attributes, frozen as a snapshot.",
            partitions_def=trials_partitions_def,
            group_name=TRIALS_GROUP,
            code_version=PIPELINE_CODE_VERSION,
            kinds={"optuna"},
            owners=["team:quant-research"],
        ),
    ],
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_TRIALS_PER_RUN),
    retry_policy=TRANSIENT_RETRY_POLICY,
)
def trial_gauntlet(
    context: dg.AssetExecutionContext,
    optuna_study: StudySourceResource,
    artifacts: ArtifactStoreResource,
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Evaluate a batch of trials through every selected stage, one partition per trial."""
    keys = list(context.partition_keys)
    context.log.info(f"evaluating {len(keys)} trial(s): {keys[0]} … {keys[-1]}")
    snapshots, errors = _load_snapshots(keys, optuna_study)
    if OPTUNA_TRIAL in context.selected_asset_keys:
        yield from _optuna_trial_events(snapshots, artifacts)
    fail_for(errors)
