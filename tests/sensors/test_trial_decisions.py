"""Every COMPLETE trial gets exactly one final decision, with nothing manual (issue 20, item 5).

Each test reproduces a way a trial slipped through the `optuna_trial_sensor`: a partial or dry
`gauntlet run`, a run that failed on a transient error past its retry budget, a failure older
than "the newest 100", and one unreadable trial failing the tick for every study.
"""

import json
import sqlite3
import time

import dagster as dg
import pytest

from resources.dagster_private import (
    PARENT_RUN_ID_TAG,
    RUN_FAILURE_REASON_TAG,
    WILL_RETRY_TAG,
    DagsterEvent,
    EventLogEntry,
    SerializableErrorInfo,
    StepFailureData,
    UserFailureData,
    create_run_for_test,
)
from gauntlet.run import SOURCE, SOURCE_TAG
from pipeline_assets.trial_assets import DRY_RUN_TAG
from sensors import optuna_trial_sensor
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, demo_gate_policy, local_definitions, partitions

#: Every gate disabled (each passes visibly), so a trial reaches `deployment_record`.
NO_GATES = {"backtest": {"enabled": False}, "cge": {"enabled": False}, "paper": {"enabled": False}}


@pytest.fixture
def instance(shared_instance):
    """Every trial here waits for nothing: the default market's shared assets are built."""
    return shared_instance


def _ticker(optuna_url, tmp_path, instance, **overrides) -> Ticker:
    return Ticker(local_definitions(optuna_url, tmp_path, **overrides), instance)


def _gauntlet_run(ticker: Ticker, key: str, *, until: str | None = None, dry_run: bool = False) -> None:
    """What `gauntlet run` does for one trial: a run tagged with its source, maybe partial or dry."""
    ticker.instance.add_dynamic_partitions("trials", [key])
    tags = {"dagster/partition": key, SOURCE_TAG: SOURCE}
    if dry_run:
        tags[DRY_RUN_TAG] = "true"
    selection = [dg.AssetKey("optuna_trial"), dg.AssetKey(until)] if until else None
    job = ticker.defs.resolve_job_def("trial_job")
    assert job.execute_in_process(instance=ticker.instance, tags=tags, asset_selection=selection).success


def _requested(result: dg.SensorResult) -> list[str]:
    return [_requested_key(r) for r in result.run_requests or []]


def _owed(ticker: Ticker) -> dict[str, list]:
    """The cursor's trials owed a decision: key → [study, attempts, not before]."""
    return json.loads(ticker.cursor or "{}").get("owed", {})


def _make_due(ticker: Ticker) -> None:
    """Time passes: every backoff has run out."""
    data = json.loads(ticker.cursor or "{}")
    for entry in data.get("owed", {}).values():
        entry[2] = 0.0
    ticker.cursor = json.dumps(data)


def test_a_partial_run_does_not_consume_the_trial(optuna_url, tmp_path, instance):
    ticker = _ticker(optuna_url, tmp_path, instance)
    add_complete_trials(optuna_url, "demo", [0.1])
    _gauntlet_run(ticker, "demo__t00000000", until="backtest_results")
    result = ticker.tick()
    assert _requested(result) == ["demo__t00000000"]
    assert all(r.success for r in ticker.results)
    assert ticker.tick().run_requests in (None, [])  # decided now: never again


def test_a_dry_run_does_not_consume_the_trial_but_a_real_decision_does(optuna_url, tmp_path, instance):
    ticker = _ticker(optuna_url, tmp_path, instance, gate_policy=demo_gate_policy(NO_GATES))
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    _gauntlet_run(ticker, "demo__t00000000", dry_run=True)
    _gauntlet_run(ticker, "demo__t00000001")
    assert _requested(ticker.tick()) == ["demo__t00000000"]
    assert ticker.tick().run_requests in (None, [])


def _fail_run(instance, key: str, *, reason: str, error: str | None = None, deterministic: bool = False) -> str:
    """A `trial_job` run of ``key`` that failed, Dagster's run retries exhausted."""
    run = create_run_for_test(
        instance,
        job_name="trial_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": key, WILL_RETRY_TAG: "false", RUN_FAILURE_REASON_TAG: reason},
    )
    if error is not None:
        failure = StepFailureData(
            error=SerializableErrorInfo(message=f"{error}: boom", stack=[], cls_name=error),
            user_failure_data=UserFailureData(label="intentional-failure", description="boom", metadata={})
            if deterministic
            else None,
        )
        instance.store_event(
            EventLogEntry(
                error_info=None,
                level="ERROR",
                user_message="",
                run_id=run.run_id,
                timestamp=time.time(),
                job_name="trial_job",
                step_key="trial_gauntlet",
                dagster_event=DagsterEvent(
                    event_type_value=dg.DagsterEventType.STEP_FAILURE.value,
                    job_name="trial_job",
                    step_key="trial_gauntlet",
                    event_specific_data=failure,
                ),
            )
        )
    instance.report_run_failed(run)
    return run.run_id


