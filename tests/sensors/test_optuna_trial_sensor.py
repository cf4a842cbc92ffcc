import json

import dagster as dg
import optuna
import pytest

from sensors.optuna_trial_sensor import Owed, SensorCursor, batch_run_requests, decode_cursor, encode_cursor
from resources.optuna_study import StudyCursor
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, local_definitions, materialized, partitions


@pytest.fixture
def ticker(optuna_url, tmp_path, shared_instance):
    return Ticker(local_definitions(optuna_url, tmp_path), shared_instance)


def test_shared_assets_come_first_and_trials_wait(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    first = ticker.tick()
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [("shared_job", "default")]
    # The study waits for its instrument: none of its trials is read, so none is skipped later.
    assert partitions(instance) == [] and json.loads(ticker.cursor)["studies"] == {}
    second = ticker.tick()
    assert [r.partition_key for r in second.run_requests] == ["demo__t00000000"]


def test_new_trials_become_partitions_and_runs(optuna_url, ticker, shared_instance):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3])
    result = ticker.tick()
    assert partitions(shared_instance) == ["demo__t00000000", "demo__t00000001", "demo__t00000002"]
    assert len(result.run_requests) == 1  # one batched run
    request = result.run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "demo__t00000000"
    assert request.tags["dagster/asset_partition_range_end"] == "demo__t00000002"
    assert request.tags["gauntlet/study"] == "demo"
    assert all(r.success for r in ticker.results)
    assert materialized(shared_instance, "optuna_trial") == set(partitions(shared_instance))


def test_no_new_trials_skips_and_keeps_cursor(optuna_url, ticker):
    add_complete_trials(optuna_url, "demo", [0.1])
    ticker.tick()
    ticker.tick()  # sees the trial decided: it is owed nothing more
    cursor = ticker.cursor
    result = ticker.tick()
    assert result.run_requests in (None, []) and "no new complete trials" in result.skip_reason.skip_message
    assert ticker.cursor == cursor


def test_single_trial_runs_promptly_as_its_own_partition(optuna_url, ticker):
    add_complete_trials(optuna_url, "demo", [0.1])
    ticker.tick()
    add_complete_trials(optuna_url, "demo", [0.2])
    result = ticker.tick()
    assert [r.partition_key for r in result.run_requests] == ["demo__t00000001"]


def test_pruned_failed_and_running_trials_wait_until_complete(optuna_url, ticker, shared_instance):
    study = optuna.create_study(study_name="demo", storage=optuna_url)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    running = study.ask(dist)
    study.tell(study.ask(dist), state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(dist), state=optuna.trial.TrialState.FAIL)
    done = study.ask(dist)
    study.tell(done, 0.4)
    ticker.tick()
    assert partitions(shared_instance) == [f"demo__t{done.number:08d}"]

    study.tell(running, 0.7)  # completes later, below the watermark
    result = ticker.tick()
    assert [r.partition_key for r in result.run_requests] == [f"demo__t{running.number:08d}"]
    assert len(partitions(shared_instance)) == 2
    assert ticker.tick().run_requests in (None, [])


def test_cursor_round_trips_and_survives_a_new_sensor_process(optuna_url, tmp_path, shared_instance):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    defs = local_definitions(optuna_url, tmp_path)
    first = Ticker(defs, shared_instance)
    first.tick()
    assert decode_cursor(first.cursor) == decode_cursor(encode_cursor(decode_cursor(first.cursor)))
    add_complete_trials(optuna_url, "demo", [0.3])
    # A restarted daemon: new definitions, only the stored cursor carried over.
    second = Ticker(local_definitions(optuna_url, tmp_path), shared_instance, cursor=first.cursor)
    result = second.tick()
    assert [r.partition_key for r in result.run_requests] == ["demo__t00000002"]


def test_cursor_encoding_is_stable():
    studies = {"b": StudyCursor(watermark=5, pending=(2, 3)), "a": StudyCursor(watermark=1)}
    cursor = SensorCursor(studies=studies, owed={"a__t00000001": Owed(study="a", attempts=2, not_before=9.5)}, failures_after=7)
    raw = encode_cursor(cursor)
    assert json.loads(raw) == {
        "studies": {"a": [1, []], "b": [5, [2, 3]]},
        "owed": {"a__t00000001": ["a", 2, 9.5]},
        "failures_after": 7,
    }
    assert decode_cursor(raw) == cursor
    assert decode_cursor(None) == SensorCursor() and decode_cursor("") == SensorCursor()
    # The earlier format (per-study cursors only) keeps its studies and owes every known trial once.
    assert decode_cursor(json.dumps({"a": [1, []]})) == SensorCursor(studies={"a": StudyCursor(watermark=1)})


