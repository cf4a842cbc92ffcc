"""Per-trial gating: a trial that fails a gate stops there; its neighbours in the run go on."""

import dagster as dg
import pytest

from pipeline_assets.trial_assets import trial_gauntlet
from tests.conftest import add_complete_trials
from tests.dagster_helpers import (
    shared_assets,
    Ticker,
    demo_gate_policy,
    execute_request,
    local_definitions,
    local_resources,
    materialized,
)

# Backtest trade counts on the default market: lookback 6 -> 776, 480 -> 59, 240 -> 136.
FAST = {"lookback": 6, "vol_lookback": 24, "target_bar_vol": 0.003}
SLOW = {"lookback": 480, "vol_lookback": 720, "target_bar_vol": 0.003}
GOOD = {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003}
MIN_100_TRADES = demo_gate_policy({"backtest": {"min_trades": 100}})
KEYS = ["demo__t00000000", "demo__t00000001", "demo__t00000002"]


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


def _check_results(instance, check: str) -> dict[str, bool]:
    key = dg.AssetCheckKey(dg.AssetKey("cge_stress_report" if check == "cge_gate" else "backtest_results"), check)
    infos = instance.event_log_storage.get_asset_check_partition_info([key])
    # PLANNED: part of a run's range but never evaluated (the trial stopped at an earlier gate).
    return {
        i.partition_key: i.latest_execution_status.value == "SUCCEEDED"
        for i in infos
        if i.latest_execution_status.value != "PLANNED"
    }


def test_failing_gate_one_stops_that_trial_only_in_a_batch(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3], params=[FAST, SLOW, GOOD])
    ticker = Ticker(local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES), instance)
    ticker.tick_until_idle()
    trial_runs = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert len(trial_runs) == 1 and trial_runs[0].success  # a rejection never fails the run
    assert _check_results(instance, "backtest_gate") == {KEYS[0]: True, KEYS[1]: False, KEYS[2]: True}
    assert materialized(instance, "backtest_results") == set(KEYS)
    assert materialized(instance, "cge_stress_report") == {KEYS[0], KEYS[2]}
    assert set(_check_results(instance, "cge_gate")) == {KEYS[0], KEYS[2]}


def test_the_stress_assets_show_the_instrument_and_the_drawdown_relative_to_holding_it(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1], params=[GOOD])
    Ticker(local_definitions(optuna_url, tmp_path), instance).tick_until_idle()
    scenarios = instance.get_latest_materialization_event(dg.AssetKey("cge_scenarios")).asset_materialization.metadata
    instrument = scenarios["instrument_volatility"].value
    # The 200 paths centre on the instrument's own realised volatility (README, "Stress on the instrument").
    assert scenarios["median_path_volatility"].value == pytest.approx(instrument, rel=0.15)
    market = instance.get_latest_materialization_event(dg.AssetKey("market_data")).asset_materialization
    windows = {row.data["window"]: row.data for row in market.metadata["windows"].value.records}
    assert float(windows["backtest"]["annualised_vol"]) == pytest.approx(instrument, rel=1e-3)
    report = instance.get_latest_materialization_event(dg.AssetKey("cge_stress_report")).asset_materialization
    measures = {row.data["measure"]: row.data for row in report.metadata["summary"].value.records}
    assert {"buy_hold_median_max_drawdown", "median_drawdown_multiple"} <= set(measures)
    assert report.metadata["median_drawdown_multiple"].value > 0


def test_batched_and_one_per_run_outcomes_are_identical(optuna_url, tmp_path, shared_instance_template):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3], params=[FAST, SLOW, GOOD])
    with shared_instance_template.open(tmp_path / "a_instance", tmp_path / "a") as batched_instance:
        batched = Ticker(local_definitions(optuna_url, tmp_path / "a", gate_policy=MIN_100_TRADES), batched_instance)
        batched.tick_until_idle()
        batch_checks = {c: _check_results(batched_instance, c) for c in ("backtest_gate", "cge_gate")}

    with shared_instance_template.open(tmp_path / "b_instance", tmp_path / "b") as single_instance:
        defs = local_definitions(optuna_url, tmp_path / "b", gate_policy=MIN_100_TRADES)
        single_instance.add_dynamic_partitions("trials", KEYS)
        for key in KEYS:
            assert execute_request(defs, single_instance, dg.RunRequest(partition_key=key)).success
        single_checks = {c: _check_results(single_instance, c) for c in ("backtest_gate", "cge_gate")}
    assert single_checks == batch_checks
    for key in KEYS:
        for name in ("backtest_results.json", "cge_stress_report.json"):
            a, b = tmp_path / "a" / "artifacts" / "trials" / key / name, tmp_path / "b" / "artifacts" / "trials" / key / name
            assert a.exists() == b.exists()
            if a.exists():
                assert a.read_bytes() == b.read_bytes(), (key, name)


