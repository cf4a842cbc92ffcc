"""The end of the gauntlet as a user sees it: decisions in the registry, once per input."""

import dagster as dg
import pytest

from pipeline_assets.trial_assets import trial_gauntlet
from resources.deployment_policy import DeploymentPolicyResource
from resources.gate_policy import GatePolicyResource
from resources.registry import SqlDeploymentRegistryResource
from tests.conftest import add_complete_trials
from tests.dagster_helpers import shared_assets, Ticker, local_definitions, local_resources, materialized

# Passes all three gates on the default market and scenarios (paper grade A).
GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
SLOW = {"lookback": 480, "vol_lookback": 720, "target_bar_vol": 0.003}
KEY = "demo__t00000000"


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


def _registry(tmp_path) -> SqlDeploymentRegistryResource:
    return SqlDeploymentRegistryResource(database_url=f"sqlite:///{tmp_path / 'gauntlet.db'}", live_capacity=3)


def test_a_trial_passing_every_gate_is_promoted_and_recorded(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    Ticker(local_definitions(optuna_url, tmp_path), instance).tick_until_idle()
    assert materialized(instance, "deployment_record") == {KEY}
    registry = _registry(tmp_path)
    [record] = registry.decisions(partition_key=KEY)
    assert record.decision == "promoted" and record.decided_by == "pipeline"
    assert record.paper_mode == "holdout"  # these tests replay the forward window (HOLDOUT_SECTIONS)
    assert set(record.verdicts) == {"backtest_gate", "cge_gate", "paper_trading_gate"}
    assert {"train", "backtest", "forward", "cge_sam", "paper_forward"} <= set(record.data_hashes)
    assert [e.partition_key for e in registry.live()] == [KEY]


def test_a_trial_failing_a_gate_gets_no_deployment_record(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], params=[SLOW])
    strict = GatePolicyResource(overrides={"backtest": {"min_trades": 100}})
    Ticker(local_definitions(optuna_url, tmp_path, gate_policy=strict), instance).tick_until_idle()
    assert materialized(instance, "deployment_record") == set()
    assert _registry(tmp_path).decisions() == []


def test_rematerializing_with_unchanged_inputs_never_duplicates_a_decision(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    Ticker(local_definitions(optuna_url, tmp_path), instance).tick_until_idle()
    for _ in range(2):
        result = dg.materialize(
            [*shared_assets(), trial_gauntlet],
            selection=["backtest_results", "cge_stress_report", "paper_trading_grade", "deployment_record"],
            instance=instance,
            partition_key=KEY,
            resources=local_resources(optuna_url, tmp_path),
        )
        assert result.success
    assert len(_registry(tmp_path).decisions(partition_key=KEY)) == 1


def test_dry_run_records_what_it_would_do_and_changes_nothing_live(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    dry = DeploymentPolicyResource(dry_run=True, paper_modes=["forward", "holdout"])
    Ticker(local_definitions(optuna_url, tmp_path, deployment_policy=dry), instance).tick_until_idle()
    [record] = _registry(tmp_path).decisions(partition_key=KEY)
    assert record.decision == "dry_run" and record.would_have == "promoted"
    assert _registry(tmp_path).live() == []


def test_a_holdout_grade_is_held_by_default_and_the_record_says_so(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    forward_only = DeploymentPolicyResource()
    Ticker(local_definitions(optuna_url, tmp_path, deployment_policy=forward_only), instance).tick_until_idle()
    [record] = _registry(tmp_path).decisions(partition_key=KEY)
    assert (record.decision, record.paper_mode, record.grade) == ("held_manual", "holdout", "A")
    assert "in holdout paper trading, which deployment.paper_modes ['forward'] does not admit" in record.reason
    assert _registry(tmp_path).live() == []
    [event] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("deployment_record"), asset_partitions=[KEY]), limit=1
    ).records
    metadata = event.asset_materialization.metadata
    assert metadata["paper_mode"].value == "holdout" and metadata["decision"].value == "held_manual"
    [grade] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("paper_trading_grade"), asset_partitions=[KEY]), limit=1
    ).records
    assert grade.asset_materialization.metadata["paper_mode"].value == "holdout"


def test_the_emergency_stop_holds_every_promotion(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    _registry(tmp_path).set_emergency_stop(stopped=True, by="user:ops", reason="market halt")
    Ticker(local_definitions(optuna_url, tmp_path), instance).tick_until_idle()
    [record] = _registry(tmp_path).decisions(partition_key=KEY)
    assert record.decision == "held_emergency_stop"
    assert _registry(tmp_path).live() == []
