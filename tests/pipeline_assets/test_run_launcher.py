"""The run launcher's worker health check, against real processes and a real SQLite instance."""

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from resources.dagster_private import GRPC_INFO_TAG, EngineEventData, EventLogEntry, WorkerStatus
from pipeline_assets.run_launcher import WorkerHealthRunLauncher

LAUNCHER = {"module": "pipeline_assets.run_launcher", "class": "WorkerHealthRunLauncher"}
LOCAL_SERVER = json.dumps({"host": "localhost", "socket": "/tmp/gauntlet-code-server.sock"})


@dg.op
def _noop() -> None:
    """Nothing: the run only needs to exist."""


@dg.job
def _job() -> None:
    _noop()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        assert isinstance(instance.run_launcher, WorkerHealthRunLauncher)
        yield instance


@pytest.fixture
def worker() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def _launched_run(instance: dg.DagsterInstance, grpc_info: str = LOCAL_SERVER) -> dg.DagsterRun:
    run = instance.create_run_for_job(job_def=_job)
    instance.add_run_tags(run.run_id, {GRPC_INFO_TAG: grpc_info})
    return instance.get_run_by_id(run.run_id)


def _record_worker(instance: dg.DagsterInstance, run: dg.DagsterRun, pid: int) -> None:
    """What the run worker writes first (dagster/_grpc/impl.py)."""
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))


def _health(instance: dg.DagsterInstance, run: dg.DagsterRun):
    return instance.run_launcher.check_run_worker_health(instance.get_run_by_id(run.run_id))


def test_a_live_worker_is_running(instance, worker):
    run = _launched_run(instance)
    _record_worker(instance, run, worker.pid)
    result = _health(instance, run)
    assert result.status == WorkerStatus.RUNNING
    assert result.run_worker_id == str(worker.pid)


def test_a_killed_and_reaped_worker_has_failed(instance, worker):
    run = _launched_run(instance)
    _record_worker(instance, run, worker.pid)
    worker.kill()
    worker.wait(timeout=10)
    result = _health(instance, run)
    assert result.status == WorkerStatus.FAILED
    assert f"pid {worker.pid} no longer exists" in result.msg


def test_a_killed_worker_nobody_reaped_has_failed(instance, worker):
    run = _launched_run(instance)
    _record_worker(instance, run, worker.pid)
    worker.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _health(instance, run).status == WorkerStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    result = _health(instance, run)
    assert result.status == WorkerStatus.FAILED
    assert "exited without reporting" in result.msg


def test_a_pid_taken_over_by_a_younger_process_is_a_dead_worker(instance, worker):
    run = _launched_run(instance)
    recorded_an_hour_ago = EventLogEntry(
        error_info=None,
        level="DEBUG",
        user_message="",
        run_id=run.run_id,
        timestamp=time.time() - 3600,
        job_name=run.job_name,
        dagster_event=dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.ENGINE_EVENT.value,
            job_name=run.job_name,
            message=f"Started process for run (pid: {worker.pid}).",
            event_specific_data=EngineEventData.in_process(worker.pid),
        ),
    )
    instance.store_event(recorded_an_hour_ago)
    result = _health(instance, run)
    assert result.status == WorkerStatus.FAILED
    assert "newer process" in result.msg


def test_a_worker_on_another_host_is_left_to_the_runtime_backstop(instance, worker):
    run = _launched_run(instance, json.dumps({"host": "code-server.internal", "port": 4000}))
    _record_worker(instance, run, worker.pid)
    worker.kill()
    worker.wait(timeout=10)
    result = _health(instance, run)
    assert result.status == WorkerStatus.RUNNING
    assert "another host" in result.msg


def test_a_run_whose_worker_has_not_started_is_not_failed(instance):
    run = _launched_run(instance)
    result = _health(instance, run)
    assert result.status == WorkerStatus.RUNNING
    assert "not recorded its pid" in result.msg


def test_a_run_without_a_code_server_address_is_left_to_the_runtime_backstop(instance, worker):
    run = instance.create_run_for_job(job_def=_job)
    _record_worker(instance, run, worker.pid)
    worker.kill()
    worker.wait(timeout=10)
    result = _health(instance, run)
    assert result.status == WorkerStatus.RUNNING
    assert "no code server address" in result.msg