def test_a_transient_step_failure_is_requested_again_with_backoff_and_new_run_keys(optuna_url, tmp_path, instance):
    ticker = _ticker(optuna_url, tmp_path, instance)
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    ticker.tick(execute=False)  # requested; then the registry goes away for longer than the retries
    run_keys, delays = [], []
    for _ in range(3):
        _fail_run(instance, "demo__t00000000", reason="STEP_FAILURE", error="StorageUnavailableError")
        _fail_run(instance, "demo__t00000001", reason="STEP_FAILURE", error="Failure", deterministic=True)
        assert ticker.tick(execute=False).run_requests in (None, [])  # backoff: not at once
        owed = _owed(ticker)
        assert "demo__t00000001" not in owed  # deterministic: waits for `gauntlet retry`
        delays.append(owed["demo__t00000000"][2] - time.time())
        _make_due(ticker)
        [request] = ticker.tick(execute=False).run_requests
        assert request.partition_key == "demo__t00000000"
        run_keys.append(request.run_key)
    assert len(set(run_keys)) == 3  # the daemon runs a run key once: a new key per attempt
    assert 0 < delays[0] < delays[1] < delays[2]  # exponential


def test_a_failed_run_dagster_will_retry_keeps_its_trials_from_a_second_request(optuna_url, tmp_path, instance):
    # Found by `make chaos`: a run killed twice failed with dagster/will_retry true; before the
    # run retry daemon launched its retry, the trial's backoff ran out and the sensor asked
    # for it again, so two run groups evaluated the same trials.
    ticker = _ticker(optuna_url, tmp_path, instance)
    add_complete_trials(optuna_url, "demo", [0.1])
    key = "demo__t00000000"
    ticker.tick(execute=False)
    failed = create_run_for_test(
        instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": key, WILL_RETRY_TAG: "true", RUN_FAILURE_REASON_TAG: "UNEXPECTED_TERMINATION"},
    )  # fmt: skip
    instance.report_run_failed(failed)
    _make_due(ticker)
    assert ticker.tick(execute=False).run_requests in (None, [])  # Dagster's retry is coming
    retry = create_run_for_test(
        instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": key, PARENT_RUN_ID_TAG: failed.run_id, WILL_RETRY_TAG: "false"},
    )  # fmt: skip
    _make_due(ticker)
    assert ticker.tick(execute=False).run_requests in (None, [])  # the retry is in flight
    instance.report_run_failed(retry)  # retries exhausted: now it is the sensor's to ask again
    ticker.tick(execute=False)
    _make_due(ticker)
    assert [r.partition_key for r in ticker.tick(execute=False).run_requests] == [key]


def test_the_recovery_scan_reaches_past_the_newest_hundred_failures(optuna_url, tmp_path, instance, monkeypatch):
    # Writing 101 failed runs takes over a minute on a slow disk: a backoff of an hour keeps the
    # trial waiting through it, so only `_make_due` below makes it due, whatever the machine.
    monkeypatch.setattr(optuna_trial_sensor, "RETRY_BACKOFF_SECONDS", 3600.0)
    ticker = _ticker(optuna_url, tmp_path, instance)
    add_complete_trials(optuna_url, "demo", [0.1])
    ticker.tick(execute=False)  # requested; its worker dies
    _fail_run(instance, "demo__t00000000", reason="UNEXPECTED_TERMINATION")
    for _ in range(101):  # newer failures, of runs that evaluated nothing
        run = create_run_for_test(
            instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTED, tags={WILL_RETRY_TAG: "false"}
        )
        instance.report_run_failed(run)
    ticker.tick()  # the failure is found; the trial waits for its backoff
    assert "demo__t00000000" in _owed(ticker)
    _make_due(ticker)
    assert [r.partition_key for r in ticker.tick().run_requests] == ["demo__t00000000"]
    assert all(r.success for r in ticker.results)
    _make_due(ticker)
    assert ticker.tick().run_requests in (None, [])


def test_an_unreadable_trial_is_isolated_to_itself(optuna_url, tmp_path, instance):
    ticker = _ticker(optuna_url, tmp_path, instance)
    add_complete_trials(optuna_url, "alpha", [0.1, 0.2, 0.3])
    add_complete_trials(optuna_url, "beta", [0.4])
    # SQLite stores a NaN objective as NULL, which Optuna itself cannot read back.
    with sqlite3.connect(optuna_url.removeprefix("sqlite:///")) as conn:
        conn.execute("update trial_values set value = NULL where trial_id = 2")
    result = ticker.tick()
    assert sorted(partitions(instance)) == ["alpha__t00000000", "alpha__t00000001", "alpha__t00000002", "beta__t00000000"]
    by_key = {_requested_key(r): r for r in result.run_requests}
    assert by_key["alpha__t00000001"].partition_key == "alpha__t00000001"  # a run of its own
    failed = [r for r in ticker.results if not r.success]
    assert len(failed) == 1 and "alpha" in str(failed[0].all_events)
    # Its failure is deterministic: it waits for `gauntlet retry`, the others are decided.
    _make_due(ticker)
    assert ticker.tick().run_requests in (None, [])
    assert _owed(ticker) == {}


def _requested_key(request: dg.RunRequest) -> str:
    return request.partition_key or request.tags["dagster/asset_partition_range_start"]


def test_a_trial_waiting_in_paper_trading_is_not_requested_again(optuna_url, tmp_path, instance):
    from tests.sensors.test_paper_session_sensor import GOOD, KEY, wall_clock_broker

    broker, _ = wall_clock_broker(tmp_path)
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    ticker = _ticker(optuna_url, tmp_path, instance, paper_broker=broker)
    assert _requested(ticker.tick()) == [KEY]
    assert instance.fetch_observations(dg.AssetKey("paper_trading_grade"), limit=1).records  # pending
    _make_due(ticker)
    assert ticker.tick().run_requests in (None, [])  # the paper_session_sensor's now
    assert KEY not in _owed(ticker)
