"""`make chaos`: a soak of the real daemon while its run workers are killed and its storages go away.

200 trials arrive in an Optuna SQLite study in waves (10 every 5 s). While they arrive, and
for a minute after, the worker of the newest executing trial run is killed with SIGKILL every
few seconds. Beside the kills, the deployment registry and then the Optuna storage each go
away for longer than the transient retry budget (a writer holding an exclusive lock: writes,
and for Optuna reads too, fail as "database is locked"); the Optuna outage comes after the
last arrival, since the trainer writing the trials would fail on it too. The daemon runs on a temporary home with the repository's dagster.yaml (run
monitoring, run retries) unchanged. Then the soak waits, bounded, for every run to end,
prints a table and writes bench/chaos_results.json:

- trials decided: admitted trials with a final decision -- a (non-dry) deployment record, a
  failed gate, a deterministic failure waiting for `gauntlet retry`, or a pending paper
  session -- whichever run recorded it (a gate can reject a trial in a run killed later);
- trials without a final decision: admitted but not decided (target 0);
- duplicate requests: trials the trial sensor requested again although an earlier request of
  theirs had not failed for good (target 0); requesting a trial again after its run and that
  run's retries all failed (a new attempt, ``gauntlet/attempt``) is the recovery, not a
  duplicate;
- runs retried: runs launched from a failed run (``dagster/retry_number``, parent run id);
- run groups failed for good: a sensor request whose run and retries all failed (for
  information: the sensor's next attempt takes their undecided trials);
- stuck runs, artifact files failing their checksum, trials with two registry decisions
  (targets 0); paper-grading runs (`paper_session_sensor`), for information.

When a target is missed the soak's home (instance, daemon log, artifacts) is kept for study.

Not part of `make test`: it takes several minutes. Numbers are reported, not asserted.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg

from resources.dagster_private import FINISHED_STATUSES
from sensors.optuna_trial_sensor import RETRY_BACKOFF_SECONDS, settled as decided
from tests.conftest import add_complete_trials
from tests.e2e.conftest import (
    ROOT,
    Deployment,
    artifact_problems,
    decisions_per_partition,
    from_trial_sensor,
    group_roots,
    is_retry,
    kill_run_worker,
    run_partitions,
    stop_process,
    trial_runs,
)

RESULTS = Path(__file__).resolve().parent / "chaos_results.json"
STUDY = "chaos"
N_TRIALS = 200
WAVE_SIZE = 10
WAVE_SECONDS = 5.0
KILL_SECONDS = 6.0
#: Kills go on this long after the last trial arrived, so late runs and retries are hit too.
KILL_AFTER_ARRIVALS_SECONDS = 60.0
#: Storage outages: (storage, seconds after the start). Each lasts longer than the transient
#: retry policy's budget (2 + 4 + 8 + 16 s, with jitter), so runs fail for good on it and the
#: trial sensor must request their trials again.
OUTAGES = (("registry", 30.0), ("optuna", WAVE_SECONDS * N_TRIALS / WAVE_SIZE + 5.0))
OUTAGE_SECONDS = 45.0
#: The whole soak ends by then, whatever state the runs are in.
DEADLINE_SECONDS = 900.0
#: With every run ended, how long nothing new must happen before the soak stops waiting:
#: above the trial sensor's second backoff (its re-request of a trial that failed on an
#: outage twice) plus a run's launch.
QUIET_SECONDS = 3 * RETRY_BACKOFF_SECONDS + 30.0


class Arrivals(threading.Thread):
    """Writes the trials in waves, as a trainer finishing them would."""

    def __init__(self, url: str) -> None:
        super().__init__(name="arrivals", daemon=True)
        self.url = url
        self.finished_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for start in range(0, N_TRIALS, WAVE_SIZE):
                add_complete_trials(self.url, STUDY, [0.1 + 0.001 * i for i in range(start, start + WAVE_SIZE)])
                time.sleep(WAVE_SECONDS)
        except BaseException as exc:  # re-raised by the soak's thread
            self.error = exc
        finally:
            self.finished_at = time.monotonic()


class Outages(threading.Thread):
    """Takes each storage in OUTAGES away for OUTAGE_SECONDS: a writer holds an exclusive lock."""

    def __init__(self, paths: dict[str, Path], started: float) -> None:
        super().__init__(name="outages", daemon=True)
        self.paths = paths
        self.started = started
        self.done: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for name, at in OUTAGES:
                time.sleep(max(0.0, self.started + at - time.monotonic()))
                # isolation_level=None: the BEGIN below is ours, not the sqlite3 module's.
                conn = sqlite3.connect(self.paths[name], timeout=60.0, isolation_level=None)
                try:
                    conn.execute("BEGIN EXCLUSIVE")
                    print(f"  {time.monotonic() - self.started:6.1f}s {name} storage away for {OUTAGE_SECONDS:g}s")
                    time.sleep(OUTAGE_SECONDS)
                    conn.execute("ROLLBACK")
                finally:
                    conn.close()
                self.done.append(name)
        except BaseException as exc:  # re-raised by the soak's thread
            self.error = exc


def _deployment(home: Path) -> Deployment:
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "GAUNTLET_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "GAUNTLET_SENSOR_INTERVAL": "2",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    # Create the SQLite storages once, before the daemon's threads race to create them.
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    return Deployment(home=home, dagster_home=dagster_home, env=env)


def _newest_started_run(instance: dg.DagsterInstance) -> str | None:
    records = instance.get_run_records(
        dg.RunsFilter(job_name="trial_job", statuses=[dg.DagsterRunStatus.STARTED]), limit=1
    )
    return records[0].dagster_run.run_id if records else None


def _duplicate_requests(instance: dg.DagsterInstance) -> set[str]:
    """Trials the trial sensor requested while an earlier request of theirs had not failed for good.

    A request is a run group: the sensor's run and Dagster's retries of it (one root run id).
    """
    records = [r for r in instance.get_run_records(dg.RunsFilter(job_name="trial_job")) if from_trial_sensor(r.dagster_run)]
    roots = group_roots([r.dagster_run for r in records])
    groups: dict[str, list] = {}
    for record in records:
        groups.setdefault(roots[record.dagster_run.run_id], []).append(record)
    requests: dict[str, list[tuple[float, bool]]] = {}
    for group in groups.values():
        failed_for_good = all(r.dagster_run.status == dg.DagsterRunStatus.FAILURE for r in group)
        first = min(group, key=lambda r: r.create_timestamp.timestamp())
        for key in run_partitions(instance, first.dagster_run):
            requests.setdefault(key, []).append((first.create_timestamp.timestamp(), failed_for_good))
    return {
        key
        for key, made in requests.items()
        if any(not failed for _, failed in sorted(made)[:-1])  # a later request after one that did not fail
    }


def _kill_workers(
    instance: dg.DagsterInstance, daemon: subprocess.Popen, arrivals: Arrivals, started: float
) -> int:
    """Kill at most one executing run's worker every KILL_SECONDS until the kill phase ends."""
    kills = 0
    next_kill = started + KILL_SECONDS
    while time.monotonic() - started < DEADLINE_SECONDS:
        if arrivals.finished_at is not None and time.monotonic() - arrivals.finished_at > KILL_AFTER_ARRIVALS_SECONDS:
            return kills
        time.sleep(0.5)
        # Only an executing run has a worker: queued and starting runs are left alone.
        run_id = _newest_started_run(instance)
        if time.monotonic() < next_kill or run_id is None:
            continue
        try:
            pid = kill_run_worker(instance, run_id, daemon)
        except (AssertionError, ProcessLookupError) as exc:  # the run ended since it was listed
            print(f"  {time.monotonic() - started:6.1f}s no kill: {exc}")
            continue
        kills += 1
        next_kill = time.monotonic() + KILL_SECONDS
        print(f"  {time.monotonic() - started:6.1f}s killed worker {pid} of run {run_id[:8]}")
    return kills


