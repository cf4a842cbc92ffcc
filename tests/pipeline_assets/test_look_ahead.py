"""A strategy that looks ahead fails its trial's run before any gate, naming the trial, the strategy and the bar."""

import dagster as dg
import optuna
import pytest

from resources.strategy_plugins import StrategyPluginsResource
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, local_definitions, materialized

PEEKING = "tests.simulations.look_ahead_strategies:PeekingStrategy"
GOOD = {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003}
KEYS = ["demo__t00000000", "demo__t00000001", "demo__t00000002"]
LATER_ASSETS = ("cge_stress_report", "paper_trading_grade", "deployment_record")


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


def _add_peeking_trial(url: str) -> None:
    study = optuna.load_study(study_name="demo", storage=url)
    study.add_trial(
        optuna.trial.create_trial(
            params={"horizon": 1}, distributions={"horizon": optuna.distributions.IntDistribution(1, 5)},
            value=9.9, user_attrs={"strategy": "peeking"},
        )
    )


def test_a_peeking_plug_in_fails_its_run_before_any_gate_and_spares_its_neighbours(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.3], params=[GOOD])
    _add_peeking_trial(optuna_url)
    add_complete_trials(optuna_url, "demo", [0.2], params=[GOOD])
    plugins = StrategyPluginsResource(import_paths=[PEEKING], use_entry_points=False)
    ticker = Ticker(local_definitions(optuna_url, tmp_path, strategy_plugins=plugins), instance)
    ticker.tick_until_idle()

    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert not run.success  # an infrastructure error, never a pass or a rejection
    [failure] = run.get_step_failure_events()
    data = failure.step_failure_data
    message = data.error.to_string()
    assert "[trial demo__t00000001, stage backtest_results] look-ahead in strategy 'peeking'" in message
    assert "of the evaluated window" in message and "the first bar that differs" in message
    assert data.user_failure_data.metadata["error_types"].value == ["LookAheadError"]
    assert data.user_failure_data.metadata["transient"].value is False

    # The peeking trial has no result and no verdict at any gate; the others went through.
    assert materialized(instance, "optuna_trial") == set(KEYS)
    assert materialized(instance, "backtest_results") == {KEYS[0], KEYS[2]}
    for asset in LATER_ASSETS:
        assert KEYS[1] not in materialized(instance, asset)
    checks = instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(dg.AssetKey("backtest_results"), "backtest_gate")]
    )
    judged = {i.partition_key for i in checks if i.latest_execution_status.value != "PLANNED"}
    assert judged == {KEYS[0], KEYS[2]}


def test_a_peeking_trial_alone_fails_its_run_with_nothing_recorded_after_its_snapshot(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [])
    _add_peeking_trial(optuna_url)
    plugins = StrategyPluginsResource(import_paths=[PEEKING], use_entry_points=False)
    ticker = Ticker(local_definitions(optuna_url, tmp_path, strategy_plugins=plugins), instance)
    ticker.tick_until_idle()
    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert not run.success
    assert "look-ahead in strategy 'peeking'" in run.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert materialized(instance, "optuna_trial") == {KEYS[0]}
    for asset in ("backtest_results", *LATER_ASSETS):
        assert materialized(instance, asset) == set()
