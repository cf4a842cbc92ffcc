"""The plain-SQL reads of Dagster's storage agree with the Dagster API they stand in for."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres.utils import pg_url_from_config

from resources.dagster_private import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    NOT_FINISHED_STATUSES,
    PARTITION_NAME_TAG,
    AssetCheckEvaluationPlanned,
    AssetCheckExecutionRecordStatus,
    BulkActionStatus,
    DagsterEvent,
    DagsterEventType,
    JobFailureData,
    PartitionBackfill,
    RunFailureReason,
    RunStatusChangeRecordsFilter,
    RunStorageSqlMetadata,
    SerializableErrorInfo,
    SqlEventLogStorageMetadata,
    backfill_partitions_waiting,
    create_run_for_test,
    make_new_backfill_id,
)
from resources import dagster_storage
from resources.dagster_storage import DagsterStorage, DagsterTables, storage_of
from simulations.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
TRIALS = dg.DynamicPartitionsDefinition(name="trials")
PARTITIONS = dg.StaticPartitionsDefinition(["a", "b", "c"])
CHECK = dg.AssetCheckKey(dg.AssetKey("scored"), "score_gate")
#: Evaluated only where the score is at least 0.5 (as a later gate is not for a trial an earlier
#: gate rejected).
LATER = dg.AssetCheckKey(dg.AssetKey("scored"), "later_gate")


@dg.multi_asset(
    specs=[dg.AssetSpec("scored", partitions_def=PARTITIONS)],
    check_specs=[dg.AssetCheckSpec(CHECK.name, asset="scored"), dg.AssetCheckSpec(LATER.name, asset="scored")],
    config_schema={"scores": dg.Field(dg.Permissive())},
)
def scored(context: dg.AssetExecutionContext):
    # As the trial gauntlet records its gates: a batch of partitions, an evaluation per partition.
    scores = context.op_execution_context.op_config["scores"]
    for partition in context.partition_keys:
        score = scores[partition]
        yield dg.AssetMaterialization(CHECK.asset_key, partition=partition)
        failed = [{"threshold": "min_score", "value": score, "limit": 0.5, "margin": score - 0.5}] if score < 0.5 else []
        yield dg.AssetCheckEvaluation(
            asset_key=CHECK.asset_key,
            check_name=CHECK.name,
            passed=not failed,
            partition=partition,
            description=f"score {score:g} < min 0.5" if failed else None,
            metadata={
                "failed_thresholds": dg.MetadataValue.json(failed),
                "report": dg.MetadataValue.md("| a | b |\n| - | - |\n| 1 | 2 |"),
                "score": score,
            }
            if failed
            else {"score": score},
        )
        if not failed:
            yield dg.AssetCheckEvaluation(
                asset_key=LATER.asset_key, check_name=LATER.name, passed=score > 0.8, partition=partition
            )
    for check in (CHECK, LATER):
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check))
    yield dg.Output(None, output_name="scored")


TRIAL = dg.AssetKey("trial")
SCORED = CHECK.asset_key
CHECKS = [(CHECK.asset_key.to_string(), CHECK.name), (LATER.asset_key.to_string(), LATER.name)]


@dg.asset(partitions_def=TRIALS, config_schema={"fail": dg.Field(bool, default_value=False)})
def trial(context: dg.AssetExecutionContext) -> None:
    if context.op_execution_context.op_config["fail"]:
        raise RuntimeError(f"[trial {context.partition_key}, stage backtest] no bars")


DEFS = dg.Definitions(
    assets=[scored, trial],
    jobs=[dg.define_asset_job("scored_job", [scored]), dg.define_asset_job("trial_job", [trial])],
)
SCORED_JOB, TRIAL_JOB = DEFS.resolve_job_def("scored_job"), DEFS.resolve_job_def("trial_job")


def _write_home(home: Path, storage: dict | None) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = {"telemetry": {"enabled": False}}
    if storage is not None:
        config["storage"] = storage
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _storage(home: Path) -> DagsterStorage:
    """The adapter's view of ``home``, its dagster.yaml loaded as the caller loads it."""
    path = home / "dagster.yaml"
    config = yaml.safe_load(path.read_text()) if path.exists() else None
    return storage_of(home, config=config, environ=os.environ)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def home(request, tmp_path):
    """A DAGSTER_HOME whose dagster.yaml names each storage Gauntlet runs on, and its instance."""
    if request.param == "postgres":
        storage = {"postgres": {"postgres_url": request.getfixturevalue("pg_database")}}
    else:
        storage = {"sqlite": {"base_dir": str(tmp_path / "base")}}
    path = _write_home(tmp_path / "dagster", storage)
    with dg.DagsterInstance.from_config(str(path)) as instance:
        yield path, instance


