"""The daemon path a user relies on: trials written to Optuna end up materialized."""

import dagster as dg
import pytest

from tests.conftest import add_complete_trials
from tests.e2e.conftest import stop_process, wait_until

pytestmark = pytest.mark.e2e


def test_daemon_picks_up_every_trial_exactly_once(deployment):
    add_complete_trials(deployment.optuna_url, "demo", [0.1, 0.2, 0.3])
    daemon = deployment.start_daemon()
    try:
        instance = deployment.instance()

        def materialized() -> set[str]:
            return set(instance.get_materialized_partitions(dg.AssetKey("optuna_trial")))

        wait_until(lambda: len(materialized()) == 3, timeout=150, what="3 trials materialized\n" + deployment.log("daemon"))
        add_complete_trials(deployment.optuna_url, "demo", [0.4, 0.5])
        wait_until(lambda: len(materialized()) == 5, timeout=150, what="5 trials materialized")
        assert materialized() == {f"demo__t{i:08d}" for i in range(5)}
        runs = instance.get_run_records(dg.RunsFilter(job_name="trial_job"))
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        planned = [
            r.dagster_run.tags.get("dagster/partition") or r.dagster_run.tags.get("dagster/asset_partition_range_start")
            for r in runs
        ]
        assert len(planned) == len(set(planned)) == 2  # one run per tick's batch, none repeated
    finally:
        stop_process(daemon)
    assert daemon.returncode is not None
