"""Faults a production deployment meets, on real processes: killed workers, killed daemons,
unreachable storages. Every wait is bounded and every process started is stopped. The faults a
running deployment meets in turn (a killed worker, a killed daemon) meet one deployment, each
on a study of its own.

What must hold after each fault: runs end (failed or succeeded, never stuck), a failed run is
retried or re-executable, every trial is processed exactly once by the sensor, every stored
artifact verifies against its checksum, and no trial has two deployment decisions.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster_postgres.utils import DagsterPostgresException

from pipeline_assets.backtest_stage import BACKTEST
from pipeline_assets.trial_keys import study_key_prefix, trial_partition_key
from pipeline_assets.trial_assets import STUDY_TAG
from resources.dagster_private import FINISHED_STATUSES, TickStatus
from pipeline_assets.stages import passed_in_instance
from resources.optuna_study import OptunaStudyResource
from simulations.errors import StorageUnavailableError
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, execute_request, local_definitions, materialize_shared
from tests.e2e.conftest import (
    FAST_INSTANCE_OVERRIDES,
    SEMAPHORE_DIR,
    Deployment,
    artifact_problems,
    decisions_per_partition,
    duplicated_trials,
    kill_run_worker,
    materializing_runs,
    materialize_shared_in_process,
    named_semaphores,
    new_deployment,
    override_instance_config,
    sensor_requests_per_partition,
    sensor_ticks,
    stop_process,
    trial_runs,
    unix_sockets,
    unlink_orphaned_semaphores,
    unlink_orphaned_sockets,
    wait_until,
    wait_while_the_daemon_works,
)

pytestmark = pytest.mark.e2e

STUDY = "demo"


def _values(n: int, start: int = 0) -> list[float]:
    return [0.1 + 0.01 * i for i in range(start, start + n)]


def _keys(n: int, study: str = STUDY) -> set[str]:
    return {trial_partition_key(study, i) for i in range(n)}


def _of(study: str, key: str) -> bool:
    return key.startswith(f"{study_key_prefix(study)}__t")


def _materialized(instance: dg.DagsterInstance, asset: str, study: str = STUDY) -> set[str]:
    """The partitions of ``asset`` that ``study``'s trials have materialized."""
    return {k for k in instance.get_materialized_partitions(dg.AssetKey(asset)) if _of(study, k)}


def _settled(instance: dg.DagsterInstance, n_trials: int, study: str = STUDY) -> bool:
    """Every trial of ``study`` has a snapshot and every trial run (retries included) has finished."""
    runs = trial_runs(instance)
    return (
        len(_materialized(instance, "optuna_trial", study)) == n_trials
        and bool(runs)
        and all(r.status in FINISHED_STATUSES for r in runs)
    )


def _assert_consistent(deployment: Deployment, instance: dg.DagsterInstance, n_trials: int, study: str = STUDY) -> None:
    """The state every fault must leave: every trial once through every gate it passed.

    Artifacts and deployment decisions are checked for the whole deployment, whatever studies
    it has seen.
    """
    keys = _keys(n_trials, study)
    assert _materialized(instance, "optuna_trial", study) == keys
    assert _materialized(instance, "backtest_results", study) == keys
    # Each later stage holds exactly the trials that passed the gate before it.
    assert _materialized(instance, "cge_stress_report", study) == passed_in_instance(instance, BACKTEST.check, keys)
    assert artifact_problems(deployment.home / "artifacts") == []
    decisions = decisions_per_partition(deployment.home)
    assert all(n == 1 for n in decisions.values()), decisions
    assert set(decisions) == set(instance.get_materialized_partitions(dg.AssetKey("deployment_record")))


def _exactly_once_by_the_sensor(instance: dg.DagsterInstance, n_trials: int, study: str = STUDY) -> None:
    """One sensor run per trial, and every snapshot of a trial from that run or its retries."""
    keys = _keys(n_trials, study)
    requests = sensor_requests_per_partition(instance)
    assert {k: n for k, n in requests.items() if _of(study, k)} == {key: 1 for key in keys}
    assert {k for k in materializing_runs(instance, "optuna_trial") if _of(study, k)} == keys
    assert duplicated_trials(instance) == {}


def _first_materialization_run(instance: dg.DagsterInstance, asset: str, keys: set[str]) -> str | None:
    """The run of the first materialization of ``asset`` for one of ``keys``."""
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=sorted(keys))
    records = instance.fetch_materializations(records_filter, limit=1, ascending=True).records
    return records[0].run_id if records else None


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _started_trial_run(instance: dg.DagsterInstance, study: str) -> str | None:
    """A trial run of ``study`` executing now."""
    started = [
        r.run_id
        for r in trial_runs(instance)
        if r.status == dg.DagsterRunStatus.STARTED and r.tags.get(STUDY_TAG) == study
    ]
    return started[0] if started else None


@dataclass
class RunningDeployment:
    """A deployment whose daemon keeps running from one test to the next; a test that stops the
    daemon starts its successor."""

    deployment: Deployment
    daemon: subprocess.Popen

    def live_daemon(self) -> subprocess.Popen:
        """The running daemon; a new one if the last was stopped (by a test that failed midway)."""
        if self.daemon.poll() is not None:
            self.daemon = self.deployment.start_daemon()
        return self.daemon

    def start_daemon(self) -> subprocess.Popen:
        """The successor of a daemon a test stopped."""
        assert self.daemon.poll() is not None, "the last daemon is still running"
        self.daemon = self.deployment.start_daemon()
        return self.daemon


@pytest.fixture(scope="class")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDeployment]:
    """One deployment and its daemon for the faults a running deployment meets one after another.

    Starting a daemon (and its code server) and building the shared assets cost seconds of CPU
    each; the tests share them and keep apart by study: each test has a study of its own and
    judges its trials, while artifacts and deployment decisions are judged for the deployment.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        deployment = new_deployment(tmp_path_factory.mktemp("faults") / "gauntlet", monkeypatch)
        override_instance_config(deployment.dagster_home, FAST_INSTANCE_OVERRIDES)
        materialize_shared_in_process(deployment)
        running = RunningDeployment(deployment=deployment, daemon=deployment.start_daemon())
        try:
            yield running
        finally:
            stop_process(running.daemon)


_LEAK_A_SEMAPHORE = """
import multiprocessing, os, signal
lock = multiprocessing.get_context("spawn").Lock()  # also starts a resource tracker in this group
print(lock._semlock.name, flush=True)
os.killpg(0, signal.SIGKILL)  # the tracker dies too: nothing unlinks the lock's semaphore
"""


def _semaphore_file(name: str) -> Path:
    """The file of multiprocessing's semaphore ``name`` ("/mp-…")."""
    return SEMAPHORE_DIR / f"sem.{name.lstrip('/')}"


def test_the_clean_up_unlinks_what_a_killed_group_left_and_keeps_what_a_live_process_uses():
    existing = named_semaphores()
    in_use = multiprocessing.get_context("spawn").Lock()
    killed = subprocess.run(
        [sys.executable, "-c", _LEAK_A_SEMAPHORE], start_new_session=True, capture_output=True, text=True, timeout=60
    )
    leaked = _semaphore_file(killed.stdout.strip())
    mine = _semaphore_file(in_use._semlock.name)  # noqa: SLF001 - the name multiprocessing gave it
    assert killed.returncode == -signal.SIGKILL and leaked.exists() and mine.exists()

    unlink_orphaned_semaphores(existing)

    assert not leaked.exists()
    # Its creator maps it under glibc's temporary name: it must be found by inode, not by name.
    assert mine.exists()


_LEAK_A_SOCKET = """
import os, signal, socket, sys
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])  # as a code server listens
listener.listen()
print("bound", flush=True)
os.killpg(0, signal.SIGKILL)  # nothing removes the socket file
"""


def test_the_clean_up_unlinks_a_socket_a_killed_group_left_and_keeps_one_a_live_process_has_bound():
    existing = unix_sockets()
    tmp = Path(tempfile.gettempdir())
    leaked, mine = tmp / f"leaked-{os.getpid()}.sock", tmp / f"live-{os.getpid()}.sock"
    killed = subprocess.run(
        [sys.executable, "-c", _LEAK_A_SOCKET, str(leaked)],
        start_new_session=True, capture_output=True, text=True, timeout=60,
    )
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(mine))
        listener.listen()
        assert killed.returncode == -signal.SIGKILL and leaked.is_socket() and mine.is_socket()

        unlink_orphaned_sockets(existing)

        assert not leaked.exists()
        assert mine.is_socket()
    mine.unlink()


# --------------------------------------------------------------------------- one deployment, faults in turn

KILLED_RUN_TRIALS = 20  # one batch; long enough that the kill lands inside the stress stage


def _daemon_signalled_mid_run(running: RunningDeployment, sig: signal.Signals, study: str) -> subprocess.Popen:
    """Give the daemon 10 trials of ``study`` and deliver ``sig`` to its process group (code
    server and run workers included, as systemd, Docker or Kubernetes do) while a trial run of
    them is executing and 4 new trials arrive. Returns the stopped daemon."""
    deployment = running.deployment
    daemon = running.live_daemon()
    add_complete_trials(deployment.optuna_url, study, _values(10))
    try:
        instance = deployment.instance()
        wait_until(
            lambda: _started_trial_run(instance, study) is not None,
            timeout=90,
            interval=0.2,
            what="a trial run to start",
        )
        add_complete_trials(deployment.optuna_url, study, _values(4, start=10))
        os.killpg(daemon.pid, sig)
        daemon.wait(timeout=30)
    finally:
        stop_process(daemon)
    return daemon


class TestOneDeploymentThroughFaults:
    """Faults met one after another by one running deployment, each on a study of its own."""

    # ----------------------------------------------------------------------- kill -9 of a run worker

    def test_a_run_worker_killed_in_the_stress_test_fails_its_run_and_the_retry_completes(self, running):
        study = "worker_kill"
        deployment = running.deployment
        daemon = running.live_daemon()
        keys = _keys(KILLED_RUN_TRIALS, study)
        add_complete_trials(deployment.optuna_url, study, _values(KILLED_RUN_TRIALS))
        instance = deployment.instance()
        wait_until(
            lambda: _first_materialization_run(instance, "cge_stress_report", keys) is not None,
            timeout=120,
            interval=0.1,
            what="the first stress report",
        )
        killed = _first_materialization_run(instance, "cge_stress_report", keys)
        stressed = _materialized(instance, "cge_stress_report", study)
        kill_run_worker(instance, killed, daemon)
        # The kill landed inside the stress stage: some trials have their report, others not yet.
        assert stressed < passed_in_instance(instance, BACKTEST.check, keys)

        wait_until(lambda: _status(instance, killed) in FINISHED_STATUSES, timeout=60, what="the killed run to end")
        assert _status(instance, killed) == dg.DagsterRunStatus.FAILURE, deployment.log("daemon")
        wait_while_the_daemon_works(
            instance,
            lambda: any(r.parent_run_id == killed for r in trial_runs(instance))
            and _settled(instance, KILLED_RUN_TRIALS, study),
            what="the automatic retry of the killed run to finish",
        )

        [retry] = [r for r in trial_runs(instance) if r.parent_run_id == killed]
        assert retry.status == dg.DagsterRunStatus.SUCCESS, deployment.log("daemon")
        assert retry.tags["dagster/retry_number"] == "1"
        _assert_consistent(deployment, instance, KILLED_RUN_TRIALS, study)
        _exactly_once_by_the_sensor(instance, KILLED_RUN_TRIALS, study)

    # ----------------------------------------------------------------------- the daemon killed

    def test_sigterm_of_the_daemon_mid_run_loses_and_repeats_no_trial(self, running):
        study = "sigterm"
        deployment = running.deployment
        daemon = _daemon_signalled_mid_run(running, signal.SIGTERM, study)
        assert daemon.returncode is not None  # SIGTERM stopped it; no SIGKILL was needed
        add_complete_trials(deployment.optuna_url, study, _values(4, start=14))  # while it is down
        running.start_daemon()
        instance = deployment.instance()
        wait_while_the_daemon_works(instance, lambda: _settled(instance, 18, study), what="18 trials after the restart")
        _assert_consistent(deployment, instance, 18, study)
        _exactly_once_by_the_sensor(instance, 18, study)

    def test_sigkill_of_the_daemon_mid_run_loses_and_repeats_no_trial(self, running):
        study = "sigkill"
        deployment = running.deployment
        _daemon_signalled_mid_run(running, signal.SIGKILL, study)
        instance = deployment.instance()
        orphaned = _started_trial_run(instance, study)
        add_complete_trials(deployment.optuna_url, study, _values(4, start=14))
        running.start_daemon()
        # Run monitoring polls every 2 s here; the daemon takes a few seconds to start. The
        # bound is far below max_runtime_seconds (an hour), the only way out without a health check.
        wait_until(
            lambda: _status(instance, orphaned) in FINISHED_STATUSES,
            timeout=30,
            what=f"run {orphaned}, whose worker was killed with the daemon, to end",
        )
        wait_while_the_daemon_works(instance, lambda: _settled(instance, 18, study), what="18 trials after the restart")
        assert _status(instance, orphaned) == dg.DagsterRunStatus.FAILURE
        failure = instance.get_records_for_run(orphaned, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert "no longer exists" in failure[0].event_log_entry.dagster_event.message
        [retry] = [r for r in trial_runs(instance) if r.parent_run_id == orphaned]
        assert retry.status == dg.DagsterRunStatus.SUCCESS, deployment.log("daemon")
        _assert_consistent(deployment, instance, 18, study)
        _exactly_once_by_the_sensor(instance, 18, study)


# --------------------------------------------------------------------------- Optuna storage unreachable


@contextmanager
def _pg_role(admin: sa.Engine) -> Iterator[str]:
    """A login role that may read every table (what the pipeline needs of Optuna: it never writes)."""
    role = f"gauntlet_reader_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create role "{role}" login'))
        conn.execute(sa.text(f'grant pg_read_all_data to "{role}"'))
    try:
        yield role
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"select pg_terminate_backend(pid) from pg_stat_activity where usename = '{role}'"))
            conn.execute(sa.text(f'drop role if exists "{role}"'))