def _execute(instance: dg.DagsterInstance, job, *, partition: str | None = None, tags=None, config=None) -> str:
    result = job.execute_in_process(
        instance=instance, partition_key=partition, tags=tags, run_config=config or {}, raise_on_error=False
    )
    return result.run_id


def _score(instance: dg.DagsterInstance, scores: dict[str, float], *, last: str | None = None) -> str:
    """A run of `scored` over the range of ``scores`` (to ``last``: a partition with no score fails it)."""
    keys = sorted(scores)
    tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: last or keys[-1]}
    return _execute(instance, SCORED_JOB, tags=tags, config={"ops": {"scored": {"config": {"scores": scores}}}})


def _fill(instance: dg.DagsterInstance) -> dict[str, str]:
    """Everything `gauntlet status` reads, recorded by Dagster itself; the run ids of note."""
    instance.add_dynamic_partitions(TRIALS.name, ["t3", "t1", "t2", "t4"])
    instance.add_dynamic_partitions("other", ["x"])
    for key in ("t1", "t2"):
        assert instance.get_run_by_id(_execute(instance, TRIAL_JOB, partition=key)).is_success
    instance.wipe_assets([TRIAL])
    _execute(instance, TRIAL_JOB, partition="t2")
    failing = {"ops": {"trial": {"config": {"fail": True}}}}
    runs = {"raised": _execute(instance, TRIAL_JOB, partition="t3", config=failing)}

    _score(instance, {"a": 0.9, "b": 0.6, "c": 0.95})
    _score(instance, {"a": 0.1, "b": 0.7})
    # No score for b: a range run that a raised error fails after a's evaluation.
    runs["range"] = _score(instance, {"a": 0.95}, last="c")

    # A run failed from outside it (run monitoring, the launcher): with an error, or with nothing.
    crashed = create_run_for_test(instance, job_name="trial_job", tags={PARTITION_NAME_TAG: "t1"})
    error = SerializableErrorInfo("run worker for t1 exited unexpectedly", [], "DagsterRunWorkerError")
    instance.report_run_failed(crashed, job_failure_data=JobFailureData(error, RunFailureReason.RUN_WORKER_RESTART))
    silent = create_run_for_test(instance, job_name="trial_job", tags={})
    instance.report_run_failed(silent, message="")
    runs.update(crashed=crashed.run_id, silent=silent.run_id)
    gone = create_run_for_test(instance, job_name="trial_job", tags={PARTITION_NAME_TAG: "t2"})
    instance.report_run_failed(gone, message="its run record was deleted")
    instance.run_storage.delete_run(gone.run_id)
    runs["gone"] = gone.run_id

    tags = {PARTITION_NAME_TAG: "t4", "gauntlet/study": "s"}
    # Not QUEUED: Dagster queues only a run of a code location (the status list is checked below).
    create_run_for_test(instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTING, tags=tags)
    range_tags = {ASSET_PARTITION_RANGE_START_TAG: "t1", ASSET_PARTITION_RANGE_END_TAG: "t2"}
    in_flight = create_run_for_test(
        instance, job_name="scored_job", status=dg.DagsterRunStatus.STARTED, tags=range_tags
    )
    # Its check on c planned, not evaluated yet: as a trial run reports it (in process, Dagster plans
    # the checks of `scored` without partitions).
    planned = AssetCheckEvaluationPlanned(
        asset_key=LATER.asset_key, check_name=LATER.name, partitions_subset=PARTITIONS.subset_with_partition_keys(["c"])
    )
    event = DagsterEvent(
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value, job_name="scored_job", event_specific_data=planned
    )
    instance.report_dagster_event(event, run_id=in_flight.run_id)
    runs["in_flight"] = in_flight.run_id
    create_run_for_test(instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTED)
    create_run_for_test(instance, job_name="trial_job", status=dg.DagsterRunStatus.SUCCESS, tags=tags)

    for name in ("requested", "canceled"):
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(),
            asset_graph=DEFS.resolve_asset_graph(),
            partition_names=["t4"],
            asset_selection=[TRIAL],
            backfill_timestamp=0.0,
            tags={"gauntlet/retry": name},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        runs[name] = backfill.backfill_id
    instance.update_backfill(instance.get_backfill(runs["canceled"]).with_status(BulkActionStatus.CANCELED))
    return runs


