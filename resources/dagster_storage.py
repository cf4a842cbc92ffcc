"""Dagster's storage read as plain SQL, for the commands that must answer without importing Dagster.

``import dagster`` alone costs about a second, more than `gauntlet status` may take on 10,000
trials. Each read here stands in for a named Dagster API call and reads the same rows with
SQLAlchemy Core; tests/resources/test_dagster_storage.py checks each against that call on SQLite
and PostgreSQL. Nothing here imports dagster (nor numpy, polars, scipy, optuna), at module level
or in a function: the test runs the import in a fresh interpreter to prove it.

The instance's dagster.yaml is the caller's to load (YAML is gauntlet/'s to read, DESIGN.md):
`storage_of` takes it loaded, as Dagster's own loader gives it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from resources.database import translate_db_error
from simulations.errors import ConfigurationError

T = TypeVar("T")

#: `DagsterRunStatus` values of runs still in flight: Dagster's ``NOT_FINISHED_STATUSES``.
NOT_FINISHED_STATUSES: tuple[str, ...] = ("STARTING", "STARTED", "SUSPENDED", "CANCELING", "QUEUED", "NOT_STARTED")

#: Run tags naming the partitions a run covers: one partition, or a range over the partition
#: order (Dagster's ``PARTITION_NAME_TAG`` and ``ASSET_PARTITION_RANGE_*_TAG``).
PARTITION_NAME_TAG = "dagster/partition"
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

# `DagsterEventType` and status values as stored.
_MATERIALIZATION = "ASSET_MATERIALIZATION"
_RUN_FAILURE = "PIPELINE_FAILURE"
_REQUESTED = "REQUESTED"
_CHECK_FAILED = "FAILED"
# The serdes name of `dg.JsonMetadataValue`.
_JSON_METADATA = "JsonMetadataEntryData"

# Just the columns read; the test checks each against Dagster's own `Table` objects.
_EVENT_LOGS = sa.table(
    "event_logs",
    sa.column("id", sa.BigInteger),
    sa.column("run_id", sa.String),
    sa.column("event", sa.Text),
    sa.column("dagster_event_type", sa.Text),
    sa.column("timestamp", sa.DateTime),
    sa.column("asset_key", sa.Text),
    sa.column("partition", sa.Text),
)
_ASSET_KEYS = sa.table("asset_keys", sa.column("asset_key", sa.Text), sa.column("asset_details", sa.Text))
_CHECK_EXECUTIONS = sa.table(
    "asset_check_executions",
    sa.column("id", sa.BigInteger),
    sa.column("asset_key", sa.Text),
    sa.column("check_name", sa.Text),
    sa.column("partition", sa.Text),
    sa.column("run_id", sa.String),
    sa.column("execution_status", sa.String),
    sa.column("evaluation_event", sa.Text),
    sa.column("evaluation_event_storage_id", sa.BigInteger),
)
_DYNAMIC_PARTITIONS = sa.table(
    "dynamic_partitions",
    sa.column("id", sa.BigInteger),
    sa.column("partitions_def_name", sa.Text),
    sa.column("partition", sa.Text),
)
_RUNS = sa.table("runs", sa.column("id", sa.BigInteger), sa.column("run_id", sa.String), sa.column("status", sa.String))
_RUN_TAGS = sa.table(
    "run_tags",
    sa.column("id", sa.BigInteger),
    sa.column("run_id", sa.String),
    sa.column("key", sa.Text),
    sa.column("value", sa.Text),
)
_BULK_ACTIONS = sa.table(
    "bulk_actions",
    sa.column("id", sa.BigInteger),
    sa.column("key", sa.String),
    sa.column("status", sa.String),
    sa.column("body", sa.Text),
)

#: The tables read from `DagsterStorage.index_url` (Dagster's event log storage).
INDEX_TABLES: tuple[sa.TableClause, ...] = (_EVENT_LOGS, _ASSET_KEYS, _CHECK_EXECUTIONS, _DYNAMIC_PARTITIONS)
#: The tables read from `DagsterStorage.runs_url` (Dagster's run storage).
RUN_TABLES: tuple[sa.TableClause, ...] = (_RUNS, _RUN_TAGS, _BULK_ACTIONS)

# What `storage_of` reads, for its error messages.
_SUPPORTED_FORMS = (
    "storage: {sqlite: {base_dir: ...}}, storage: {postgres: {postgres_url: ...}} or "
    "storage: {postgres: {postgres_db: {username, password, hostname, db_name, port, params, scheme}}}, "
    "each value a literal or {env: VARIABLE}; or no storage key (SQLite under DAGSTER_HOME)"
)
_POSTGRES_DB_KEYS = frozenset({"username", "password", "hostname", "db_name", "port", "params", "scheme"})


def asset_key_string(path: Sequence[str]) -> str:
    """The asset key with ``path`` as the tables store it (``dg.AssetKey(path).to_string()``)."""
    return json.dumps(list(path))


@dataclass(frozen=True)
class DagsterStorage:
    """Where a Dagster instance keeps what `DagsterTables` reads (SQLAlchemy URLs)."""

    #: Run storage: ``runs``, ``run_tags``, ``bulk_actions``.
    runs_url: str
    #: Event log storage's index: ``event_logs``, ``asset_keys``, ``asset_check_executions``,
    #: ``dynamic_partitions``. On SQLite Dagster shards the event log per run but mirrors asset
    #: events, check executions and run status changes into this one shard.
    index_url: str


def _sqlite_storage(base_dir: str) -> DagsterStorage:
    # Dagster's `DagsterSqliteStorage`: runs in <base>/history/runs.db, the event log's index
    # shard in <base>/history/runs/index.db; a relative base_dir is the process's, as Dagster's.
    history = Path(os.path.abspath(base_dir)) / "history"
    return DagsterStorage(
        runs_url=f"sqlite:///{history / 'runs.db'}", index_url=f"sqlite:///{history / 'runs' / 'index.db'}"
    )


def storage_of(dagster_home: Path, *, config: Mapping[str, Any] | None, environ: Mapping[str, str]) -> DagsterStorage:
    """The storage of the Dagster instance at ``dagster_home``, as Dagster resolves it.

    Parameters
    ----------
    config
        ``<dagster_home>/dagster.yaml`` as Dagster loads it (safe YAML, dates left as strings);
        None when there is no such file.
    environ
        Where the ``{env: VARIABLE}`` values are read.

    Raises
    ------
    ConfigurationError
        If ``dagster_home`` is not a directory, the storage is configured in a form other than
        Dagster's ``sqlite`` and ``postgres`` ones (legacy per-storage keys, MySQL, a custom
        class, token authentication), or a variable it names is not set.
    """
    path = dagster_home / "dagster.yaml"
    if not dagster_home.is_dir():
        raise ConfigurationError(f"DAGSTER_HOME {dagster_home} is not a directory")
    config = config or {}
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"{path} is not a mapping of settings")

    def unsupported(what: str) -> ConfigurationError:
        return ConfigurationError(f"{path}: {what}; `gauntlet` reads the storage only as {_SUPPORTED_FORMS}")

    legacy = [key for key in ("run_storage", "event_log_storage", "schedule_storage") if config.get(key)]
    if legacy:
        raise unsupported(f"the legacy {', '.join(legacy)} settings")
    storage = config.get("storage")
    if storage is None:
        if "instance_class" in config:
            # A custom instance class sets its own default storage.
            raise unsupported("a custom instance_class without a storage setting")
        return _sqlite_storage(str(dagster_home))
    if not isinstance(storage, Mapping) or len(storage) != 1:
        raise unsupported("storage must have exactly one of sqlite or postgres")
    ((kind, settings),) = storage.items()
    values = _Values(path, environ)
    if kind == "sqlite":
        if not isinstance(settings, Mapping) or set(settings) != {"base_dir"}:
            raise unsupported("storage.sqlite must have exactly base_dir")
        return _sqlite_storage(values.string(settings["base_dir"], "storage.sqlite.base_dir"))
    if kind != "postgres":
        raise unsupported(f"storage.{kind}")
    if not isinstance(settings, Mapping):
        raise unsupported("storage.postgres must be a mapping")
    if "auth_provider" in settings:
        raise unsupported("storage.postgres.auth_provider (tokens need Dagster)")
    extra = set(settings) - {"postgres_url", "postgres_db", "should_autocreate_tables"}
    if extra:
        raise unsupported(f"storage.postgres has unknown settings {sorted(extra)}")
    url = values.string(settings["postgres_url"], "storage.postgres.postgres_url") if "postgres_url" in settings else ""
    # As dagster_postgres's `pg_url_from_config`: an empty postgres_url means postgres_db.
    if url:
        if "postgres_db" in settings:
            raise unsupported("storage.postgres has both postgres_url and postgres_db")
        return DagsterStorage(runs_url=url, index_url=url)
    db = settings.get("postgres_db")
    if not isinstance(db, Mapping):
        raise unsupported("storage.postgres needs postgres_url or postgres_db")
    if set(db) - _POSTGRES_DB_KEYS or not {"username", "hostname", "db_name"} <= set(db):
        raise unsupported(f"storage.postgres.postgres_db has settings {sorted(db)}")
    url = _pg_url(
        username=values.string(db["username"], "storage.postgres.postgres_db.username"),
        password=values.string(db.get("password", ""), "storage.postgres.postgres_db.password"),
        hostname=values.string(db["hostname"], "storage.postgres.postgres_db.hostname"),
        db_name=values.string(db["db_name"], "storage.postgres.postgres_db.db_name"),
        port=values.integer(db.get("port", 5432), "storage.postgres.postgres_db.port"),
        params=values.mapping(db.get("params", {}), "storage.postgres.postgres_db.params"),
        scheme=values.string(db.get("scheme", "postgresql"), "storage.postgres.postgres_db.scheme"),
    )
    return DagsterStorage(runs_url=url, index_url=url)


def _pg_url(
    *, username: str, password: str, hostname: str, db_name: str, port: int, params: Mapping[str, Any], scheme: str
) -> str:
    """dagster_postgres's `get_conn_string`, character for character (its quoting keeps ``/``)."""
    userinfo = f"{quote(username)}:{quote(password)}" if password else quote(username)
    uri = f"{scheme}://{userinfo}@{hostname}:{port}/{db_name}"
    if params:
        uri = f"{uri}?{urlencode(params, quote_via=quote)}"
    return uri


