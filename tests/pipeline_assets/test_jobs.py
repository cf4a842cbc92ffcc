"""Which executor each job runs on."""

from tests.dagster_helpers import local_definitions


def test_every_job_runs_its_steps_in_the_run_workers_process(tmp_path):
    # The asset job is what the UI's materializations, backfills and the automation launch: on the
    # default multiprocess executor each of their runs would load the definitions twice.
    defs = local_definitions(f"sqlite:///{tmp_path / 'optuna.db'}", tmp_path)
    jobs = {job.name: job.executor_def.name for job in defs.get_repository_def().get_all_jobs()}
    assert {"trial_job", "shared_job", "reporting_job", "__ASSET_JOB"} <= set(jobs)
    assert set(jobs.values()) == {"in_process"}, jobs
