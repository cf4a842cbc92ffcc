"""The run launcher named in dagster.yaml: Dagster's default one, plus a health check of the worker.

Dagster's ``DefaultRunLauncher`` starts each run as a subprocess of the code server and cannot
say whether that process is still alive. When the code server dies with its run workers (the
daemon's whole process group killed, an OOM kill of the group, a host reboot), nothing ever
reports those runs: they stay STARTED, hold their run-queue slots and their trials wait for the
hour-long ``max_runtime_seconds`` backstop. This launcher answers run monitoring's health check
from the worker's pid, which the worker itself records in the run's "Started process for run"
engine event, so run monitoring fails such a run within one poll and run retries re-execute it.
"""

import json
import socket
from dataclasses import dataclass

import dagster as dg
import psutil

from resources.dagster_private import GRPC_INFO_TAG, CheckRunHealthResult, WorkerStatus

# The engine event the run worker writes as its first act (dagster/_grpc/impl.py); its metadata
# holds the worker's pid.
_WORKER_STARTED_PREFIX = "Started process for run"
# The first engine events of a run are few (launch, process start, executor start); the pid event
# is among them, so a short ascending read finds it without scanning a big run's log.
_FIRST_ENGINE_EVENTS = 10
# psutil's create_time and the event timestamp come from different clocks' roundings.
_CLOCK_SLACK_SECONDS = 2.0
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


@dataclass(frozen=True)
class _Worker:
    pid: int
    started_at: float


class WorkerHealthRunLauncher(dg.DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers run monitoring can health-check by pid.

    Only a worker on this host can be checked (the code server's address is loopback, a Unix
    socket or this host's name); for any other worker the check answers RUNNING and
    ``run_monitoring.max_runtime_seconds`` stays the backstop, exactly as with the default
    launcher. A pid that now belongs to a younger process counts as a dead worker.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        grpc_info = run.tags.get(GRPC_INFO_TAG)
        if grpc_info is None:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                "the run has no code server address; run monitoring's max_runtime_seconds applies",
            )
        if not _served_from_this_host(grpc_info):
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                "the run worker is on another host; run monitoring's max_runtime_seconds applies",
            )
        worker = self._worker(run.run_id)
        if worker is None:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                "the run worker has not recorded its pid yet",
            )
        alive, detail = _process_alive(worker)
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING, detail, run_worker_id=str(worker.pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, detail, run_worker_id=str(worker.pid))

    def _worker(self, run_id: str) -> _Worker | None:
        records = self._instance.get_records_for_run(
            run_id,
            of_type=dg.DagsterEventType.ENGINE_EVENT,
            limit=_FIRST_ENGINE_EVENTS,
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None or not (event.message or "").startswith(_WORKER_STARTED_PREFIX):
                continue
            pid = event.engine_event_data.metadata.get("pid")
            if pid is not None:
                return _Worker(pid=int(pid.value), started_at=record.timestamp)
        return None


def _served_from_this_host(grpc_info: str) -> bool:
    info = json.loads(grpc_info)
    if info.get("socket"):
        return True
    host = info.get("host")
    return host in _LOOPBACK_HOSTS or host in {socket.gethostname(), socket.getfqdn()}


def _process_alive(worker: _Worker) -> tuple[bool, str]:
    try:
        process = psutil.Process(worker.pid)
        created_at = process.create_time()
        status = process.status()
    except psutil.NoSuchProcess:
        return False, f"run worker pid {worker.pid} no longer exists (killed, or died with its code server)"
    except psutil.AccessDenied:
        return True, f"run worker pid {worker.pid} exists (owned by another user)"
    if created_at > worker.started_at + _CLOCK_SLACK_SECONDS:
        return False, f"run worker pid {worker.pid} has exited; the pid now belongs to a newer process"
    if status == psutil.STATUS_ZOMBIE:
        return False, f"run worker pid {worker.pid} has exited without reporting the run's end"
    return True, f"run worker pid {worker.pid} is alive"
