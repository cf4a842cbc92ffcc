"""Start what a user starts (dagster-daemon, dagster-webserver) as real processes on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from unittest import mock

import dagster as dg
import pytest
import yaml

from pipeline_assets.definitions import build_definitions
from gauntlet.config import load_config
from pipeline_assets.partitions import trials_partitions_def
from resources.registry import SqlDeploymentRegistryResource
from sensors.optuna_trial_sensor import ATTEMPT_TAG
from tests.dagster_helpers import HOLDOUT_ENVIRONMENT

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Deployment:
    """A temporary Gauntlet home with its own Dagster instance and Optuna storage."""

    home: Path
    dagster_home: Path
    env: dict[str, str]

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.home / 'optuna.db'}"

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def start(self, *args: str, log_name: str) -> subprocess.Popen:
        log = open(self.home / f"{log_name}.log", "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            list(args), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_daemon(self) -> subprocess.Popen:
        return self.start(str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml"), log_name="daemon")

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def stop_process(proc: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """SIGTERM the whole process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


#: Where glibc keeps POSIX named semaphores; multiprocessing names its own ``sem.mp-*``.
SEMAPHORE_DIR = Path("/dev/shm")


def named_semaphores() -> set[Path]:
    """Multiprocessing's named semaphores of this user on this machine."""
    found = set()
    for semaphore in SEMAPHORE_DIR.glob("sem.mp-*"):
        with contextlib.suppress(OSError):
            if semaphore.stat().st_uid == os.getuid():
                found.add(semaphore)
    return found


def unlink_orphaned_semaphores(existing: set[Path]) -> None:
    """Unlink the named semaphores created since ``existing`` was taken that no live process maps.

    A run worker's multiprocessing queue is backed by named semaphores that the code server's
    resource tracker unlinks when it exits; a fault test kills the tracker with its process
    group, and every run would leave them on the machine. Every process that uses a semaphore
    maps its file, so one no process maps can no longer be used by any. Mappings are matched by
    inode: glibc creates the file under a temporary name, maps it and only then links the
    final name, so its creator's mapping shows the temporary (deleted) name.
    """
    mapped: set[int] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            for line in maps.read_text().splitlines():
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith(f"{SEMAPHORE_DIR}/"):
                    mapped.add(int(fields[4]))
    for semaphore in named_semaphores() - existing:
        with contextlib.suppress(FileNotFoundError):
            if semaphore.stat().st_ino not in mapped:
                semaphore.unlink()


def unix_sockets() -> set[Path]:
    """Unix sockets of this user in the temporary directory, where Dagster's code servers listen."""
    found = set()
    for path in Path(tempfile.gettempdir()).iterdir():
        with contextlib.suppress(OSError):
            status = path.lstat()
            if stat.S_ISSOCK(status.st_mode) and status.st_uid == os.getuid():
                found.add(path)
    return found


def unlink_orphaned_sockets(existing: set[Path]) -> None:
    """Unlink the Unix sockets created since ``existing`` was taken that no live process has bound.

    A code server removes its socket file when it exits; one SIGKILLed with its process group
    (a fault test, or `stop_process` when SIGTERM was not enough) leaves the file behind. The
    kernel lists every bound socket with its path in /proc/net/unix while a process holds it.
    """
    rows = (line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:])
    bound = {fields[7] for fields in rows if len(fields) >= 8}
    for socket in unix_sockets() - existing:
        if str(socket) not in bound:
            with contextlib.suppress(FileNotFoundError):
                socket.unlink()


