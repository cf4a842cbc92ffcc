"""Run-failure alerts are delivered at least once: a failed delivery is retried on the next
tick until it succeeds (issue 20, item 7).

The fault: `run_failure_alert_sensor` was Dagster's run-failure sensor, whose cursor Dagster
advances past a run even when the sensor raised for it; an alert whose webhook was down was
never sent, although the README promised at-least-once delivery. Each tick here is evaluated
as the daemon evaluates it, carrying the cursor of the previous successful tick.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from resources.notifier import Alert, AlertDeliveryError, NotifierResource
from tests.conftest import add_complete_trials
from tests.dagster_helpers import execute_request, local_definitions

MISSING = "demo__t00000099"  # the study has trial 0 only: a run over this key fails


class EndpointDown(NotifierResource):
    """A notifier whose endpoint is unreachable."""

    def notify(self, alert: Alert) -> bool:
        raise AlertDeliveryError(f"endpoint down for {alert.key}")


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


@pytest.fixture
def defs(optuna_url: str, tmp_path: Path) -> dg.Definitions:
    add_complete_trials(optuna_url, "demo", [0.1])
    return local_definitions(optuna_url, tmp_path)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None, notifier=None) -> str | None:
    """One evaluation as the daemon makes it; returns the cursor it stores (it raises if the tick failed)."""
    resources = {**defs.resources, **({"notifier": notifier} if notifier else {})}
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as context:
        return sensor.evaluate_tick(context).cursor


def _run_alerts(home: Path) -> list[dict]:
    path = home / "alerts.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line["alert"] for line in lines if line["channel"] == "log" and line["alert"]["kind"] == "run_failed"]


def test_a_run_alert_that_could_not_be_delivered_is_retried_until_it_is(defs, instance, tmp_path):
    cursor = _tick(defs, instance, None)
    instance.add_dynamic_partitions("trials", [MISSING])
    failed = execute_request(defs, instance, dg.RunRequest(partition_key=MISSING))
    assert not failed.success

    for _ in range(2):  # the endpoint is down for two ticks: each fails visibly, nothing is lost
        with pytest.raises(Exception, match="endpoint down"):
            _tick(defs, instance, cursor, notifier=EndpointDown())
    assert _run_alerts(tmp_path) == []

    cursor = _tick(defs, instance, cursor)
    (alert,) = _run_alerts(tmp_path)
    assert alert["key"] == f"run:{failed.run_id}" and alert["trial"] == MISSING
    assert "has no trial numbered" in alert["reason"]
    _tick(defs, instance, cursor)
    _tick(defs, instance, None)  # a reset cursor: the ledger keeps it from going out twice
    assert len(_run_alerts(tmp_path)) == 1
