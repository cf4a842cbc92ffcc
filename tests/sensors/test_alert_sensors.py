"""gate_alert_sensor and run_failure_alert_sensor on a real instance, with the local notifier."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from pipeline_assets.backtest_stage import BACKTEST
from resources.dagster_private import (
    AssetCheckEvaluationPlanned,
    AssetCheckExecutionRecordStatus,
    DagsterEvent,
    DagsterEventType,
    make_new_run_id,
)
from pipeline_assets.partitions import trials_partitions_def
from pipeline_assets.stress_stage import STRESS
from resources.notifier import Alert, AlertDeliveryError, NotifierResource
from simulations.errors import ConfigurationError
from tests.conftest import add_complete_trials
from gauntlet.environment import build_resources
from tests.dagster_helpers import (
    Ticker,
    demo_gate_policy,
    demo_config,
    execute_request,
    local_definitions,
)

BACKTEST_GATE, CGE_GATE = BACKTEST.check, STRESS.check

SLOW = {"lookback": 480, "vol_lookback": 720, "target_bar_vol": 0.003}  # 59 trades: fails min_trades 100
GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}  # passes every gate
MIN_100_TRADES = demo_gate_policy({"backtest": {"min_trades": 100}})
REJECTED, ACCEPTED = "demo__t00000000", "demo__t00000001"


class RefusingNotifier(NotifierResource):
    """A notifier whose endpoint is down."""

    def notify(self, alert: Alert) -> bool:
        raise AlertDeliveryError(f"endpoint down for {alert.key}")


def _notifier(home: Path, gate_alerts: str) -> NotifierResource:
    """The local notifier (the alert log under ``home``) with ``gate_alerts`` set."""
    return build_resources(demo_config(home, notifier={"gate_alerts": gate_alerts}))["notifier"]


@pytest.fixture
def defs(optuna_url, tmp_path) -> dg.Definitions:
    """One rejected and one accepted trial; gate rejections alerted one by one (their mechanics)."""
    add_complete_trials(optuna_url, "demo", [0.1, 0.2], params=[SLOW, GOOD])
    return local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES, notifier=_notifier(tmp_path, "each"))


def _tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None, notifier: NotifierResource | None = None
) -> dg.SensorResult:
    resources = {**defs.resources, **({"notifier": notifier} if notifier else {})}
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as context:
        result = defs.resolve_sensor_def("gate_alert_sensor")(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _alerts(home: Path) -> list[dict]:
    lines = [json.loads(line) for line in (home / "alerts.jsonl").read_text().splitlines()]
    return [line["alert"] for line in lines if line["channel"] == "log"]


def _failed_records(instance: dg.DagsterInstance) -> list:
    return list(
        instance.event_log_storage.get_asset_check_execution_history(
            BACKTEST_GATE, limit=10, status={AssetCheckExecutionRecordStatus.FAILED}
        )
    )


def test_each_failed_gate_alerts_once_with_the_trial_and_the_reason(defs, shared_instance, tmp_path):
    ticker = Ticker(defs, shared_instance)
    ticker.tick_until_idle()
    (record,) = _failed_records(shared_instance)

    first = _tick(defs, shared_instance, cursor=None)
    (alert,) = _alerts(tmp_path)
    assert alert["kind"] == "gate_failed" and alert["trial"] == REJECTED and alert["study"] == "demo"
    assert alert["stage"] == "backtest_gate"
    assert alert["reason"] == record.evaluation.description and "n_trades" in alert["reason"]
    assert alert["key"] == f"gate:backtest_gate:{REJECTED}:{record.id}"
    assert alert["run_id"] == record.run_id
    [failed] = alert["details"]["failed_thresholds"]
    assert failed["threshold"] == "n_trades" and failed["limit"] == 100 and failed["value"] < 100  # numbers

    second = _tick(defs, shared_instance, cursor=first.cursor)
    assert second.skip_reason.skip_message == "no new failed gate"
    assert len(_alerts(tmp_path)) == 1
    # The rejected trial's cge_gate stays PLANNED in a finished run: settled, the watermark passes it.
    (never_evaluated,) = shared_instance.event_log_storage.get_asset_check_execution_history(
        CGE_GATE, limit=10, status={AssetCheckExecutionRecordStatus.PLANNED}
    )
    assert never_evaluated.partition == REJECTED
    assert json.loads(second.cursor)[CGE_GATE.to_user_string()]["after"] >= never_evaluated.id
    # A reset cursor re-reads the history; the notifier's ledger keeps it from alerting twice.
    _tick(defs, shared_instance, cursor=None)
    assert len(_alerts(tmp_path)) == 1


def test_a_failed_delivery_keeps_the_cursor_and_a_re_evaluation_alerts_again(defs, shared_instance, tmp_path):
    Ticker(defs, shared_instance).tick_until_idle()
    cursor = _tick(defs, shared_instance, cursor=None).cursor
    rerun = execute_request(
        defs, shared_instance, dg.RunRequest(partition_key=REJECTED, asset_selection=[BACKTEST_GATE.asset_key])
    )
    assert rerun.success
    newest = _failed_records(shared_instance)[0]

    with pytest.raises(AlertDeliveryError):
        _tick(defs, shared_instance, cursor=cursor, notifier=RefusingNotifier())
    assert len(_alerts(tmp_path)) == 1

    delivered = _tick(defs, shared_instance, cursor=cursor)
    alerts = _alerts(tmp_path)
    assert [a["trial"] for a in alerts] == [REJECTED, REJECTED]
    assert alerts[1]["key"] == f"gate:backtest_gate:{REJECTED}:{newest.id}" != alerts[0]["key"]
    assert alerts[1]["run_id"] == rerun.run_id
    _tick(defs, shared_instance, cursor=delivered.cursor)
    assert len(_alerts(tmp_path)) == 2


def _report(instance: dg.DagsterInstance, run: dg.DagsterRun, event_type: DagsterEventType, data) -> None:
    event = DagsterEvent(event_type_value=event_type.value, job_name=run.job_name, event_specific_data=data)
    instance.report_dagster_event(event, run_id=run.run_id)


def test_a_gate_failed_late_by_a_run_still_in_flight_is_not_skipped(defs, instance, tmp_path):
    # Run A plans its gate row first (lower id) but fails it only after run B's failure, with a
    # higher id, was alerted: a watermark at B's id would skip A's failure.
    early, late = "demo__t00000005", "demo__t00000006"
    instance.add_dynamic_partitions("trials", [early, late])
    run_a, run_b = (
        instance.add_run(
            dg.DagsterRun(job_name="trial_job", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED)
        )
        for _ in range(2)
    )
    for run, key in ((run_a, early), (run_b, late)):
        planned = AssetCheckEvaluationPlanned(
            asset_key=BACKTEST_GATE.asset_key,
            check_name=BACKTEST_GATE.name,
            partitions_subset=trials_partitions_def.subset_with_partition_keys([key]),
        )
        _report(instance, run, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED, planned)

    def fail(run: dg.DagsterRun, key: str) -> None:
        evaluation = dg.AssetCheckEvaluation(
            asset_key=BACKTEST_GATE.asset_key,
            check_name=BACKTEST_GATE.name,
            passed=False,
            partition=key,
            description=f"{key} rejected",
        )
        _report(instance, run, DagsterEventType.ASSET_CHECK_EVALUATION, evaluation)

    fail(run_b, late)
    first = _tick(defs, instance, cursor=None)
    assert [a["trial"] for a in _alerts(tmp_path)] == [late]
    fail(run_a, early)
    second = _tick(defs, instance, cursor=first.cursor)
    assert [a["trial"] for a in _alerts(tmp_path)] == [late, early]
    assert [a["reason"] for a in _alerts(tmp_path)] == [f"{late} rejected", f"{early} rejected"]
    _tick(defs, instance, cursor=second.cursor)
    assert len(_alerts(tmp_path)) == 2


def test_rejections_are_alerted_as_one_digest_per_study_by_default(optuna_url, shared_instance, tmp_path):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3, 0.4], params=[SLOW, GOOD, SLOW, SLOW])
    add_complete_trials(optuna_url, "alt", [0.5], params=[SLOW])
    defs = local_definitions(optuna_url, tmp_path, gate_policy=MIN_100_TRADES)
    assert defs.resources["notifier"].gate_alerts == "digest"
    Ticker(defs, shared_instance).tick_until_idle()

    first = _tick(defs, shared_instance, cursor=None)
    assert first.skip_reason.skip_message == "4 rejection(s) in 2 gate alert(s) delivered (digest)"
    digests = {alert["study"]: alert for alert in _alerts(tmp_path)}
    assert set(digests) == {"demo", "alt"}
    demo = digests["demo"]
    assert demo["kind"] == "gates_failed" and demo["trial"] is None
    assert demo["reason"].startswith("3 trial(s) rejected (backtest_gate 3): demo__t00000000: backtest_gate: n_trades")
    listed = demo["details"]["rejections"]
    assert [r["trial"] for r in listed] == ["demo__t00000000", "demo__t00000002", "demo__t00000003"]
    assert all(r["gate"] == "backtest_gate" and "n_trades" in r["reason"] for r in listed)
    assert [t["threshold"] for t in listed[0]["failed_thresholds"]] == ["n_trades"]
    assert demo["details"]["by_gate"] == {"backtest_gate": 3} and demo["details"]["rejected"] == 3
    assert digests["alt"]["trial"] == "alt__t00000000"  # a digest of one names its trial

    assert _tick(defs, shared_instance, cursor=first.cursor).skip_reason.skip_message == "no new failed gate"
    _tick(defs, shared_instance, cursor=None)  # a reset cursor: the same digests, which the ledger has
    assert len(_alerts(tmp_path)) == 2


def test_rejections_can_go_unalerted(defs, optuna_url, shared_instance, tmp_path):
    Ticker(defs, shared_instance).tick_until_idle()
    result = _tick(defs, shared_instance, cursor=None, notifier=_notifier(tmp_path, "off"))
    assert result.skip_reason.skip_message == "1 rejection(s), not alerted (notifier.gate_alerts: off)"
    assert not (tmp_path / "alerts.jsonl").exists() or _alerts(tmp_path) == []
    assert _tick(defs, shared_instance, cursor=result.cursor).skip_reason.skip_message == "no new failed gate"


def test_an_unreadable_cursor_fails_the_tick_with_a_configuration_error(defs, instance):
    with pytest.raises(ConfigurationError, match="gate_alert_sensor cursor"):
        _tick(defs, instance, cursor='{"backtest_results:backtest_gate": {"after": "x"}}')


def test_a_failed_run_alerts_once_with_its_trial_and_error(defs, shared_instance, tmp_path):
    missing = "demo__t00000099"  # the study has trials 0 and 1 only
    shared_instance.add_dynamic_partitions("trials", [missing])
    result = execute_request(defs, shared_instance, dg.RunRequest(partition_key=missing))
    assert not result.success

    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    for _ in range(2):  # from the start each time: the second delivery of the same failure is deduplicated
        with dg.build_sensor_context(instance=shared_instance, definitions=defs, resources=defs.resources) as context:
            sensor(context)
    (alert,) = _alerts(tmp_path)
    assert alert["key"] == f"run:{result.run_id}" and alert["kind"] == "run_failed"
    assert alert["trial"] == missing and alert["study"] == "demo" and alert["stage"] == "trial_gauntlet"
    assert missing in alert["reason"] and "has no trial numbered" in alert["reason"]
    assert alert["details"]["trials"] == [missing] and alert["details"]["job"] == "trial_job"
