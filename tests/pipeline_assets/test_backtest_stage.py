"""Gate 1 as a user sees it: per-trial results and gate verdicts, in batches and alone."""

import json

import dagster as dg
import pytest

from pipeline_assets.trial_assets import trial_gauntlet
from resources.artifacts import LocalArtifactStoreResource
from resources.gate_policy import GatePolicyResource
from tests.conftest import add_complete_trials
from tests.dagster_helpers import shared_assets, Ticker, local_definitions, local_resources, materialized

GOOD = {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003}


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.partition: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == "backtest_gate"
    }


def test_every_trial_gets_its_own_metrics_and_gate_result(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5, 0.4, 0.3])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    keys = {f"demo__t{i:08d}" for i in range(3)}
    assert materialized(instance, "backtest_results") == keys
    checks = _checks(run)
    assert set(checks) == keys
    for key, check in checks.items():
        meta = check.metadata
        assert meta["verdict"].value in {"pass", "FAIL"}
        assert meta["phase"].value == "early"
        assert "thresholds" in meta and check.description
    store = LocalArtifactStoreResource(base_dir=str(tmp_path / "artifacts"))
    payload = json.loads(store.read_bytes("trials/demo__t00000000/backtest_results.json"))
    assert set(payload["data_hashes"]) == {"train", "backtest", "forward"}
    assert payload["study_trials"] == 1
    assert store.exists("trials/demo__t00000000/backtest_equity.parquet")
    assert store.exists("trials/demo__t00000000/backtest_trades.parquet")


def test_a_rejection_is_a_failed_check_not_a_failed_run(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5, 0.4])
    strict = GatePolicyResource(overrides={"backtest": {"min_trades": 100_000}})
    defs = local_definitions(optuna_url, tmp_path, gate_policy=strict)
    ticker = Ticker(defs, instance)
    ticker.tick_until_idle()
    assert all(r.success for r in ticker.results)
    checks = _checks([r for r in ticker.results if r.job_def.name == "trial_job"][0])
    assert not any(c.passed for c in checks.values())
    assert all("n_trades" in c.description and "short by" in c.description for c in checks.values())


def test_rematerializing_a_trial_gives_bit_identical_metrics(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5, 0.4])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    store = LocalArtifactStoreResource(base_dir=str(tmp_path / "artifacts"))
    first = store.read_bytes("trials/demo__t00000001/backtest_results.json")
    result = dg.materialize(
        [*shared_assets(), trial_gauntlet],
        selection=["backtest_results"],
        instance=instance,
        partition_key="demo__t00000001",
        resources=local_resources(optuna_url, tmp_path),
    )
    assert result.success
    assert store.read_bytes("trials/demo__t00000001/backtest_results.json") == first
    versions = [
        r.asset_materialization.tags["dagster/data_version"]
        for r in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("backtest_results"), asset_partitions=["demo__t00000001"]),
            limit=2,
        ).records
    ]
    assert len(versions) == 2 and versions[0] == versions[1]


def test_invalid_params_fail_the_run_naming_the_trial_and_spare_the_others(optuna_url, tmp_path, instance):
    import optuna

    add_complete_trials(optuna_url, "demo", [0.5])
    study = optuna.load_study(study_name="demo", storage=optuna_url)
    dist = {"lookback": optuna.distributions.IntDistribution(1, 500, log=True)}
    study.add_trial(
        optuna.trial.create_trial(params={"lookback": 1}, distributions=dist, value=0.1, user_attrs={"strategy": "momentum"})
    )
    add_complete_trials(optuna_url, "demo", [0.3])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert not run.success
    message = run.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "demo__t00000001" in message and "backtest_results" in message and "momentum" in message
    assert materialized(instance, "backtest_results") == {"demo__t00000000", "demo__t00000002"}
    assert materialized(instance, "optuna_trial") == {f"demo__t{i:08d}" for i in range(3)}


def test_a_trial_without_a_strategy_is_a_typed_error(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5], strategy="no_such_strategy")
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert not run.success
    message = run.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "TrialDataError" in message and "no_such_strategy" in message
    assert materialized(instance, "backtest_results") == set()


def test_backtest_alone_needs_the_snapshot_artifact(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.5])
    instance.add_dynamic_partitions("trials", ["demo__t00000000"])
    result = dg.materialize(
        [*shared_assets(), trial_gauntlet],
        selection=["backtest_results"],
        instance=instance,
        partition_key="demo__t00000000",
        resources=local_resources(optuna_url, tmp_path),
        raise_on_error=False,
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "optuna_trial.json" in message and "missing" in message