def _failure_text(record: dg.EventLogRecord) -> str:
    """The failure's message read through Dagster's records, as `gauntlet status` read it before this adapter."""
    event = record.event_log_entry.dagster_event
    error = getattr(event.event_specific_data, "error", None) if event else None
    if error is not None:
        return error.message
    return (event.message if event else None) or record.event_log_entry.user_message or "run failed"


def test_each_read_matches_the_dagster_call_it_stands_in_for(home):
    path, instance = home
    runs = _fill(instance)
    with DagsterTables(_storage(path)) as tables:
        # Dynamic partitions, in the order they were added.
        assert tables.dynamic_partitions(TRIALS.name) == list(instance.get_dynamic_partitions(TRIALS.name))
        assert tables.dynamic_partitions(TRIALS.name) == ["t3", "t1", "t2", "t4"]
        assert tables.dynamic_partitions("other") == ["x"]
        assert tables.dynamic_partitions("absent") == []

        # Materialized partitions, the wipe of `trial` honoured.
        keys = [SCORED, TRIAL, dg.AssetKey("never")]
        materialized = tables.materialized_partitions([k.to_string() for k in keys])
        assert materialized == {k.to_string(): instance.get_materialized_partitions(k) for k in keys}
        assert materialized[TRIAL.to_string()] == {"t2"}
        assert materialized[SCORED.to_string()] == {"a", "b", "c"}

        partitions = {"a", "b", "c", "t1", "t2", "t3", "zz"}
        expected: dict[str, int] = {}
        for key in (SCORED, TRIAL):
            by_partition = instance.get_latest_storage_id_by_partition(
                key, DagsterEventType.ASSET_MATERIALIZATION, partitions=partitions
            )
            for partition, storage_id in by_partition.items():
                expected[partition] = max(expected.get(partition, 0), storage_id)
        latest = tables.latest_materialization_ids([SCORED.to_string(), TRIAL.to_string()], partitions=partitions)
        assert latest == expected
        assert set(latest) == {"a", "b", "c", "t2"}
        assert tables.latest_materialization_ids([SCORED.to_string()], partitions=set()) == {}

        # Each check's latest execution per partition: planned, passed and failed ones.
        infos = instance.event_log_storage.get_asset_check_partition_info([CHECK, LATER])
        executions = {(e.check_name, e.partition): (e.status, e.run_id) for e in tables.latest_check_executions(CHECKS)}
        assert executions == {
            (i.check_key.name, i.partition_key): (i.latest_execution_status.value, i.latest_planned_run_id)
            for i in infos
            if i.partition_key is not None
        }
        assert executions[(LATER.name, "c")] == ("PLANNED", runs["in_flight"])
        assert {status for status, _ in executions.values()} == {"PLANNED", "SUCCEEDED", "FAILED"}

        # A check's failed evaluations, newest first, in pages, with their JSON metadata entry.
        history = instance.event_log_storage.get_asset_check_execution_history(
            CHECK, limit=100, status={AssetCheckExecutionRecordStatus.FAILED}
        )
        read = tables.failed_check_evaluations(CHECKS[0], metadata_key="failed_thresholds", limit=100)
        assert [(e.storage_id, e.partition) for e in read] == [(r.id, r.partition) for r in history]
        assert len(read) == 1
        for evaluation, record in zip(read, history, strict=True):
            expected_data = record.event.dagster_event.asset_check_evaluation_data
            assert evaluation.description == expected_data.description
            assert evaluation.metadata_data == expected_data.metadata["failed_thresholds"].data
            assert evaluation.metadata_data[0]["threshold"] == "min_score"
        not_json = tables.failed_check_evaluations(CHECKS[0], metadata_key="score", limit=9)
        assert [e.metadata_data for e in not_json] == [None]
        page = tables.failed_check_evaluations(CHECKS[1], metadata_key="failed_thresholds", limit=1)
        rest = tables.failed_check_evaluations(
            CHECKS[1], metadata_key="failed_thresholds", limit=9, before_id=page[-1].storage_id
        )
        later = instance.event_log_storage.get_asset_check_execution_history(
            LATER, limit=100, status={AssetCheckExecutionRecordStatus.FAILED}
        )
        assert [e.storage_id for e in page + rest] == [r.id for r in later]
        assert len(later) == 2  # b failed the later gate twice

        # Unfinished runs with their tags, newest first.
        unfinished = instance.get_run_records(dg.RunsFilter(statuses=NOT_FINISHED_STATUSES))
        assert [(r.run_id, r.status, r.tags) for r in tables.unfinished_runs()] == [
            (r.dagster_run.run_id, r.dagster_run.status.value, dict(r.dagster_run.tags)) for r in unfinished
        ]
        assert [r.dagster_run.status.value for r in unfinished] == ["STARTED", "STARTED", "STARTING"]

        # Run failures, newest first, with their runs' tags; a deleted run's failure left out.
        for limit in (2, 100):
            records = instance.fetch_run_status_changes(
                RunStatusChangeRecordsFilter(DagsterEventType.RUN_FAILURE), limit=limit
            ).records
            by_id = {
                r.dagster_run.run_id: r.dagster_run
                for r in instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in records]))
            }
            failures = tables.run_failures(limit=limit)
            assert [(f.storage_id, f.run_id, f.timestamp, f.message, f.tags) for f in failures] == [
                (r.storage_id, r.run_id, r.timestamp, _failure_text(r), dict(by_id[r.run_id].tags))
                for r in records
                if r.run_id in by_id
            ]
        messages = {f.run_id: f.message for f in failures}
        assert runs["gone"] not in messages
        assert messages[runs["crashed"]] == "run worker for t1 exited unexpectedly"
        assert messages[runs["silent"]] == "run failed"
        # A step's error fails the run with the step's wrapper error, not its cause.
        assert messages[runs["raised"]].startswith("dagster._core.errors.DagsterExecutionStepExecutionError: ")
        tags = {f.run_id: f.tags for f in failures}
        assert tags[runs["raised"]][PARTITION_NAME_TAG] == "t3"
        assert tags[runs["range"]][ASSET_PARTITION_RANGE_END_TAG] == "c"

        # Requested backfills, their bodies as Dagster reads them.
        requested = instance.get_backfills(status=BulkActionStatus.REQUESTED)
        bodies = tables.requested_backfills()
        assert [key for key, _ in bodies] == [b.backfill_id for b in requested] == [runs["requested"]]
        assert [dg.deserialize_value(body, PartitionBackfill) for _, body in bodies] == list(requested)
        # What the requested backfill has not turned into runs yet: its one partition.
        assert backfill_partitions_waiting(bodies[0][1], asset_keys=[TRIAL.to_string()]) == {"t4"}