@dataclass(frozen=True)
class _Values:
    """dagster.yaml's values as Dagster's config types take them: literals or ``{env: VARIABLE}``."""

    path: Path
    environ: Mapping[str, str]

    def _source(self, value: Any, key: str, kind: type) -> Any:
        if isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
            name = value["env"]
            if name not in self.environ:
                raise ConfigurationError(f"{self.path}: {key} reads the environment variable {name}, which is not set")
            return self.environ[name]
        if isinstance(value, kind) and not isinstance(value, bool):
            return value
        # The type only: a misquoted password must not end up in a terminal.
        raise ConfigurationError(
            f"{self.path}: {key} must be a {kind.__name__} or {{env: VARIABLE}}, not a {type(value).__name__}"
        )

    def string(self, value: Any, key: str) -> str:
        return self._source(value, key, str)

    def integer(self, value: Any, key: str) -> int:
        read = self._source(value, key, int)
        try:
            return int(read)
        except ValueError:
            # `from None`: the ValueError quotes the variable's value.
            raise ConfigurationError(f"{self.path}: {key} is not an integer") from None

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        # `params` is Permissive in Dagster's schema: taken as written, no {env: ...}.
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{self.path}: {key} must be a mapping")
        return value


@dataclass(frozen=True, slots=True)
class LatestCheckExecution:
    """A partition's latest execution of an asset check: planned, or evaluated with its outcome."""

    check_name: str
    partition: str
    #: As stored: ``PLANNED``, ``SUCCEEDED``, ``FAILED``, ``SKIPPED`` (`AssetCheckExecutionRecordStatus`).
    status: str
    #: The run that planned (and, unless still PLANNED, evaluated) it.
    run_id: str | None