def test_rematerializing_a_later_stage_alone_respects_the_earlier_gate(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3], params=[FAST, SLOW, GOOD])
    Ticker(local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES), instance).tick_until_idle()
    result = execute_request(
        local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES),
        instance,
        dg.RunRequest(
            tags={
                "dagster/asset_partition_range_start": KEYS[0],
                "dagster/asset_partition_range_end": KEYS[2],
            },
            asset_selection=[dg.AssetKey("cge_stress_report")],
        ),
    )
    assert result.success
    stressed = {m.partition for m in result.asset_materializations_for_node("trial_gauntlet")}
    assert stressed == {KEYS[0], KEYS[2]}


def test_changing_thresholds_and_rematerializing_flips_the_verdict(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1], params=[SLOW])
    Ticker(local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES), instance).tick_until_idle()
    assert _check_results(instance, "backtest_gate") == {KEYS[0]: False}
    result = dg.materialize(
        [*shared_assets(), trial_gauntlet],
        selection=["backtest_results", "cge_stress_report"],
        instance=instance,
        partition_key=KEYS[0],
        resources=local_resources(optuna_url, tmp_path),
    )
    assert result.success
    assert _check_results(instance, "backtest_gate") == {KEYS[0]: True}
    assert KEYS[0] in materialized(instance, "cge_stress_report")


def test_gates_two_and_three_stop_their_trials_only(optuna_url, tmp_path, instance):
    # On the default market: lookback 12 fails the CGE gate, 160 is graded C on paper, 123 passes all.
    fails_cge = {"lookback": 12, "vol_lookback": 168, "target_bar_vol": 0.003}
    grade_c = {"lookback": 160, "vol_lookback": 168, "target_bar_vol": 0.003}
    passes = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3], params=[fails_cge, grade_c, passes])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    assert all(r.success for r in ticker.results)
    assert materialized(instance, "cge_stress_report") == set(KEYS)
    assert _check_results(instance, "cge_gate") == {KEYS[0]: False, KEYS[1]: True, KEYS[2]: True}
    assert materialized(instance, "paper_trading_grade") == {KEYS[1], KEYS[2]}
    paper = dg.AssetCheckKey(dg.AssetKey("paper_trading_grade"), "paper_trading_gate")
    infos = instance.event_log_storage.get_asset_check_partition_info([paper])
    verdicts = {i.partition_key: i.latest_execution_status.value for i in infos if i.latest_execution_status.value != "PLANNED"}
    assert verdicts == {KEYS[1]: "FAILED", KEYS[2]: "SUCCEEDED"}
    assert materialized(instance, "deployment_record") == {KEYS[2]}


def test_rematerializing_one_stage_of_one_trial_logs_no_missing_output(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1], params=[GOOD])
    defs = local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES)
    Ticker(defs, instance).tick_until_idle()
    result = execute_request(
        defs, instance, dg.RunRequest(partition_key=KEYS[0], asset_selection=[dg.AssetKey("backtest_results")])
    )
    assert result.success
    messages = [e.message or "" for e in instance.all_logs(result.run_id)]
    assert not [m for m in messages if "did not yield or return expected outputs" in m]
    evaluations = [
        e.dagster_event.asset_check_evaluation_data
        for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    assert [(ev.check_name, ev.partition, ev.passed) for ev in evaluations] == [("backtest_gate", KEYS[0], True)]
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("backtest_results"), asset_partitions=[KEYS[0]]), limit=1
    ).records
    assert evaluations[0].target_materialization_data.storage_id == record.storage_id
    assert record.run_id == result.run_id