def test_each_table_and_column_read_is_dagsters():
    for tables, metadata in [
        (dagster_storage.INDEX_TABLES, SqlEventLogStorageMetadata),
        (dagster_storage.RUN_TABLES, RunStorageSqlMetadata),
    ]:
        for table in tables:
            assert {c.name for c in table.c} <= set(metadata.tables[table.name].c.keys()), table.name
    assert set(dagster_storage.NOT_FINISHED_STATUSES) == {s.value for s in NOT_FINISHED_STATUSES}
    assert len(dagster_storage.NOT_FINISHED_STATUSES) == len(NOT_FINISHED_STATUSES)


def test_the_names_of_tags_and_asset_keys_are_dagsters():
    assert dagster_storage.PARTITION_NAME_TAG == PARTITION_NAME_TAG
    assert dagster_storage.ASSET_PARTITION_RANGE_START_TAG == ASSET_PARTITION_RANGE_START_TAG
    assert dagster_storage.ASSET_PARTITION_RANGE_END_TAG == ASSET_PARTITION_RANGE_END_TAG
    for path in (["optuna_trial"], ["prefix", "asset"], ["with space", "ünïcode", 'a "quoted" part']):
        assert dagster_storage.asset_key_string(path) == dg.AssetKey(path).to_string()


@pytest.mark.parametrize(
    "form",
    [
        "no_file",
        "no_storage_key",
        "sqlite_env",
        pytest.param("postgres_url_env", marks=pytest.mark.postgres),
        pytest.param("postgres_db", marks=pytest.mark.postgres),
    ],
)
def test_storage_of_finds_the_databases_dagster_opens(form, tmp_path, monkeypatch, request):
    home = tmp_path / "dagster"
    if form == "no_file":
        home.mkdir()
    elif form == "no_storage_key":
        _write_home(home, None)
    elif form == "sqlite_env":
        monkeypatch.setenv("GAUNTLET_TEST_DAGSTER_BASE", str(tmp_path / "elsewhere"))
        _write_home(home, {"sqlite": {"base_dir": {"env": "GAUNTLET_TEST_DAGSTER_BASE"}}})
    elif form == "postgres_url_env":
        monkeypatch.setenv("GAUNTLET_TEST_DAGSTER_PG_URL", request.getfixturevalue("pg_database"))
        _write_home(home, {"postgres": {"postgres_url": {"env": "GAUNTLET_TEST_DAGSTER_PG_URL"}}})
    else:
        url = sa.engine.make_url(request.getfixturevalue("pg_database"))
        # Trust authentication ignores the password: it is there to be quoted as Dagster quotes it.
        monkeypatch.setenv("GAUNTLET_TEST_PG_PASSWORD", "p@ss/w rd")
        monkeypatch.setenv("GAUNTLET_TEST_PG_PORT", str(url.port))
        db = {
            "username": url.username,
            "password": {"env": "GAUNTLET_TEST_PG_PASSWORD"},
            "hostname": url.host,
            "db_name": url.database,
            "port": {"env": "GAUNTLET_TEST_PG_PORT"},
            "params": {"application_name": "gauntlet status", "connect_timeout": 5},
            # SQLAlchemy 2.1 reads a bare postgresql:// with psycopg 3, which is not installed.
            "scheme": url.drivername,
        }
        _write_home(home, {"postgres": {"postgres_db": db}})
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(TRIALS.name, ["t1"])
        run = create_run_for_test(instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTED)
        storage = _storage(home)
        if form.startswith("postgres"):
            assert storage.runs_url == storage.index_url == instance.run_storage.postgres_url
            assert storage.index_url == instance.event_log_storage.postgres_url
        else:
            index = Path(instance.event_log_storage.path_for_shard("index"))
            assert Path(sa.engine.make_url(storage.index_url).database) == index
            assert index.is_relative_to(tmp_path / "elsewhere" if form == "sqlite_env" else home)
        with DagsterTables(storage) as tables:
            assert tables.dynamic_partitions(TRIALS.name) == ["t1"]
            assert [r.run_id for r in tables.unfinished_runs()] == [run.run_id]


def test_a_postgres_db_url_is_built_as_dagster_postgres_builds_it(tmp_path):
    db = {
        "username": "gauntlet user",
        "password": "p@ss/w:rd%",
        "hostname": "db.internal",
        "db_name": "dagster",
        "port": 6543,
        "params": {"sslmode": "require", "application_name": "gauntlet status"},
        "scheme": "postgresql+psycopg2",
    }
    home = tmp_path / "dagster"
    home.mkdir()
    for settings in [db, {k: db[k] for k in ("username", "hostname", "db_name")}]:
        storage = storage_of(home, config={"storage": {"postgres": {"postgres_db": settings}}}, environ={})
        defaults = {"password": "", "port": 5432, "params": {}, "scheme": "postgresql"}
        assert storage.runs_url == storage.index_url == pg_url_from_config({"postgres_db": {**defaults, **settings}})


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"run_storage": {"module": "m", "class": "C"}}, "legacy run_storage"),
        ({"storage": {"mysql": {"mysql_url": "mysql://x"}}}, "storage.mysql"),
        ({"storage": {"custom": {"module": "m", "class": "C"}}}, "storage.custom"),
        ({"instance_class": {"module": "m", "class": "C"}}, "custom instance_class"),
        ({"storage": {"postgres": {"postgres_url": "postgresql://x", "postgres_db": {}}}}, "both"),
        ({"storage": {"postgres": {"postgres_url": "x", "auth_provider": {"gcp_wif": {}}}}}, "auth_provider"),
        ({"storage": {"sqlite": {"base_dir": 3}}}, "storage.sqlite.base_dir must be a str"),
        ({"storage": {"postgres": {"postgres_db": {"username": "u", "hostname": "h"}}}}, "postgres_db has settings"),
    ],
)
def test_storage_of_refuses_what_it_cannot_read_naming_the_file_and_the_supported_forms(tmp_path, config, says):
    with pytest.raises(ConfigurationError) as raised:
        storage_of(tmp_path, config=config, environ={})
    message = str(raised.value)
    assert str(tmp_path / "dagster.yaml") in message and says in message
    if "must be" not in message:
        assert "storage: {sqlite: {base_dir: ...}}" in message