@pytest.fixture(scope="session", autouse=True)
def no_orphans_left() -> Iterator[None]:
    """Named semaphores and code-server sockets that killed processes leave, removed after the tests
    (only those created meanwhile and used by no live process: other test workers' are kept)."""
    semaphores, sockets = named_semaphores(), unix_sockets()
    yield
    unlink_orphaned_semaphores(semaphores)
    unlink_orphaned_sockets(sockets)


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 1.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for_progress(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    what: str,
    stall_s: float = 120.0,
    cap_s: float = 900.0,
    poll_s: float = 1.0,
    diagnose: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``read()`` until ``done``; fail only when its value stops changing for ``stall_s``.

    The bound follows progress, not the clock: a slow machine that keeps moving (queued ->
    started -> success) gets all the time it needs, up to ``cap_s``; a stuck one fails after
    ``stall_s`` with every state it went through.
    """
    started = last_change = time.monotonic()
    state = read()
    seen = [state]
    while not done(state):
        now = time.monotonic()
        if now - last_change > stall_s or now - started > cap_s:
            raise AssertionError(
                f"{what}: no progress for {now - last_change:.0f}s ({now - started:.0f}s in all);"
                f" states seen: {seen}\n{diagnose()}"
            )
        time.sleep(poll_s)
        new = read()
        if new != state:
            state, last_change = new, time.monotonic()
            seen.append(state)
    return state


#: Trial assets whose materializations show a daemon's runs getting on with the work.
_PROGRESS_ASSETS = ("optuna_trial", "backtest_results", "cge_stress_report", "paper_trading_grade", "deployment_record")


def daemon_activity(instance: dg.DagsterInstance) -> tuple:
    """What changes while the daemon works: every run's status and each trial asset's count."""
    runs = tuple(sorted((r.dagster_run.run_id, r.dagster_run.status.value) for r in instance.get_run_records()))
    return runs, tuple(len(instance.get_materialized_partitions(dg.AssetKey(a))) for a in _PROGRESS_ASSETS)


def wait_while_the_daemon_works(
    instance: dg.DagsterInstance,
    done: Callable[[], bool],
    *,
    what: str,
    stall_s: float = 150.0,
    diagnose: Callable[[], str] = lambda: "",
) -> None:
    """Wait for ``done()`` for as long as runs start, finish or materialize something.

    A loaded machine slows the daemon down and gets the time it needs; a stuck daemon (nothing
    changes for ``stall_s``, which covers its start-up and its first sensor tick) fails.
    """
    wait_for_progress(
        lambda: (done(), daemon_activity(instance)),
        lambda state: state[0],
        what=what,
        stall_s=stall_s,
        diagnose=diagnose,
    )


def new_deployment(home: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    """A Gauntlet home at ``home`` with its instance's storages created; DAGSTER_HOME names it."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "GAUNTLET_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "GAUNTLET_SENSOR_INTERVAL": "2",
        "PYTHONUNBUFFERED": "1",
        **HOLDOUT_ENVIRONMENT,
    }
    # dagster.yaml reads DAGSTER_HOME: the test process opens the same instance.
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    # Create the SQLite storages once, before several daemon threads race to create them.
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    return Deployment(home=home, dagster_home=dagster_home, env=env)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return new_deployment(tmp_path / "gauntlet", monkeypatch)


# --------------------------------------------------------------------------- fault-test helpers
# Added for tests/e2e/test_faults.py and bench/chaos.py; the helpers above are unchanged.

#: Instance settings a fault test needs to see outcomes in seconds rather than tens of seconds:
#: run monitoring and the run queue poll more often. Behaviour is otherwise the repo's.
FAST_INSTANCE_OVERRIDES: dict = {
    "run_monitoring": {"poll_interval_seconds": 2},
    "run_coordinator": {"config": {"dequeue_interval_seconds": 1}},
}

STARTED_PROCESS_MESSAGE = "Started process for run"
TRIAL_SENSOR = "optuna_trial_sensor"
SENSOR_NAME_TAG = "dagster/sensor_name"


def _merge(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def override_instance_config(dagster_home: Path, overrides: dict) -> None:
    """Merge ``overrides`` into the temporary home's copy of dagster.yaml (the repo's file is untouched)."""
    path = dagster_home / "dagster.yaml"
    path.write_text(yaml.safe_dump(_merge(yaml.safe_load(path.read_text()), overrides), sort_keys=False))


def materialize_shared_in_process(deployment: Deployment) -> None:
    """Build `market_data` and `cge_scenarios` in this process, with the deployment's settings.

    The sensor would request the same run first; doing it here saves a run launch (seconds)
    in tests whose subject is what happens to trial runs.
    """
    with mock.patch.dict(os.environ, deployment.env):
        defs = build_definitions(config=load_config(deployment.env).config)
        instance = deployment.instance()
        try:
            result = defs.resolve_job_def("shared_job").execute_in_process(instance=instance, partition_key="default")
        finally:
            instance.dispose()
    assert result.success


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process executing ``run_id`` (from its "Started process for run" event)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event and (event.message or "").startswith(STARTED_PROCESS_MESSAGE):
            return int(event.engine_event_data.metadata["pid"].value)
    return None


def session_of(pid: int) -> int | None:
    """The session id of a live process (None when it is gone), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    # Fields after "(comm)": state, ppid, pgrp, session, ...; comm may contain spaces.
    return int(stat.rsplit(")", 1)[1].split()[3])


def kill_run_worker(instance: dg.DagsterInstance, run_id: str, daemon: subprocess.Popen) -> int:
    """SIGKILL the worker of ``run_id``; refuses any process outside ``daemon``'s session.

    Other Dagster processes may run on the same machine: only a descendant of the daemon this
    test started (its own session, see `Deployment.start`) may be killed.
    """
    pid = run_worker_pid(instance, run_id)
    if pid is None:
        raise AssertionError(f"run {run_id} has not reported its worker process")
    if session_of(pid) != daemon.pid:
        raise AssertionError(f"pid {pid} of run {run_id} is not a process of daemon {daemon.pid}")
    os.kill(pid, signal.SIGKILL)
    return pid


def artifact_problems(artifacts_dir: Path) -> list[str]:
    """Every stored artifact whose .sha256 sidecar is missing or does not match (empty = all verify).

    Temporary files of an interrupted atomic write (``.<name>.<random>.tmp``) are not artifacts:
    nothing reads them.
    """
    problems = []
    for path in sorted(artifacts_dir.rglob("*")):
        if not path.is_file() or path.name.endswith((".sha256", ".tmp")):
            continue
        sidecar = path.with_name(path.name + ".sha256")
        if not sidecar.exists():
            problems.append(f"{path}: no sidecar")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sidecar.read_bytes().decode(errors="replace").strip():
            problems.append(f"{path}: sha256 does not match its sidecar")
    return problems


def decisions_per_partition(home: Path) -> Counter:
    """How many registry decisions each trial partition has."""
    registry = SqlDeploymentRegistryResource(database_url=f"sqlite:///{home}/gauntlet.db", live_capacity=3)
    return Counter(d.partition_key for d in registry.decisions())


def trial_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name="trial_job"))]


def run_partitions(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The trial partitions a run covers: its partition, or its range in the partitions' order."""
    if run.tags.get("dagster/partition"):
        return [run.tags["dagster/partition"]]
    start, end = run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]
    keys = list(instance.get_dynamic_partitions(trials_partitions_def.name))
    return keys[keys.index(start) : keys.index(end) + 1]