@dataclass(frozen=True, slots=True)
class FailedCheckEvaluation:
    """One FAILED execution of an asset check, as much of it as `gauntlet status` shows."""

    storage_id: int
    partition: str | None
    description: str | None
    #: The ``data`` of the JSON metadata entry asked for, None if absent or not JSON.
    metadata_data: Any


@dataclass(frozen=True, slots=True)
class RunRow:
    """A run as `gauntlet status` needs it: its id, status (`DagsterRunStatus` value) and tags."""

    run_id: str
    status: str
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class RunFailure:
    """A ``RUN_FAILURE`` event and the tags of the run it failed."""

    #: The event's storage id (a later materialization's is larger).
    storage_id: int
    run_id: str
    #: The event's time, seconds since the epoch.
    timestamp: float
    #: The run's error message, else the event's message, else ``"run failed"``.
    message: str
    tags: dict[str, str]


class _Shard:
    """One database of the instance; a SQLite file not created yet reads as empty."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: sa.Engine | None = None
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = Path(parsed.database or "")
            if path.is_file():
                # Read-only: a status read must never create or lock Dagster's files.
                uri = f"{path.absolute().as_uri()}?mode=ro"
                self.engine = sa.create_engine(
                    "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=30), poolclass=sa.pool.NullPool
                )
        else:
            # libpq's: a status read must not hang on a host that does not answer.
            libpq = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "psycopg")
            connect_args = {"connect_timeout": 5} if libpq else {}
            self.engine = sa.create_engine(url, connect_args=connect_args)

    def read(self, read: Callable[[sa.Connection], T], empty: T) -> T:
        """What ``read`` returns on a connection, ``empty`` when the database does not exist yet."""
        if self.engine is None:
            return empty
        try:
            with self.engine.connect() as conn:
                return read(conn)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate_db_error(exc, what="Dagster instance", url=self.url) from exc

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


class DagsterTables:
    """Read-only access to a Dagster instance's tables; a context manager that closes its engines.

    A SQLite database Dagster has not created yet reads as empty and is not created. Asset keys
    are passed as Dagster stores them (`asset_key_string`, e.g. ``'["backtest_results"]'``), and
    checks as ``(asset key string, check name)``.
    """

    def __init__(self, storage: DagsterStorage) -> None:
        self._runs = _Shard(storage.runs_url)
        self._index = self._runs if storage.index_url == storage.runs_url else _Shard(storage.index_url)

    def __enter__(self) -> DagsterTables:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Dispose of the engines (their pooled connections)."""
        self._runs.dispose()
        self._index.dispose()

    def dynamic_partitions(self, name: str) -> list[str]:
        """``instance.get_dynamic_partitions(name)``: its partition keys in the order they were added."""
        table = _DYNAMIC_PARTITIONS
        query = sa.select(table.c.partition).where(table.c.partitions_def_name == name).order_by(table.c.id)
        return self._index.read(lambda conn: list(conn.execute(query).scalars()), [])

    def materialized_partitions(self, asset_keys: Sequence[str]) -> dict[str, set[str]]:
        """``instance.get_materialized_partitions(key)`` for each of ``asset_keys``, in one query."""
        table = _EVENT_LOGS
        found: dict[str, set[str]] = {key: set() for key in asset_keys}
        if not asset_keys:
            return found

        def read(conn: sa.Connection) -> None:
            query = (
                sa.select(table.c.asset_key, table.c.partition)
                .where(
                    table.c.asset_key.in_(list(asset_keys)),
                    table.c.partition.is_not(None),
                    table.c.dagster_event_type == _MATERIALIZATION,
                    *_after_wipes(conn, asset_keys),
                )
                .group_by(table.c.asset_key, table.c.partition)
            )
            for key, partition in conn.execute(query):
                found[key].add(partition)

        self._index.read(read, None)
        return found

    def latest_materialization_ids(self, asset_keys: Sequence[str], *, partitions: Collection[str]) -> dict[str, int]:
        """Per partition of ``partitions``, the storage id of its latest materialization of any of
        ``asset_keys``: ``instance.get_latest_storage_id_by_partition(key, ASSET_MATERIALIZATION,
        partitions=...)`` for each key, the largest per partition, in one query.

        An empty ``partitions`` reads none (Dagster's call would read every partition).
        """
        table = _EVENT_LOGS
        if not asset_keys or not partitions:
            return {}

        def read(conn: sa.Connection) -> dict[str, int]:
            query = (
                sa.select(table.c.partition, sa.func.max(table.c.id))
                .where(
                    table.c.asset_key.in_(list(asset_keys)),
                    table.c.partition.in_(list(partitions)),
                    table.c.dagster_event_type == _MATERIALIZATION,
                    *_after_wipes(conn, asset_keys),
                )
                .group_by(table.c.partition)
            )
            return {partition: storage_id for partition, storage_id in conn.execute(query)}

        return self._index.read(read, {})

    def latest_check_executions(self, checks: Sequence[tuple[str, str]]) -> list[LatestCheckExecution]:
        """The latest execution of each of ``checks`` per partition, in one query: the status and
        run id `get_asset_check_partition_info` reports (without the latest materialization it
        joins in per check)."""
        table = _CHECK_EXECUTIONS
        if not checks:
            return []
        wanted = sa.or_(*(sa.and_(table.c.asset_key == key, table.c.check_name == name) for key, name in checks))
        latest = (
            sa.select(sa.func.max(table.c.id).label("id"))
            .where(
                wanted,
                table.c.partition.is_not(None),
                # As Dagster reads them: older PLANNED rows may lack the event's storage id.
                table.c.evaluation_event_storage_id.is_not(None),
            )
            .group_by(table.c.asset_key, table.c.check_name, table.c.partition)
            .subquery()
        )
        query = sa.select(table.c.check_name, table.c.partition, table.c.execution_status, table.c.run_id).join(
            latest, table.c.id == latest.c.id
        )
        rows = self._index.read(lambda conn: conn.execute(query).fetchall(), [])
        return [
            LatestCheckExecution(check_name=name, partition=partition, status=status, run_id=run_id)
            for name, partition, status, run_id in rows
        ]

    def failed_check_evaluations(
        self, check: tuple[str, str], *, metadata_key: str, limit: int, before_id: int | None = None
    ) -> list[FailedCheckEvaluation]:
        """The FAILED executions of ``check``, newest first, ``limit`` of them with a storage id
        below ``before_id``: the rows `get_asset_check_execution_history` reads, with the
        description and the JSON metadata entry ``metadata_key`` of each."""
        table = _CHECK_EXECUTIONS
        asset_key, name = check
        query = (
            sa.select(table.c.id, table.c.partition, table.c.evaluation_event)
            .where(
                table.c.asset_key == asset_key, table.c.check_name == name, table.c.execution_status == _CHECK_FAILED
            )
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(table.c.id < before_id)
        rows = self._index.read(lambda conn: conn.execute(query).fetchall(), [])
        evaluations = []
        for storage_id, partition, event in rows:
            dagster_event = json.loads(event).get("dagster_event") if event else None
            data = (dagster_event or {}).get("event_specific_data") or {}
            packed = (data.get("metadata") or {}).get(metadata_key)
            is_json = isinstance(packed, Mapping) and packed.get("__class__") == _JSON_METADATA
            evaluations.append(
                FailedCheckEvaluation(
                    storage_id=storage_id,
                    partition=partition,
                    description=data.get("description"),
                    metadata_data=packed.get("data") if is_json else None,
                )
            )
        return evaluations

    def unfinished_runs(self) -> list[RunRow]:
        """``instance.get_run_records(dg.RunsFilter(statuses=NOT_FINISHED_STATUSES))``, newest
        first, with their tags (one query)."""
        runs = (
            sa.select(_RUNS.c.id, _RUNS.c.run_id, _RUNS.c.status)
            .where(_RUNS.c.status.in_(NOT_FINISHED_STATUSES))
            .subquery()
        )
        query = (
            sa.select(runs.c.run_id, runs.c.status, _RUN_TAGS.c.key, _RUN_TAGS.c.value)
            .select_from(runs.outerjoin(_RUN_TAGS, _RUN_TAGS.c.run_id == runs.c.run_id))
            .order_by(runs.c.id.desc(), _RUN_TAGS.c.id)
        )
        rows = self._runs.read(lambda conn: conn.execute(query).fetchall(), [])
        found: dict[str, RunRow] = {}
        for run_id, status, key, value in rows:
            run = found.setdefault(run_id, RunRow(run_id=run_id, status=status, tags={}))
            if key is not None:
                run.tags[key] = value
        return list(found.values())

    def run_failures(self, *, limit: int) -> list[RunFailure]:
        """The ``limit`` latest run failures, newest first, with their runs' tags: the records of
        ``instance.fetch_run_status_changes(RunStatusChangeRecordsFilter(RUN_FAILURE), limit=limit)``
        joined with ``instance.get_run_records(dg.RunsFilter(run_ids=...))``. A failure whose run
        no longer exists is left out."""
        table = _EVENT_LOGS
        query = (
            sa.select(table.c.id, table.c.run_id, table.c.event)
            .where(table.c.dagster_event_type == _RUN_FAILURE)
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        events = self._index.read(lambda conn: conn.execute(query).fetchall(), [])
        tags = self._run_tags({run_id for _, run_id, _ in events})
        failures = []
        for storage_id, run_id, event in events:
            if run_id not in tags:
                continue
            entry = json.loads(event)
            failures.append(
                RunFailure(
                    storage_id=storage_id,
                    run_id=run_id,
                    timestamp=entry["timestamp"],
                    message=_failure_message(entry),
                    tags=tags[run_id],
                )
            )
        return failures

    def requested_backfills(self) -> list[tuple[str, str]]:
        """``instance.get_backfills(status=BulkActionStatus.REQUESTED)``, newest first, as (backfill
        id, serialized `PartitionBackfill`): the caller reads the bodies with Dagster, when there are any."""
        table = _BULK_ACTIONS
        query = sa.select(table.c.key, table.c.body).where(table.c.status == _REQUESTED).order_by(table.c.id.desc())
        return self._runs.read(lambda conn: [(key, body) for key, body in conn.execute(query)], [])

    def _run_tags(self, run_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Each existing run's tags, by run id (a run that no longer exists is absent)."""
        ids = sorted(run_ids)
        if not ids:
            return {}
        query = (
            sa.select(_RUNS.c.run_id, _RUN_TAGS.c.key, _RUN_TAGS.c.value)
            .select_from(_RUNS.outerjoin(_RUN_TAGS, _RUN_TAGS.c.run_id == _RUNS.c.run_id))
            .where(_RUNS.c.run_id.in_(ids))
            .order_by(_RUN_TAGS.c.id)
        )
        rows = self._runs.read(lambda conn: conn.execute(query).fetchall(), [])
        tags: dict[str, dict[str, str]] = defaultdict(dict)
        for run_id, key, value in rows:
            run = tags[run_id]
            if key is not None:
                run[key] = value
        return dict(tags)


def _after_wipes(conn: sa.Connection, asset_keys: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """Dagster's `_add_assets_wipe_filter_to_query`: a wiped asset's events count from its last
    wipe on (on SQLite the wipe deletes them from the index too; on PostgreSQL they stay)."""
    table = _EVENT_LOGS
    query = sa.select(_ASSET_KEYS.c.asset_key, _ASSET_KEYS.c.asset_details).where(
        _ASSET_KEYS.c.asset_key.in_(list(asset_keys))
    )
    filters = []
    for key, details in conn.execute(query):
        wiped = json.loads(details).get("last_wipe_timestamp") if details else None
        if wiped:
            # Stored as naive UTC, as Dagster compares it.
            since = dt.datetime.fromtimestamp(wiped, dt.UTC).replace(tzinfo=None)
            filters.append(
                sa.or_(sa.and_(table.c.asset_key == key, table.c.timestamp > since), table.c.asset_key != key)
            )
    return filters


def _failure_message(entry: Mapping[str, Any]) -> str:
    """gauntlet/status.py's `_failure_text` of a serialized `EventLogEntry`."""
    event = entry.get("dagster_event") or {}
    error = (event.get("event_specific_data") or {}).get("error")
    if error is not None:
        return error["message"]
    # A run failed by run monitoring or the launcher carries its reason in the message only.
    return event.get("message") or entry.get("user_message") or "run failed"