def test_storage_of_names_a_missing_variable_and_a_missing_home(tmp_path):
    config = {"storage": {"postgres": {"postgres_url": {"env": "GAUNTLET_NO_SUCH_VARIABLE"}}}}
    with pytest.raises(ConfigurationError, match="environment variable GAUNTLET_NO_SUCH_VARIABLE, which is not set"):
        storage_of(tmp_path, config=config, environ={})
    db = {"username": "u", "hostname": "h", "db_name": "d", "port": {"env": "PORT"}}
    with pytest.raises(ConfigurationError, match="port is not an integer"):
        storage_of(tmp_path, config={"storage": {"postgres": {"postgres_db": db}}}, environ={"PORT": "x"})
    with pytest.raises(ConfigurationError, match="is not a directory"):
        storage_of(tmp_path / "missing", config=None, environ={})


def test_a_new_instance_reads_as_empty_and_no_file_is_created(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    with DagsterTables(storage_of(home, config=None, environ={})) as tables:
        assert tables.dynamic_partitions(TRIALS.name) == []
        assert tables.materialized_partitions([SCORED.to_string()]) == {SCORED.to_string(): set()}
        assert tables.latest_materialization_ids([SCORED.to_string()], partitions={"a"}) == {}
        assert tables.latest_check_executions(CHECKS) == []
        assert tables.failed_check_evaluations(CHECKS[0], metadata_key="failed_thresholds", limit=10) == []
        assert tables.unfinished_runs() == []
        assert tables.run_failures(limit=10) == []
        assert tables.requested_backfills() == []
    assert list(tmp_path.rglob("*")) == [home]


def test_the_adapter_imports_neither_dagster_nor_the_numerical_libraries():
    probe = (
        "import sys, resources.dagster_storage; "
        "bad = [m for m in ('dagster', 'dagster_shared', 'numpy', 'polars', 'scipy', 'optuna') if m in sys.modules]; "
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