def _wait_until_settled(instance: dg.DagsterInstance, started: float) -> bool:
    """Whether every trial got its final decision and every run ended before the deadline."""
    quiet_since: float | None = None
    while time.monotonic() - started < DEADLINE_SECONDS:
        runs = trial_runs(instance)
        finished = bool(runs) and all(r.status in FINISHED_STATUSES for r in runs)
        admitted = set(instance.get_dynamic_partitions("trials"))
        if finished and len(admitted) == N_TRIALS and decided(instance, admitted) == admitted:
            return True
        # With every run ended, a trial still owed a decision waits for the sensor's backoff;
        # once nothing new has happened for longer than that, waiting longer changes nothing.
        if not finished:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > QUIET_SECONDS:
            return False
        time.sleep(1.0)
    return False


def soak() -> dict[str, dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="gauntlet-chaos-"))
    deployment = _deployment(tmp / "gauntlet")
    arrivals = Arrivals(deployment.optuna_url)
    started = time.monotonic()
    outages = Outages(
        {"registry": deployment.home / "gauntlet.db", "optuna": Path(deployment.optuna_url.removeprefix("sqlite:///"))},
        started,
    )
    daemon = deployment.start_daemon()
    instance = deployment.instance()
    try:
        print(
            f"soak home {deployment.home}: {N_TRIALS} trials in waves of {WAVE_SIZE} every {WAVE_SECONDS:g}s, "
            f"a run worker killed every {KILL_SECONDS:g}s until {KILL_AFTER_ARRIVALS_SECONDS:g}s after the last"
        )
        arrivals.start()
        outages.start()
        kills = _kill_workers(instance, daemon, arrivals, started)
        if arrivals.error is not None:
            raise arrivals.error
        outages.join(timeout=max(0.0, DEADLINE_SECONDS - (time.monotonic() - started)))
        if outages.error is not None:
            raise outages.error
        print(f"  {time.monotonic() - started:6.1f}s kills stopped; waiting for the runs to end")
        settled = _wait_until_settled(instance, started)
        elapsed = time.monotonic() - started
    finally:
        stop_process(daemon)

    runs = trial_runs(instance)
    duplicates = _duplicate_requests(instance)
    decisions = decisions_per_partition(deployment.home)
    admitted = set(instance.get_dynamic_partitions("trials"))
    settled_trials = decided(instance, admitted)
    groups: dict[str, list[dg.DagsterRun]] = {}
    roots = group_roots(runs)
    for run in runs:
        if from_trial_sensor(run):
            groups.setdefault(roots[run.run_id], []).append(run)
    figures = {
        "trials_arrived": (N_TRIALS, "trials", None, None),
        "trials_admitted": (len(admitted), "trials", N_TRIALS, "higher"),
        "trials_decided": (len(settled_trials), "trials", N_TRIALS, "higher"),
        "trials_without_final_decision": (len(admitted - settled_trials), "trials", 0, "lower"),
        "duplicate_requests": (len(duplicates), "trials", 0, "lower"),
        "run_workers_killed": (kills, "processes", None, None),
        "storage_outages": (len(outages.done), "outages", len(OUTAGES), "higher"),
        "trial_runs": (sum(from_trial_sensor(r) for r in runs), "runs", None, None),
        "runs_failed": (sum(from_trial_sensor(r) and r.status == dg.DagsterRunStatus.FAILURE for r in runs), "runs", None, None),
        "runs_retried": (sum(from_trial_sensor(r) and is_retry(r) for r in runs), "runs", None, None),
        "run_groups_failed_for_good": (
            sum(all(r.status == dg.DagsterRunStatus.FAILURE for r in group) for group in groups.values()),
            "run groups",
            None,
            None,
        ),
        "paper_grading_runs": (sum(not from_trial_sensor(r) for r in runs), "runs", None, None),
        "stuck_runs": (sum(r.status not in FINISHED_STATUSES for r in runs), "runs", 0, "lower"),
        "artifact_mismatches": (len(artifact_problems(deployment.home / "artifacts")), "files", 0, "lower"),
        "duplicate_decisions": (sum(1 for n in decisions.values() if n > 1), "trials", 0, "lower"),
        "settled": (int(settled), "bool", 1, "higher"),
        "soak_seconds": (round(elapsed, 1), "s", None, None),
    }
    instance.dispose()
    results = {
        name: {
            "value": value,
            "unit": unit,
            "target": target,
            "better": better,
            "meets_target": None if target is None else (value <= target if better == "lower" else value >= target),
        }
        for name, (value, unit, target, better) in figures.items()
    }
    if all(figure["meets_target"] is not False for figure in results.values()):
        shutil.rmtree(tmp)
    else:
        print(f"a target was missed: the soak's instance, logs and artifacts are kept in {tmp}")
    return results


def main() -> int:
    figures = soak()
    print(f"\n{'figure':28} {'value':>8} {'unit':11} {'target':>8}  verdict")
    for name, figure in figures.items():
        target = figure["target"]
        target_text = "—" if target is None else f"{'≤' if figure['better'] == 'lower' else '≥'} {target}"
        verdict = {None: "—", True: "meets", False: "MISSES"}[figure["meets_target"]]
        print(f"{name:28} {figure['value']:>8} {figure['unit']:11} {target_text:>8}  {verdict}")
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
                "settings": {
                    "trials": N_TRIALS,
                    "wave_size": WAVE_SIZE,
                    "wave_seconds": WAVE_SECONDS,
                    "kill_seconds": KILL_SECONDS,
                    "kill_after_arrivals_seconds": KILL_AFTER_ARRIVALS_SECONDS,
                    "deadline_seconds": DEADLINE_SECONDS,
                    "outages": [{"storage": name, "at_seconds": at, "seconds": OUTAGE_SECONDS} for name, at in OUTAGES],
                },
                "figures": figures,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