def _set_connect(admin: sa.Engine, database: str, *, allowed: bool) -> None:
    """Revoke (and cut) or grant back the right of non-superusers to connect to ``database``."""
    with admin.connect() as conn:
        if allowed:
            conn.execute(sa.text(f'grant connect on database "{database}" to public'))
        else:
            conn.execute(sa.text(f'revoke connect on database "{database}" from public'))
            conn.execute(
                sa.text(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = :db and pid <> pg_backend_pid()"
                ),
                {"db": database},
            )


def _failed_ticks(instance: dg.DagsterInstance) -> list:
    return [t for t in sensor_ticks(instance) if t.status == TickStatus.FAILURE]


@pytest.mark.postgres
def test_an_unreachable_optuna_storage_fails_ticks_visibly_and_loses_nothing(
    deployment, pg_database, pg_admin_engine
):
    database = sa.engine.make_url(pg_database).database
    with _pg_role(pg_admin_engine) as role:
        reader_url = sa.engine.make_url(pg_database).set(username=role).render_as_string(hide_password=False)
        # Production settings: the pipeline reads Optuna from PostgreSQL as a read-only role.
        deployment.env.update(
            GAUNTLET_ENV="production",
            GAUNTLET_OPTUNA_STORAGE=reader_url,
            GAUNTLET_DATABASE_URL=f"sqlite:///{deployment.home / 'gauntlet.db'}",
            GAUNTLET_ARTIFACT_DIR=str(deployment.home / "artifacts"),
            GAUNTLET_ALERT_LOG=str(deployment.home / "alerts.jsonl"),
        )
        override_instance_config(deployment.dagster_home, FAST_INSTANCE_OVERRIDES)
        add_complete_trials(pg_database, STUDY, _values(3))
        materialize_shared_in_process(deployment)
        daemon = deployment.start_daemon()
        try:
            instance = deployment.instance()
            wait_while_the_daemon_works(instance, lambda: _settled(instance, 3), what="3 trials before the outage")

            _set_connect(pg_admin_engine, database, allowed=False)
            try:
                # Trials keep arriving from a trainer that can still write (a superuser here).
                add_complete_trials(pg_database, STUDY, _values(3, start=3))
                wait_until(lambda: len(_failed_ticks(instance)) >= 2, timeout=60, what="two failed sensor ticks")
            finally:
                _set_connect(pg_admin_engine, database, allowed=True)
            assert len(_materialized(instance, "optuna_trial")) == 3  # nothing processed while down

            wait_while_the_daemon_works(instance, lambda: _settled(instance, 6), what="the 3 trials written during the outage")
        finally:
            stop_process(daemon)

    # The failure names the storage and the role that could not connect (its class: see below).
    failure = _failed_ticks(instance)[-1].error.to_string()
    assert f"Optuna storage postgresql+psycopg2://{role}@" in failure
    assert "User does not have CONNECT privilege" in failure
    # Ticking again after the outage: a tick that did not fail, newer than the newest outage
    # failure (the daemon's stop may interrupt its very last tick, so not necessarily the newest).
    ticks = sensor_ticks(instance)
    last_outage = next(
        i for i, t in enumerate(ticks) if t.status == TickStatus.FAILURE and "CONNECT privilege" in t.error.to_string()
    )
    assert any(t.status != TickStatus.FAILURE for t in ticks[:last_outage])
    _assert_consistent(deployment, instance, 6)
    _exactly_once_by_the_sensor(instance, 6)


