import dagster as dg
import pytest

from pipeline_assets.optuna_trial_stage import snapshot_artifact_key
from pipeline_assets.trial_assets import trial_gauntlet
from resources.artifacts import LocalArtifactStoreResource
from simulations.trial import TrialSnapshot
from tests.conftest import add_complete_trials
from tests.dagster_helpers import (
    shared_assets,
    Ticker,
    execute_request,
    local_definitions,
    local_resources,
    materialized,
)


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


def _materialize_optuna_trial(defs, instance, optuna_url, tmp_path, key):
    return dg.materialize(
        [*shared_assets(), trial_gauntlet],
        selection=["optuna_trial"],
        instance=instance,
        partition_key=key,
        resources=local_resources(optuna_url, tmp_path),
    )


def test_optuna_trial_materializes_per_partition_with_the_stored_snapshot(optuna_url, tmp_path, instance):
    study = add_complete_trials(optuna_url, "demo", [0.5, 0.6])
    defs = local_definitions(optuna_url, tmp_path)
    instance.add_dynamic_partitions("trials", ["demo__t00000001"])
    result = _materialize_optuna_trial(defs, instance, optuna_url, tmp_path, "demo__t00000001")
    assert result.success
    [mat] = result.asset_materializations_for_node("trial_gauntlet")
    assert mat.partition == "demo__t00000001" and mat.asset_key == dg.AssetKey("optuna_trial")
    stored = study.trials[1]
    assert mat.metadata["trial_number"].value == 1
    assert mat.metadata["objective"].value == pytest.approx(stored.value)
    assert mat.tags["dagster/data_version"] == mat.metadata["content_hash"].value

    store = LocalArtifactStoreResource(base_dir=str(tmp_path / "artifacts"))
    snap = TrialSnapshot.from_json(store.read_bytes(snapshot_artifact_key("demo__t00000001")).decode())
    assert snap.params == stored.params and snap.values == tuple(stored.values)
    assert snap.user_attrs == stored.user_attrs

    # Same inputs, same data version: rematerializing changes nothing.
    again = _materialize_optuna_trial(defs, instance, optuna_url, tmp_path, "demo__t00000001")
    [mat2] = again.asset_materializations_for_node("trial_gauntlet")
    assert mat2.tags["dagster/data_version"] == mat.tags["dagster/data_version"]


def test_batch_run_records_one_materialization_per_trial(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3, 0.4])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    trial_runs = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert len(trial_runs) == 1
    mats = [m for m in trial_runs[0].asset_materializations_for_node("trial_gauntlet") if m.asset_key.path == ["optuna_trial"]]
    assert sorted(m.partition for m in mats) == [f"demo__t{i:08d}" for i in range(4)]
    assert materialized(instance, "optuna_trial") == {m.partition for m in mats}


def test_a_bad_trial_fails_the_run_naming_it_while_the_others_materialize(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    defs = local_definitions(optuna_url, tmp_path)
    # A partition whose trial does not exist (deleted study rows, mistyped UI backfill).
    instance.add_dynamic_partitions("trials", ["demo__t00000000", "demo__t00000001", "demo__t00000009"])
    request = dg.RunRequest(
        tags={
            "dagster/asset_partition_range_start": "demo__t00000000",
            "dagster/asset_partition_range_end": "demo__t00000009",
        }
    )
    result = execute_request(defs, instance, request)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "demo__t00000009" in failure.to_string()
    assert materialized(instance, "optuna_trial") == {"demo__t00000000", "demo__t00000001"}


def test_unknown_study_prefix_is_a_typed_error(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1])
    defs = local_definitions(optuna_url, tmp_path)
    instance.add_dynamic_partitions("trials", ["gone__t00000000"])
    result = execute_request(defs, instance, dg.RunRequest(partition_key="gone__t00000000"))
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "TrialDataError" in message and "gone" in message


def test_deterministic_errors_are_not_retried(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1])
    defs = local_definitions(optuna_url, tmp_path)
    instance.add_dynamic_partitions("trials", ["gone__t00000000"])
    result = execute_request(defs, instance, dg.RunRequest(partition_key="gone__t00000000"))
    assert not result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []


def test_transient_errors_are_raised_for_the_retry_policy_and_deterministic_ones_are_not():
    from pipeline_assets.errors import fail_for
    from simulations.errors import StorageUnavailableError, TransientError, TrialDataError

    with pytest.raises(TransientError, match="t1"):
        fail_for([StorageUnavailableError("database is locked", trial="t1")])
    with pytest.raises(dg.Failure) as failure:
        fail_for([StorageUnavailableError("locked", trial="t1"), TrialDataError("bad params", trial="t2")])
    assert failure.value.allow_retries is False
    assert "t1" in failure.value.description and "t2" in failure.value.description
    fail_for([])  # nothing failed: nothing raised
