"""The daemon path a user relies on: trials written to Optuna end up through the gates."""

import dagster as dg
import pytest

from resources.dagster_private import FINISHED_STATUSES
from tests.conftest import add_complete_trials
from tests.e2e.conftest import run_partitions, stop_process, wait_while_the_daemon_works

pytestmark = pytest.mark.e2e


def _trial_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name="trial_job"))]


def _settled(instance: dg.DagsterInstance, n_trials: int) -> bool:
    """Every trial has a snapshot and no trial run is still queued or running."""
    done = instance.get_materialized_partitions(dg.AssetKey("optuna_trial"))
    runs = _trial_runs(instance)
    return len(done) == n_trials and bool(runs) and all(r.status in FINISHED_STATUSES for r in runs)


def test_daemon_takes_every_trial_through_the_gates_exactly_once(deployment):
    add_complete_trials(deployment.optuna_url, "demo", [0.1, 0.2, 0.3])
    daemon = deployment.start_daemon()
    try:
        instance = deployment.instance()
        wait_while_the_daemon_works(instance, lambda: _settled(instance, 3), what="3 trials through the gates")
        add_complete_trials(deployment.optuna_url, "demo", [0.4, 0.5])
        wait_while_the_daemon_works(instance, lambda: _settled(instance, 5), what="5 trials through the gates")
        keys = {f"demo__t{i:08d}" for i in range(5)}
        assert instance.get_materialized_partitions(dg.AssetKey("optuna_trial")) == keys
        assert instance.get_materialized_partitions(dg.AssetKey("backtest_results")) == keys
        runs = _trial_runs(instance)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), deployment.log("daemon")
        # One run per tick's batch, none repeated: a tick may land while the trials of one
        # addition are still being written, so the runs are at least the two additions.
        covered = [key for run in runs for key in run_partitions(instance, run)]
        assert sorted(covered) == sorted(keys) and len(runs) >= 2
        shared = instance.get_run_records(dg.RunsFilter(job_name="shared_job"))
        assert len(shared) == 1 and shared[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS
    finally:
        stop_process(daemon)
    assert daemon.returncode is not None