def test_two_studies_get_separate_runs_and_keys(optuna_url, ticker, shared_instance):
    add_complete_trials(optuna_url, "alpha", [0.1, 0.2])
    add_complete_trials(optuna_url, "beta", [0.3])
    result = ticker.tick()
    assert {r.tags["gauntlet/study"] for r in result.run_requests} == {"alpha", "beta"}
    assert sorted(partitions(shared_instance)) == ["alpha__t00000000", "alpha__t00000001", "beta__t00000000"]
    assert all(r.success for r in ticker.results)


def test_reset_cursor_never_requests_a_materialized_trial_again(optuna_url, ticker):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    ticker.tick()
    ticker.cursor = None
    result = ticker.tick()
    assert result.run_requests in (None, [])


def test_malformed_trial_gets_no_partition_and_others_proceed(optuna_url, ticker, shared_instance):
    add_complete_trials(optuna_url, "demo", [0.1])
    study = optuna.load_study(study_name="demo", storage=optuna_url)
    study.add_trial(optuna.trial.create_trial(value=float("inf")))
    add_complete_trials(optuna_url, "demo", [0.3])
    ticker.tick()
    assert partitions(shared_instance) == ["demo__t00000000", "demo__t00000002"]


def test_unreachable_storage_fails_the_tick_visibly(tmp_path, shared_instance):
    defs = local_definitions("postgresql+psycopg2://u:pw@127.0.0.1:1/x", tmp_path)
    ticker = Ticker(defs, shared_instance)
    with pytest.raises(Exception, match="unreachable|failed while"):
        ticker.tick()
    assert partitions(shared_instance) == []


def test_batches_respect_the_run_size_bound_and_partition_order():
    keys = [f"demo__t{i:08d}" for i in range(8)]
    owed = {k: Owed(study="demo") for k in keys}
    position = {k: i for i, k in enumerate(keys)}
    position[keys[7]] = 20  # not adjacent to the others in partition order
    requests = batch_run_requests(keys, owed, position, 3, job_name="trial_job", alone={keys[4]})
    sizes = [int(r.tags["gauntlet/trials"]) for r in requests]
    assert sizes == [3, 1, 1, 2, 1]
    assert requests[2].partition_key == keys[4] and requests[-1].partition_key == keys[7]
    assert len({r.run_key for r in requests}) == 5
    owed[keys[4]].attempts = 1  # a second attempt is a new run key
    again = batch_run_requests([keys[4]], owed, position, 3, job_name="trial_job")
    assert again[0].run_key != requests[2].run_key and again[0].tags["gauntlet/attempt"] == "2"


def test_trials_of_a_run_that_died_after_its_last_retry_are_requested_again(optuna_url, ticker, shared_instance):
    from resources.dagster_private import RUN_FAILURE_REASON_TAG, WILL_RETRY_TAG, create_run_for_test

    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    ticker.tick(execute=False)  # requested; the run's worker is killed, and its retries too
    run = create_run_for_test(
        shared_instance,
        job_name="trial_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={
            WILL_RETRY_TAG: "false",
            RUN_FAILURE_REASON_TAG: "UNEXPECTED_TERMINATION",
            "dagster/asset_partition_range_start": "demo__t00000000",
            "dagster/asset_partition_range_end": "demo__t00000001",
        },
    )
    shared_instance.report_run_failed(run)
    assert ticker.tick().run_requests in (None, [])  # found; the trials wait for their backoff
    cursor = decode_cursor(ticker.cursor)
    for entry in cursor.owed.values():
        entry.not_before = 0.0  # the backoff has run out
    ticker.cursor = encode_cursor(cursor)
    [request] = ticker.tick().run_requests
    assert request.tags["dagster/asset_partition_range_end"] == "demo__t00000001"
    assert request.tags["gauntlet/attempt"] == "2"
    assert all(r.success for r in ticker.results)
