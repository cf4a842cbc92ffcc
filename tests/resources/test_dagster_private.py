"""The Dagster adapter's own reads agree with the Dagster API they stand in for."""

import dagster as dg
import pytest

from resources.dagster_private import AssetCheckExecutionRecordStatus, failed_check_evaluations

PARTITIONS = dg.StaticPartitionsDefinition(["a", "b", "c"])
CHECK = dg.AssetCheckKey(dg.AssetKey("scored"), "score_gate")


@dg.multi_asset(
    specs=[dg.AssetSpec("scored", partitions_def=PARTITIONS)],
    check_specs=[dg.AssetCheckSpec("score_gate", asset="scored")],
    config_schema={"score": float},
)
def scored(context: dg.AssetExecutionContext):
    # As the trial gauntlet records its gates: a partitioned evaluation per trial.
    score = context.op_execution_context.op_config["score"]
    yield dg.AssetMaterialization(CHECK.asset_key, partition=context.partition_key)
    failed = [{"threshold": "min_score", "value": score, "limit": 0.5, "margin": score - 0.5}] if score < 0.5 else []
    yield dg.AssetCheckEvaluation(
        asset_key=CHECK.asset_key,
        check_name=CHECK.name,
        passed=not failed,
        partition=context.partition_key,
        description=f"score {score:g} < min 0.5" if failed else None,
        metadata={
            "failed_thresholds": dg.MetadataValue.json(failed),
            "report": dg.MetadataValue.md("| a | b |\n| - | - |\n| 1 | 2 |"),
            "score": score,
        }
        if failed
        else {"score": score},
    )
    yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(CHECK))
    yield dg.Output(None, output_name="scored")


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
    for partition, score in [("a", 0.1), ("b", 0.9), ("c", 0.3), ("a", 0.2), ("b", 0.4)]:
        result = dg.materialize(
            [scored],
            instance=instance,
            partition_key=partition,
            run_config={"ops": {"scored": {"config": {"score": score}}}},
            raise_on_error=False,
        )
        assert result.success
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
