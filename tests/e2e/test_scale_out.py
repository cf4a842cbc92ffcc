"""Scaling out on real services: every store on PostgreSQL, trial batches on Celery workers with
Redis as the broker, and several Optuna workers writing one study while the sensor reads it.

Locally the service tests skip when PostgreSQL or Redis cannot be reached; with CI=true they
must run (`require_service`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import optuna
import pytest
import redis
import yaml
from dagster_celery import celery_executor

from pipeline_assets.definitions import build_definitions
from gauntlet.config import load_config
from pipeline_assets.trial_keys import trial_partition_key
from pipeline_assets.trial_assets import STUDY_TAG, trial_gauntlet
from scripts.up import dagster_pg_environment
from sensors.optuna_trial_sensor import Owed, batch_run_requests
from tests.conftest import add_complete_trials, require_service
from tests.dagster_helpers import HOLDOUT_ENVIRONMENT, Ticker, execute_request, local_definitions, partitions
from tests.e2e.conftest import BIN, ROOT, stop_process, wait_until, wait_while_the_daemon_works

REDIS_URL = os.environ.get("GAUNTLET_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Broker and results in Redis databases of their own; every broker key of a test carries a
# prefix of its own, so test sessions sharing one Redis never take each other's tasks.
BROKER_DB, BACKEND_DB = 14, 15
CELERY_JOB = "trial_celery_job"
ARTIFACTS = ("optuna_trial.json", "backtest_results.json", "cge_stress_report.json", "paper_trading_grade.json")
GATES = {
    "backtest_gate": "backtest_results",
    "cge_gate": "cge_stress_report",
    "paper_trading_gate": "paper_trading_grade",
}
# On the default market: lookback 12 fails the CGE gate, 160 is graded C on paper, 123 passes all.
FAILS_CGE = {"lookback": 12, "vol_lookback": 168, "target_bar_vol": 0.003}
GRADE_C = {"lookback": 160, "vol_lookback": 168, "target_bar_vol": 0.003}
PASSES = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}


def celery_executor_config() -> dict:
    """`celery_executor`'s config: broker and backend from the environment, as in production.

    The workers start from the same block (`-y`), so they listen where the runs publish.
    """
    return {
        "broker": {"env": "GAUNTLET_CELERY_BROKER"},
        "backend": {"env": "GAUNTLET_CELERY_BACKEND"},
        "config_source": {
            # Acknowledged once run: a worker with one slot and a prefetch of one then holds one
            # batch at a time, and the next batch goes to an idle worker.
            "task_acks_late": True,
            "result_expires": 600,
            # This test's own key prefix in the broker database (see `celery_broker`).
            "broker_transport_options": {"global_keyprefix": os.environ["GAUNTLET_TEST_CELERY_PREFIX"]},
        },
    }


def celery_trial_job() -> dg.JobDefinition:
    """`trial_job`'s assets on `celery_executor`, with the resources the environment selects.

    Module level, so runs of it are reconstructable: the run's orchestrator and every Celery
    worker import this module and call this function, reading the same variables. The executor
    is configured on the job (not in run config), so runs the sensor requests use it too.
    """
    job = dg.define_asset_job(
        CELERY_JOB,
        selection=dg.AssetSelection.assets(trial_gauntlet),
        executor_def=celery_executor.configured(celery_executor_config()),
    )
    defs = dg.Definitions.merge(build_definitions(load_config().config), dg.Definitions(jobs=[job]))
    return defs.resolve_job_def(CELERY_JOB)


@dataclass
class ProductionStores:
    """GAUNTLET_ENV=production with the instance, the study and the registry on one PostgreSQL server.

    The settings are in this process's environment too (the definitions, the EnvVar resources
    and the instance read them here); the processes it starts inherit them.
    """

    dagster_home: Path
    logs: Path

    @property
    def optuna_url(self) -> str:
        return os.environ["GAUNTLET_OPTUNA_STORAGE"]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def start(self, args: list[str], *, log: str) -> subprocess.Popen:
        """A process with this environment, its output in ``<logs>/<log>.log``, in its own group."""
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            # Runs and workers rebuild `celery_trial_job` from this module.
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        out = (self.logs / f"{log}.log").open("ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def production(
    make_pg_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ProductionStores:
    """deploy/dagster-postgres.yaml as the instance; the study and the registry in databases beside it."""
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_bytes((ROOT / "deploy" / "dagster-postgres.yaml").read_bytes())
    settings = {
        "GAUNTLET_ENV": "production",
        "GAUNTLET_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(dagster_home),
        **dagster_pg_environment(make_pg_database()),
        "GAUNTLET_OPTUNA_STORAGE": make_pg_database(),
        "GAUNTLET_DATABASE_URL": make_pg_database(),
        "GAUNTLET_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "GAUNTLET_ALERT_LOG": str(tmp_path / "alerts.jsonl"),
        **HOLDOUT_ENVIRONMENT,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return ProductionStores(dagster_home=dagster_home, logs=tmp_path)


@pytest.fixture
def celery_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Redis as broker and result backend, with a key prefix of this test's own (deleted afterwards)."""
    client = redis.Redis.from_url(f"{REDIS_URL}/{BROKER_DB}", socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        require_service(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"gauntlet-test-{uuid.uuid4().hex[:10]}:"
    monkeypatch.setenv("GAUNTLET_CELERY_BROKER", f"{REDIS_URL}/{BROKER_DB}")
    monkeypatch.setenv("GAUNTLET_CELERY_BACKEND", f"{REDIS_URL}/{BACKEND_DB}")
    monkeypatch.setenv("GAUNTLET_TEST_CELERY_PREFIX", prefix)
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def check_verdicts(instance: dg.DagsterInstance, keys: list[str]) -> dict[tuple[str, str], str]:
    verdicts = {}
    for check, asset in GATES.items():
        infos = instance.event_log_storage.get_asset_check_partition_info(
            [dg.AssetCheckKey(dg.AssetKey(asset), check)], partition_keys=keys
        )
        verdicts |= {(check, i.partition_key): i.latest_execution_status.value for i in infos}
    return verdicts


def trial_artifacts(base: Path, keys: list[str]) -> dict[tuple[str, str], bytes]:
    return {
        (key, name): (base / "trials" / key / name).read_bytes()
        for key in keys
        for name in ARTIFACTS
        if (base / "trials" / key / name).exists()
    }


def materializations_per_partition(instance: dg.DagsterInstance, asset: str) -> Counter:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
    return Counter(r.partition_key for r in records)


def celery_hosts(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """Names of the Celery workers that executed steps of the run."""
    hosts = set()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.engine_event_data
        if data and "Celery worker" in data.metadata:
            hosts.add(str(data.metadata["Celery worker"].value).split("@")[0])
    return hosts


@pytest.mark.e2e
@pytest.mark.postgres
def test_celery_workers_run_trial_batches_with_in_process_results(celery_broker, production, tmp_path):
    config_yaml = tmp_path / "celery.yaml"
    config_yaml.write_text(yaml.safe_dump({"execution": {"config": celery_executor_config()}}))
    # The instance's tables exist before the workers open the instance too.
    instance = production.instance()
    # Two workers on loopback; they import this module (and so the pipeline) while they start.
    worker_args = ["worker", "start", "-A", "dagster_celery.app", "-y", str(config_yaml), "-i", __name__]
    processes = [
        production.start(
            [str(BIN / "dagster-celery"), *worker_args, "-n", name, "--", "--pool=solo",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            log=name,
        )
        for name in ("worker1", "worker2")
    ]
    try:
        studies = {"alpha": [FAILS_CGE, PASSES], "beta": [GRADE_C, PASSES]}
        keys_by_study = {s: [trial_partition_key(s, i) for i in range(len(p))] for s, p in studies.items()}
        keys = [k for ks in keys_by_study.values() for k in ks]
        for study, params in studies.items():
            add_complete_trials(production.optuna_url, study, [0.1] * len(params), params=params)
        # What the sensor would request: one batch run per study, tagged with the study.
        requests = [
            request
            for study, study_keys in keys_by_study.items()
            for request in batch_run_requests(
                study_keys,
                {k: Owed(study=study) for k in study_keys},
                {k: i for i, k in enumerate(keys)},
                100,
                job_name="trial_job",
            )
        ]

        assert build_definitions().resolve_job_def("shared_job").execute_in_process(instance=instance, partition_key="default").success
        instance.add_dynamic_partitions("trials", keys)
        for name in ("worker1", "worker2"):
            wait_until(lambda n=name: " ready." in production.log(n), timeout=60, interval=0.5, what=f"Celery {name}")
        # Both runs at once, each orchestrated by a process of its own as a run worker would be.
        # A worker holds one batch at a time (late acks, one slot), so the second goes to the other.
        orchestrators = [
            production.start(
                [str(BIN / "dagster"), "job", "execute", "-m", __name__, "-a", celery_trial_job.__name__,
                 "--tags", json.dumps(dict(request.tags))],
                log=f"run{i}",
            )
            for i, request in enumerate(requests)
        ]
        processes += orchestrators

        # Meanwhile, the reference: the same batches through the in-process `trial_job`, stores of its own.
        with dg.instance_for_test() as reference:
            defs = local_definitions(production.optuna_url, tmp_path / "reference")
            assert defs.resolve_job_def("shared_job").execute_in_process(instance=reference, partition_key="default").success
            reference.add_dynamic_partitions("trials", keys)
            for request in requests:
                assert execute_request(defs, reference, request).success
            expected_verdicts = check_verdicts(reference, keys)
        expected_artifacts = trial_artifacts(tmp_path / "reference" / "artifacts", keys)
        assert set(expected_verdicts.values()) >= {"SUCCEEDED", "FAILED"}

        wait_until(lambda: all(p.poll() is not None for p in orchestrators), timeout=120, what="both runs to finish")
        runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name=CELERY_JOB))]
        logs = {name: production.log(name)[-3000:] for name in ("run0", "run1", "worker1", "worker2")}
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * len(requests), logs
        assert {r.tags[STUDY_TAG] for r in runs} == set(studies)
        # Each run's one step ran on one worker, and the two runs on different workers.
        assert sorted(h for r in runs for h in celery_hosts(instance, r.run_id)) == ["worker1", "worker2"], logs

        assert check_verdicts(instance, keys) == expected_verdicts
        assert trial_artifacts(tmp_path / "artifacts", keys) == expected_artifacts
        assert materializations_per_partition(instance, "optuna_trial") == Counter(keys)
    finally:
        instance.dispose()
        for proc in processes:
            stop_process(proc)


@pytest.mark.e2e
@pytest.mark.postgres
def test_two_optuna_workers_one_study_every_trial_processed_once(production):
    study_name, target = "shared-search", 5
    # The study (and the storage's schema) exists before the workers race to continue it.
    optuna.create_study(study_name=study_name, storage=production.optuna_url, direction="maximize")
    # Each worker runs until the study holds `target` trials; a short pace keeps them overlapping.
    trainers = [
        production.start(
            [sys.executable, "-m", "simulations.train", "--study", study_name, "--trials", str(target),
             "--storage", production.optuna_url, "--seed", str(seed), "--pace", "0.25"],
            log=f"trainer{seed}",
        )
        for seed in (1, 2)
    ]
    instance = production.instance()
    try:
        # The sensor reads the study while both workers write to it.
        ticker = Ticker(build_definitions(), instance)
        deadline = time.monotonic() + 120
        while any(t.poll() is None for t in trainers):
            assert time.monotonic() < deadline, "trainers still running after 120 s"
            ticker.tick()
            time.sleep(0.5)
        outputs = [production.log(f"trainer{seed}") for seed in (1, 2)]
        assert [t.returncode for t in trainers] == [0, 0], outputs
        ticker.tick_until_idle()

        trials = optuna.load_study(study_name=study_name, storage=production.optuna_url).trials
        written = [out.count(f"[{study_name}] trial") for out in outputs]
        assert all(written) and sum(written) == len(trials) >= target, written  # both wrote, none lost
        complete = sorted(
            trial_partition_key(study_name, t.number) for t in trials if t.state == optuna.trial.TrialState.COMPLETE
        )
        assert complete and partitions(instance) == complete
        for asset in ("optuna_trial", "backtest_results"):
            assert materializations_per_partition(instance, asset) == Counter(complete), asset
        assert all(r.success for r in ticker.results)
    finally:
        instance.dispose()
        for trainer in trainers:
            stop_process(trainer)


@pytest.mark.e2e
def test_daemon_takes_trials_through_the_gates_with_every_store_on_postgres(production):
    from resources.dagster_private import FINISHED_STATUSES

    add_complete_trials(production.optuna_url, "pg_demo", [0.3, 0.2, 0.1], params=[FAILS_CGE, GRADE_C, PASSES])
    instance = production.instance()
    daemon = production.start(
        [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")], log="daemon"
    )
    keys = [trial_partition_key("pg_demo", n) for n in range(3)]

    def settled() -> bool:
        runs = instance.get_run_records(dg.RunsFilter(job_name="trial_job"))
        done = instance.get_materialized_partitions(dg.AssetKey("backtest_results"))
        return set(keys) <= done and bool(runs) and all(r.dagster_run.status in FINISHED_STATUSES for r in runs)

    try:
        wait_while_the_daemon_works(instance, settled, what="3 trials through the gates on PostgreSQL")
        runs = instance.get_run_records(dg.RunsFilter(job_name="trial_job"))
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs), production.log("daemon")
        assert check_verdicts(instance, keys)[("cge_gate", keys[0])] == "FAILED"
        assert instance.get_materialized_partitions(dg.AssetKey("deployment_record")) == {keys[2]}
        assert materializations_per_partition(instance, "optuna_trial") == Counter(keys)
    finally:
        stop_process(daemon)
        instance.dispose()


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_production_instance_config_is_the_local_one_on_postgres():
    local, deployed = _yaml(ROOT / "dagster.yaml"), _yaml(ROOT / "deploy" / "dagster-postgres.yaml")
    assert {k: v for k, v in deployed.items() if k != "storage"} == {k: v for k, v in local.items() if k != "storage"}
    db = deployed["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert all(set(value) == {"env"} for value in db.values())  # every credential from the environment


def test_kubernetes_values_agree_with_the_instance_and_the_code_location():
    values, local = _yaml(ROOT / "deploy" / "k8s" / "values.yaml"), _yaml(ROOT / "dagster.yaml")
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["tagConcurrencyLimits"] == local["run_coordinator"]["config"]["tag_concurrency_limits"]
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"][:2] == ["-m", "pipeline_assets.definitions"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert "pipeline_assets.definitions" in (ROOT / "deploy" / "Dockerfile").read_text()
