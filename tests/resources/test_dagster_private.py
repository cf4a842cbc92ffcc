"""The Dagster adapter's own reads agree with the Dagster API they stand in for."""

import dagster as dg
import pytest

from resources.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    AssetCheckExecutionRecordStatus,
    failed_check_evaluations,
    latest_check_executions,
)

PARTITIONS = dg.StaticPartitionsDefinition(["a", "b", "c"])
CHECK = dg.AssetCheckKey(dg.AssetKey("scored"), "score_gate")
#: Evaluated only where the score is at least 0.5 (as a later gate is not for a trial an earlier
#: gate rejected).
LATER = dg.AssetCheckKey(dg.AssetKey("scored"), "later_gate")


@dg.multi_asset(
    specs=[dg.AssetSpec("scored", partitions_def=PARTITIONS)],
    check_specs=[dg.AssetCheckSpec(CHECK.name, asset="scored"), dg.AssetCheckSpec(LATER.name, asset="scored")],
    config_schema={"scores": dg.Field(dg.Permissive())},
)
def scored(context: dg.AssetExecutionContext):
    # As the trial gauntlet records its gates: a batch of partitions, an evaluation per partition.
    scores = context.op_execution_context.op_config["scores"]
    for partition in context.partition_keys:
        score = scores[partition]
        yield dg.AssetMaterialization(CHECK.asset_key, partition=partition)
        failed = [{"threshold": "min_score", "value": score, "limit": 0.5, "margin": score - 0.5}] if score < 0.5 else []
        yield dg.AssetCheckEvaluation(
            asset_key=CHECK.asset_key,
            check_name=CHECK.name,
            passed=not failed,
            partition=partition,
            description=f"score {score:g} < min 0.5" if failed else None,
            metadata={
                "failed_thresholds": dg.MetadataValue.json(failed),
                "report": dg.MetadataValue.md("| a | b |\n| - | - |\n| 1 | 2 |"),
                "score": score,
            }
            if failed
            else {"score": score},
        )
        if not failed:
            yield dg.AssetCheckEvaluation(
                asset_key=LATER.asset_key, check_name=LATER.name, passed=score > 0.8, partition=partition
            )
    for check in (CHECK, LATER):
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check))
    yield dg.Output(None, output_name="scored")


SCORED_JOB = dg.Definitions(assets=[scored], jobs=[dg.define_asset_job("scored_job", [scored])]).resolve_job_def(
    "scored_job"
)


def _run(instance: dg.DagsterInstance, scores: dict[str, float]) -> None:
    """One run of `scored` over the partitions of ``scores``, a range as the trial job's batches."""
    keys = sorted(scores)
    result = SCORED_JOB.execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
        run_config={"ops": {"scored": {"config": {"scores": scores}}}},
    )
    assert result.success


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_instance(request):
    """A Dagster instance on each storage Gauntlet runs on (PostgreSQL in a database of its own)."""
    overrides = None
    if request.param == "postgres":
        overrides = {"storage": {"postgres": {"postgres_url": request.getfixturevalue("pg_database")}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def test_failed_check_evaluations_match_the_execution_history_newest_first_in_pages(storage_instance):
    instance = storage_instance
    for scores in [{"a": 0.1}, {"b": 0.9}, {"c": 0.3}, {"a": 0.2}, {"b": 0.4}]:
        _run(instance, scores)
    history = instance.event_log_storage.get_asset_check_execution_history(
        CHECK, limit=100, status={AssetCheckExecutionRecordStatus.FAILED}
    )
    assert [r.partition for r in history] == ["b", "a", "c", "a"]

    read = failed_check_evaluations(instance.event_log_storage, CHECK, metadata_key="failed_thresholds", limit=100)
    assert [e.storage_id for e in read] == [r.id for r in history]
    for evaluation, record in zip(read, history, strict=True):
        expected = record.event.dagster_event.asset_check_evaluation_data
        assert evaluation.partition == record.partition
        assert evaluation.description == expected.description
        assert evaluation.metadata_value == expected.metadata["failed_thresholds"]
        assert isinstance(evaluation.metadata_value, dg.JsonMetadataValue)

    first = failed_check_evaluations(instance.event_log_storage, CHECK, metadata_key="failed_thresholds", limit=3)
    rest = failed_check_evaluations(
        instance.event_log_storage, CHECK, metadata_key="failed_thresholds", limit=3, before_id=first[-1].storage_id
    )
    assert [e.storage_id for e in first + rest] == [r.id for r in history]

    absent = failed_check_evaluations(instance.event_log_storage, CHECK, metadata_key="no_such_entry", limit=100)
    assert [e.metadata_value for e in absent] == [None] * len(history)


def test_latest_check_executions_match_the_partition_info(storage_instance):
    instance = storage_instance
    _run(instance, {"a": 0.9, "b": 0.6, "c": 0.95})
    _run(instance, {"a": 0.1, "b": 0.7})
    expected = {
        (info.check_key.name, info.partition_key): (info.latest_execution_status, info.latest_planned_run_id)
        for info in instance.event_log_storage.get_asset_check_partition_info([CHECK, LATER])
        if info.partition_key is not None  # the status reads trial partitions only
    }
    executions = latest_check_executions(instance.event_log_storage, [CHECK, LATER])
    read = {(e.check_name, e.partition): (e.status, e.run_id) for e in executions}
    assert read == expected
    statuses = {key: status for key, (status, _) in read.items()}
    assert statuses == {
        ("score_gate", "a"): AssetCheckExecutionRecordStatus.FAILED,
        ("score_gate", "b"): AssetCheckExecutionRecordStatus.SUCCEEDED,
        ("score_gate", "c"): AssetCheckExecutionRecordStatus.SUCCEEDED,
        # The second run rejected a at the first gate: its later gate keeps the first run's verdict.
        ("later_gate", "a"): AssetCheckExecutionRecordStatus.SUCCEEDED,
        ("later_gate", "b"): AssetCheckExecutionRecordStatus.FAILED,
        ("later_gate", "c"): AssetCheckExecutionRecordStatus.SUCCEEDED,
    }