def test_an_optuna_storage_locked_after_it_was_opened_is_a_transient_error(tmp_path):
    # Optuna wraps the database's error in StorageInternalError; the cause decides.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    add_complete_trials(url, STUDY, _values(1))
    source = OptunaStudyResource(storage_url=url)
    assert source.list_studies() == [STUDY]  # opened and kept, as by the long-lived code server
    writer = sqlite3.connect(tmp_path / "optuna.db", isolation_level=None)
    try:
        # A writer holds the database longer than SQLite's busy timeout (5 s): "database is locked".
        writer.execute("begin exclusive")
        with pytest.raises(StorageUnavailableError, match="Optuna storage"):
            source.list_studies()
    finally:
        writer.close()


# --------------------------------------------------------------------------- PostgreSQL down mid-run

# dagster-postgres retries a failed connection five times with exponential backoff (11.4 s +/- 1 s
# in all); an outage longer than that reaches the run, which is what this test is about.
PG_OUTAGE_SECONDS = 15
PG_RUN_TRIALS = 6


def _pg_outage_once(instance, admin: sa.Engine, database: str, errors: list[BaseException]) -> None:
    """As soon as the run has recorded its first trial, stop connections to ``database`` for a while.

    The first stage's events mark the middle of the run: every gate is still ahead of it.
    """
    try:
        deadline = time.monotonic() + 120
        while not _materialized(instance, "optuna_trial"):
            if time.monotonic() > deadline:
                raise AssertionError("the run never recorded a trial")
            time.sleep(0.05)
        with admin.connect() as conn:
            conn.execute(sa.text(f'alter database "{database}" allow_connections false'))
            conn.execute(
                sa.text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :db"),
                {"db": database},
            )
        time.sleep(PG_OUTAGE_SECONDS)
    except BaseException as exc:  # re-raised by the test thread
        errors.append(exc)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'alter database "{database}" allow_connections true'))


@pytest.mark.postgres
def test_postgres_going_down_mid_run_fails_the_run_visibly_and_corrupts_nothing(pg_database, pg_admin_engine, tmp_path):
    database = sa.engine.make_url(pg_database).database
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    add_complete_trials(optuna_url, STUDY, _values(PG_RUN_TRIALS))
    defs = local_definitions(optuna_url, tmp_path)
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": pg_database}}}) as instance:
        materialize_shared(defs, instance)
        [request] = Ticker(defs, instance).tick(execute=False).run_requests

        errors: list[BaseException] = []
        outage = threading.Thread(target=_pg_outage_once, args=(instance, pg_admin_engine, database, errors))
        outage.start()
        try:
            succeeded = execute_request(defs, instance, request).success
        except DagsterPostgresException:
            # Also visible: the run's own failure event could not be written while the database was down.
            succeeded = False
        finally:
            outage.join(timeout=PG_OUTAGE_SECONDS + 130)
        assert not errors, errors
        assert not succeeded
        [run] = trial_runs(instance)
        assert run.status != dg.DagsterRunStatus.SUCCESS

        # Nothing half-done blocks a later run: re-running the same trials succeeds and completes them.
        assert execute_request(defs, instance, request).success
        keys = _keys(PG_RUN_TRIALS)
        assert _materialized(instance, "optuna_trial") == keys
        assert _materialized(instance, "cge_stress_report") == passed_in_instance(instance, BACKTEST.check, keys)
    assert artifact_problems(tmp_path / "artifacts") == []
    decisions = decisions_per_partition(tmp_path)
    assert decisions and all(n == 1 for n in decisions.values()), decisions