def is_retry(run: dg.DagsterRun) -> bool:
    """Whether ``run`` was launched from another run: Dagster's run retries, a user's
    re-execution, or the trial sensor's next attempt at trials whose run failed for good."""
    return run.parent_run_id is not None or "dagster/retry_number" in run.tags or ATTEMPT_TAG in run.tags


def group_roots(runs: list[dg.DagsterRun]) -> dict[str, str]:
    """Each run's group: the run a request launched, through Dagster's retries of it."""
    return {r.run_id: r.root_run_id or r.run_id for r in runs}


def from_trial_sensor(run: dg.DagsterRun) -> bool:
    """Whether ``run`` was requested by `optuna_trial_sensor` or is a retry of such a run.

    `paper_session_sensor` also launches `trial_job` runs (grading a matured paper session);
    those are not the trial sensor's requests.
    """
    return run.tags.get(SENSOR_NAME_TAG) == TRIAL_SENSOR


def sensor_requests_per_partition(instance: dg.DagsterInstance) -> Counter:
    """How many runs `optuna_trial_sensor` itself launched for each partition (retries are not counted)."""
    return Counter(
        key
        for run in trial_runs(instance)
        if from_trial_sensor(run) and not is_retry(run)
        for key in run_partitions(instance, run)
    )


def materializing_runs(instance: dg.DagsterInstance, asset: str) -> dict[str, list[str]]:
    """For each partition of ``asset``, the run id of each of its materializations."""
    runs: dict[str, list[str]] = {}
    cursor = None
    while True:
        # The event log hands out at most 10,000 records per call.
        page = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000, cursor=cursor)
        for record in page.records:
            runs.setdefault(record.partition_key, []).append(record.run_id)
        if not page.has_more:
            return runs
        cursor = page.cursor


def step_attempts(instance: dg.DagsterInstance, run_id: str) -> int:
    """How many times ``run_id`` executed its trial step: once, plus each retry its RetryPolicy
    made in the same run (Dagster retries an interrupted step, e.g. a run worker sent SIGTERM)."""
    return 1 + len(instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_RESTARTED).records)


def duplicated_trials(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Trials processed more than once: snapshot by two run groups, or by one run more often
    than it executed its step.

    A run group is a run the sensor launched plus its retries (which legitimately
    rematerialize its trials), identified by the group's root run id; a step retried within a
    run rematerializes the trials its failed attempt had reached, legitimately too.
    """
    roots = group_roots(trial_runs(instance))
    duplicated = {}
    for key, run_ids in materializing_runs(instance, "optuna_trial").items():
        per_run = Counter(run_ids)
        if len({roots.get(r, r) for r in run_ids}) != 1 or any(
            count > 1 and count > step_attempts(instance, run_id) for run_id, count in per_run.items()
        ):
            duplicated[key] = run_ids
    return duplicated


def sensor_ticks(instance: dg.DagsterInstance, name: str = TRIAL_SENSOR) -> list:
    """Every recorded tick of sensor ``name``, newest first."""
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []
