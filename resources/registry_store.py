"""The deployment registry: an append-only decisions log and the live set, in one database.

SQLite by default, PostgreSQL in production (the database of the paper sessions). Every table
is prefixed ``registry_``:

``registry_decisions``
    Append-only log. One row per decision: the trial (study, number, partition key), params
    hash, code version, data hashes, every gate verdict with its checks (metrics and
    thresholds), paper grade, the settings and the registry context the decision saw (stop
    flag, live set), decision, ``would_have`` (dry runs), reason, ``replaced`` (the live
    deployment it displaced, and that deployment's decision id), decided_by, decided_at.
    ``retired`` and ``rolled_back`` rows name the live decision they took down
    (``target_decision_id``) and, for a rollback, the one they restored.
``registry_live_slots``
    Exactly ``live_capacity`` rows, one per slot. A slot is free (all NULL) or holds one
    live deployment: ``partition_key`` (UNIQUE: a trial is never live twice) and
    ``decision_id``, with a composite foreign key ``(decision_id, partition_key)`` to the
    decisions log so a slot can only hold the trial its decision is about. The number of
    rows *is* the capacity: no write can make more trials live than there are slots.
``registry_controls``
    A single row (``id = 1``): the emergency stop (stopped, by, reason, at).
``registry_controls_log``
    Append-only: every set and clear of the stop, and every capacity change.

Concurrency
-----------
Every write runs in one transaction that first takes the registry's write lock, then reads
the stop flag and the live set, decides, appends the decision and changes the live set:

* SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock at the start of the
  transaction (other writers wait up to the busy timeout; WAL readers never wait), so
  writers in any thread or process are serialised and each sees the previous one's commit.
* PostgreSQL: ``SELECT ... FROM registry_controls WHERE id = 1 FOR UPDATE`` locks the
  control row first; under READ COMMITTED every later statement of the transaction sees
  what the previous lock holder committed. Setting or clearing the stop updates that row,
  so a decision either commits before the stop or reads it: promotions queued behind a stop
  are held.

One lock for all writers rather than per-slot ``FOR UPDATE SKIP LOCKED``: a decision
depends on the whole live set (capacity, the weakest entry for ``replace_weakest``, whether
the trial is already live) and on the idempotency lookup, which per-slot locks would not
serialise. Decisions come at most once per trial, so the lock is never contended for long.
The database still enforces the invariants on its own: a promotion claims a slot with a
conditional ``UPDATE ... WHERE partition_key IS NULL`` that must touch exactly one row, and
the UNIQUE partition key rejects a second live entry of a trial.

Idempotency
-----------
``inputs_hash`` is the SHA-256 of the candidate (partition key, study, number, params hash,
code version, data hashes, every verdict) and the settings. ``idempotency_key`` (UNIQUE)
hashes ``inputs_hash`` with the context the decision depends on (stop flag and live set as
``(partition_key, decision_id)`` pairs). Re-recording returns the existing record when

* a ``promoted`` or ``rejected`` decision with the same ``inputs_hash`` exists: those
  outcomes are final for those inputs, so a retired or rolled-back trial does not come back
  live until its inputs change. What is returned is the trial's current record: the
  ``retired`` or ``rolled_back`` record that took that promotion down, if one did since (and
  it was not put back live by a rollback), never a stale ``promoted``; or
* a decision with the same ``idempotency_key`` exists: the held and dry-run outcomes are
  re-decided only when the stop or the live set has changed since.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
import sqlalchemy.exc
from pydantic import BaseModel, ConfigDict, ValidationError

from resources.database import add_column, engine_for, mask_url, missing_columns, translate_db_error
from resources.process_cache import SCHEMAS_READY
from simulations.constants import DEFAULT_LIVE_CAPACITY
from simulations.deployment import (
    DECISION_KINDS,
    PARTITION_KEY_MAX_LENGTH,
    Candidate,
    DecisionKind,
    DeploymentSettings,
    LiveEntry,
    decide,
    ranking_metrics_of,
)
from simulations.vocabulary import PaperMode
from simulations.errors import (
    ConfigurationError,
    PipelineError,
    RegistryError,
    StorageCorruptError,
)
from simulations.gates import GateName, GateVerdict, Grade

#: Who may decide: the pipeline, the CLI, or a named person.
ACTOR_PATTERN = re.compile(r"^(pipeline|cli|user:[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$")

#: Primary key of the single ``registry_controls`` row (also the PostgreSQL write lock).
CONTROL_ROW_ID = 1

#: PostgreSQL advisory-lock id serialising schema creation ("GAUNTLET" in ASCII, 8 bytes).
SCHEMA_LOCK_ID = 0x4741554E544C4554

#: Decisions whose outcome depends only on the inputs: re-recording the same inputs returns them.
FINAL_DECISIONS: tuple[DecisionKind, ...] = ("promoted", "rejected")

_WHAT = "deployment registry"

ControlAction = Literal["stop_set", "stop_cleared", "capacity_set"]

metadata = sa.MetaData()

_decision_values = ", ".join(f"'{kind}'" for kind in DECISION_KINDS)

decisions_table = sa.Table(
    "registry_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(64), unique=True),
    sa.Column("inputs_hash", sa.String(64), index=True),
    sa.Column("study", sa.Text, nullable=False, index=True),
    sa.Column("trial_number", sa.Integer, nullable=False),
    sa.Column("partition_key", sa.String(PARTITION_KEY_MAX_LENGTH), nullable=False, index=True),
    sa.Column("params_hash", sa.Text),
    sa.Column("code_version", sa.Text),
    sa.Column("data_hashes", sa.JSON),
    sa.Column("verdicts", sa.JSON),
    sa.Column("grade", sa.String(1)),
    sa.Column("paper_mode", sa.String(16)),
    sa.Column("settings", sa.JSON),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("would_have", sa.String(32)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("replaced", sa.String(PARTITION_KEY_MAX_LENGTH)),
    sa.Column("replaced_decision_id", sa.Integer, sa.ForeignKey("registry_decisions.id")),
    sa.Column("target_decision_id", sa.Integer, sa.ForeignKey("registry_decisions.id")),
    sa.Column("restored", sa.String(PARTITION_KEY_MAX_LENGTH)),
    sa.Column("restored_decision_id", sa.Integer, sa.ForeignKey("registry_decisions.id")),
    sa.Column("decided_by", sa.String(80), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    # Target of the live slots' composite foreign key.
    sa.UniqueConstraint("id", "partition_key", name="uq_registry_decisions_id_partition_key"),
    sa.CheckConstraint(f"decision IN ({_decision_values})", name="ck_registry_decisions_decision"),
)

slots_table = sa.Table(
    "registry_live_slots",
    metadata,
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("partition_key", sa.String(PARTITION_KEY_MAX_LENGTH), unique=True),
    sa.Column("decision_id", sa.Integer),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.ForeignKeyConstraint(
        ["decision_id", "partition_key"],
        ["registry_decisions.id", "registry_decisions.partition_key"],
        name="fk_registry_live_slots_decision",
    ),
    sa.CheckConstraint(
        "(partition_key IS NULL AND decision_id IS NULL AND claimed_at IS NULL)"
        " OR (partition_key IS NOT NULL AND decision_id IS NOT NULL AND claimed_at IS NOT NULL)",
        name="ck_registry_live_slots_free_or_taken",
    ),
)

controls_table = sa.Table(
    "registry_controls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("stopped", sa.Boolean, nullable=False),
    sa.Column("changed_by", sa.String(80)),
    sa.Column("reason", sa.Text),
    sa.Column("changed_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(f"id = {CONTROL_ROW_ID}", name="ck_registry_controls_single_row"),
)

controls_log_table = sa.Table(
    "registry_controls_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("stopped", sa.Boolean),
    sa.Column("capacity", sa.Integer),
    sa.Column("changed_by", sa.String(80), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(
        "action IN ('stop_set', 'stop_cleared', 'capacity_set')", name="ck_registry_controls_log_action"
    ),
)

#: Databases whose schema this process has already created or checked.


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RegistryContext(_Frozen):
    """The registry state a decision saw: stop flag and live set (partition key, decision id)."""

    emergency_stop: bool
    live: tuple[tuple[str, int], ...]


class DecisionRecord(_Frozen):
    """One row of the decisions log.

    Attributes
    ----------
    id
        Position in the log (increasing).
    study, number, partition_key
        The trial.
    params_hash, code_version, data_hashes, verdicts, grade, paper_mode
        What was evaluated, and how its paper grade was earned (``forward`` or ``holdout``;
        ``None`` for decisions recorded before modes); for ``retired`` and ``rolled_back``,
        copied from the live decision taken down.
    settings
        Deployment settings of the decision (``None`` for retire and rollback).
    context
        Stop flag and live set just before the decision.
    decision, would_have, reason
        The outcome; ``would_have`` only for ``dry_run``.
    replaced, replaced_decision_id
        The live deployment a promotion displaced, and its decision.
    target_decision_id
        For ``retired`` and ``rolled_back``: the live decision taken down.
    restored, restored_decision_id
        For ``rolled_back``: the deployment put back live, if any.
    decided_by
        ``pipeline``, ``cli`` or ``user:<name>``.
    decided_at
        UTC time of the decision.
    inputs_hash, idempotency_key
        Hashes re-recording is matched on (``None`` for retire and rollback).
    """

    id: int
    study: str
    number: int
    partition_key: str
    params_hash: str | None
    code_version: str | None
    data_hashes: dict[str, str] | None
    verdicts: dict[GateName, GateVerdict] | None
    grade: Grade | None
    paper_mode: PaperMode | None = None
    settings: DeploymentSettings | None
    context: RegistryContext
    decision: DecisionKind
    would_have: DecisionKind | None
    reason: str
    replaced: str | None
    replaced_decision_id: int | None
    target_decision_id: int | None
    restored: str | None
    restored_decision_id: int | None
    decided_by: str
    decided_at: dt.datetime
    inputs_hash: str | None
    idempotency_key: str | None


class ControlState(_Frozen):
    """The emergency stop: whether it is set, and who changed it last, why and when."""

    stopped: bool
    by: str | None = None
    reason: str | None = None
    at: dt.datetime | None = None


class ControlEvent(_Frozen):
    """One row of the controls log: a stop set or cleared, or the live capacity changed."""

    id: int
    action: ControlAction
    stopped: bool | None
    capacity: int | None
    by: str
    reason: str
    at: dt.datetime


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check_actor(by: str, argument: str) -> str:
    if not isinstance(by, str) or not ACTOR_PATTERN.match(by):
        raise RegistryError(
            f"{argument} must be 'pipeline', 'cli' or 'user:<name>' (name: letters, digits, . _ @ -), got {by!r}"
        )
    return by


def _check_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip() or "\n" in reason or "\r" in reason:
        raise RegistryError(f"reason must be one non-empty line, got {reason!r}")
    return reason.strip()


class SqlRegistry:
    """The registry's SQL implementation, independent of Dagster: `SqlDeploymentRegistryResource`
    runs it inside Dagster, `RegistryDatabase` outside it (the commands that only read).

    Its host provides ``database_url`` (an SQLAlchemy URL: ``sqlite:////abs/path/gauntlet.db``
    or ``postgresql+psycopg2://user:pass@host/db``) and ``live_capacity`` (the live slots of a
    new registry; an existing one keeps its slot count until :meth:`set_live_capacity` changes
    it, and decisions are refused while this setting or the deployment settings disagree with it).
    Tables are created on first use.
    """

    # -- connections and schema -------------------------------------------------------------
    def _engine(self) -> sa.Engine:
        try:
            url = sa.engine.make_url(self.database_url)
        except sqlalchemy.exc.ArgumentError as exc:
            # The parser's message repeats the raw string, password included: not shown.
            raise ConfigurationError(
                "registry database_url is not an SQLAlchemy URL (e.g. sqlite:///path.db, "
                "postgresql+psycopg2://user:pass@host/db)"
            ) from exc
        backend = url.get_backend_name()
        if backend not in {"sqlite", "postgresql"}:
            raise ConfigurationError(
                f"registry database_url must be SQLite or PostgreSQL, got {backend!r} ({mask_url(self.database_url)})"
            )
        if backend == "sqlite" and url.database in {None, "", ":memory:"}:
            raise ConfigurationError("the registry needs a SQLite file (sqlite:///path.db), not an in-memory database")
        engine = engine_for(self.database_url)

        def create_schema() -> bool:
            with self._transaction(engine, setup=True) as conn:
                self._create_schema(conn)
            return True

        SCHEMAS_READY.get(("registry", self.database_url), create_schema)
        return engine

    @contextlib.contextmanager
    def _transaction(self, engine: sa.Engine, *, setup: bool = False) -> Iterator[sa.Connection]:
        """A transaction holding the registry's write lock (see the module docstring)."""
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                # pysqlite would otherwise open a deferred transaction at the first write,
                # after our reads: take the write lock up front instead.
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            else:
                with conn.begin():
                    if setup:
                        # The control row may not exist yet; serialise schema creation instead.
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
                    else:
                        conn.execute(
                            sa.select(controls_table.c.id)
                            .where(controls_table.c.id == CONTROL_ROW_ID)
                            .with_for_update()
                        )
                    yield conn

    def _create_schema(self, conn: sa.Connection) -> None:
        metadata.create_all(conn, checkfirst=True)
        # A registry of an earlier version: its decisions keep no paper mode (None), new ones record
        # theirs. The schema lock held by this transaction makes the change once, whatever process
        # comes first.
        for name in missing_columns(conn, decisions_table):
            add_column(conn, decisions_table, name, existing_rows={})
        if conn.execute(sa.select(controls_table.c.id)).first() is None:
            conn.execute(controls_table.insert().values(id=CONTROL_ROW_ID, stopped=False))
        if conn.execute(sa.select(sa.func.count()).select_from(slots_table)).scalar_one() == 0:
            conn.execute(slots_table.insert(), [{"slot": n} for n in range(1, self.live_capacity + 1)])

    @contextlib.contextmanager
    def _errors(self, *, trial: str | None = None) -> Iterator[None]:
        """Translate database failures into typed errors (attributed to ``trial`` when given)."""
        try:
            yield
        except PipelineError as exc:
            if trial is None:
                raise
            raise exc.for_trial(trial, stage="deployment_registry") from exc
        except sqlalchemy.exc.SQLAlchemyError as exc:
            error = translate_db_error(exc, what=_WHAT, url=self.database_url)
            raise (error.for_trial(trial, stage="deployment_registry") if trial else error) from exc

    def _write(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return self._transaction(self._engine())

    # -- reading rows -------------------------------------------------------------------------
    def _corrupt(self, what: str, exc: Exception) -> StorageCorruptError:
        return StorageCorruptError(f"{_WHAT} database {mask_url(self.database_url)}: {what} is unreadable: {exc}")

    def _record(self, row: sa.Row) -> DecisionRecord:
        data = dict(row._mapping)
        data["number"] = data.pop("trial_number")
        data["decided_at"] = _utc(data["decided_at"])
        try:
            return DecisionRecord.model_validate(data)
        except ValidationError as exc:
            raise self._corrupt(f"decision #{data.get('id')}", exc) from exc

    def _read_stop(self, conn: sa.Connection) -> ControlState:
        row = conn.execute(sa.select(controls_table).where(controls_table.c.id == CONTROL_ROW_ID)).first()
        if row is None:
            raise self._corrupt("the control row", ValueError("registry_controls has no row id 1"))
        return ControlState(
            stopped=bool(row.stopped),
            by=row.changed_by,
            reason=row.reason,
            at=_utc(row.changed_at) if row.changed_at is not None else None,
        )

    def _read_slots(self, conn: sa.Connection) -> tuple[int, list[tuple[int, LiveEntry]]]:
        """(number of slots, [(slot, live entry)] oldest first)."""
        n_slots = conn.execute(sa.select(sa.func.count()).select_from(slots_table)).scalar_one()
        d = decisions_table
        rows = conn.execute(
            sa.select(slots_table.c.slot, slots_table.c.claimed_at, d)
            .join(d, d.c.id == slots_table.c.decision_id)
            .order_by(slots_table.c.claimed_at, slots_table.c.slot)
        ).all()
        entries = []
        for row in rows:
            try:
                paper = GateVerdict.model_validate((row.verdicts or {})["paper_trading_gate"])
                entry = LiveEntry(
                    partition_key=row.partition_key,
                    study=row.study,
                    number=row.trial_number,
                    decision_id=row.id,
                    promoted_at=_utc(row.claimed_at),
                    grade=row.grade,
                    params_hash=row.params_hash,
                    code_version=row.code_version,
                    ranking_metrics=ranking_metrics_of(paper),
                )
            except (KeyError, ValueError) as exc:
                raise self._corrupt(f"live slot {row.slot} (decision #{row.id})", exc) from exc
            entries.append((row.slot, entry))
        return n_slots, entries

    @staticmethod
    def _context(stop: ControlState, live: list[LiveEntry]) -> RegistryContext:
        return RegistryContext(
            emergency_stop=stop.stopped, live=tuple(sorted((e.partition_key, e.decision_id) for e in live))
        )

    def _fetch_record(self, conn: sa.Connection, where: sa.ColumnElement[bool]) -> DecisionRecord | None:
        row = conn.execute(
            sa.select(decisions_table).where(where).order_by(decisions_table.c.id.desc()).limit(1)
        ).first()
        return self._record(row) if row is not None else None

    def _record_by_id(self, conn: sa.Connection, decision_id: int) -> DecisionRecord:
        record = self._fetch_record(conn, decisions_table.c.id == decision_id)
        if record is None:
            raise self._corrupt(f"decision #{decision_id}", ValueError("it is referenced but missing"))
        return record

    def _capacity_mismatch(self, n_slots: int, settings: DeploymentSettings | None) -> str | None:
        parts = []
        if self.live_capacity != n_slots:
            parts.append(f"resource live_capacity={self.live_capacity}")
        if settings is not None and settings.live_capacity != n_slots:
            parts.append(f"settings live_capacity={settings.live_capacity}")
        if not parts:
            return None
        return (
            f"{' and '.join(parts)} but the registry at {mask_url(self.database_url)} has {n_slots} live slots; "
            f"configure {n_slots}, or change the registry with set_live_capacity(capacity=..., by=..., reason=...)"
        )

    # -- decisions ------------------------------------------------------------------------------
    def decide_and_record(
        self, *, candidate: Candidate, settings: DeploymentSettings, decided_by: str
    ) -> DecisionRecord:
        if not isinstance(candidate, Candidate):
            raise RegistryError(f"candidate must be a Candidate, got {type(candidate).__name__}")
        if not isinstance(settings, DeploymentSettings):
            raise RegistryError(f"settings must be DeploymentSettings, got {type(settings).__name__}")
        _check_actor(decided_by, "decided_by")
        inputs_hash = _digest(
            {"candidate": candidate.model_dump(mode="json"), "settings": settings.model_dump(mode="json")}
        )
        with self._errors(trial=candidate.partition_key), self._write() as conn:
            stop = self._read_stop(conn)
            n_slots, slotted = self._read_slots(conn)
            mismatch = self._capacity_mismatch(n_slots, settings)
            if mismatch:
                raise ConfigurationError(mismatch)
            d = decisions_table
            final = self._fetch_record(conn, (d.c.inputs_hash == inputs_hash) & d.c.decision.in_(FINAL_DECISIONS))
            if final is not None:
                return self._current(conn, final)
            live = [entry for _, entry in slotted]
            context = self._context(stop, live)
            key = _digest({"inputs": inputs_hash, "context": context.model_dump(mode="json")})
            existing = self._fetch_record(conn, d.c.idempotency_key == key)
            if existing is not None:
                return existing

            decision = decide(candidate=candidate, settings=settings, live=live, emergency_stop=stop.stopped)
            displaced = next((e for e in live if e.partition_key == decision.replaces), None)
            now = _now()
            decision_id = conn.execute(
                d.insert().values(
                    idempotency_key=key,
                    inputs_hash=inputs_hash,
                    study=candidate.study,
                    trial_number=candidate.number,
                    partition_key=candidate.partition_key,
                    params_hash=candidate.params_hash,
                    code_version=candidate.code_version,
                    data_hashes=candidate.data_hashes,
                    verdicts={gate: v.model_dump(mode="json") for gate, v in candidate.verdicts.items()},
                    grade=candidate.grade,
                    paper_mode=candidate.paper_mode,
                    settings=settings.model_dump(mode="json"),
                    context=context.model_dump(mode="json"),
                    decision=decision.decision,
                    would_have=decision.would_have,
                    reason=decision.reason,
                    replaced=decision.replaces,
                    replaced_decision_id=displaced.decision_id if displaced else None,
                    decided_by=decided_by,
                    decided_at=now,
                )
            ).inserted_primary_key[0]
            if decision.goes_live:
                self._go_live(conn, candidate.partition_key, decision_id, displaced, now)
            return self._record_by_id(conn, decision_id)

    def _current(self, conn: sa.Connection, final: DecisionRecord) -> DecisionRecord:
        """What stands now of a final decision: the latest take-down of it, unless a rollback put it back."""
        d = decisions_table
        latest = self._fetch_record(
            conn, (d.c.target_decision_id == final.id) | (d.c.restored_decision_id == final.id)
        )
        return latest if latest is not None and latest.target_decision_id == final.id else final

    def _go_live(
        self,
        conn: sa.Connection,
        partition_key: str,
        decision_id: int,
        displaced: LiveEntry | None,
        now: dt.datetime,
    ) -> None:
        s = slots_table
        taken = {"partition_key": partition_key, "decision_id": decision_id, "claimed_at": now}
        if displaced is not None:
            target = s.c.decision_id == displaced.decision_id
        else:
            # Conditional claim of the lowest free slot: with no free slot nothing is updated
            # and the promotion fails, whatever the caller believed about the live set.
            lowest_free = sa.select(sa.func.min(s.c.slot)).where(s.c.partition_key.is_(None)).scalar_subquery()
            target = (s.c.slot == lowest_free) & s.c.partition_key.is_(None)
        if conn.execute(s.update().where(target).values(**taken)).rowcount != 1:
            raise RegistryError(
                f"no live slot could be claimed for {partition_key}: the live set changed outside the registry lock"
            )

    def live(self) -> list[LiveEntry]:
        with self._errors(), self._engine().connect() as conn:
            return [entry for _, entry in self._read_slots(conn)[1]]

    def decisions(
        self, *, study: str | None = None, partition_key: str | None = None, limit: int | None = None
    ) -> list[DecisionRecord]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise RegistryError(f"limit must be a positive integer or None, got {limit!r}")
        d = decisions_table
        query = sa.select(d).order_by(d.c.id.desc()).limit(limit)
        if study is not None:
            query = query.where(d.c.study == study)
        if partition_key is not None:
            query = query.where(d.c.partition_key == partition_key)
        with self._errors(), self._engine().connect() as conn:
            return [self._record(row) for row in conn.execute(query)]

    # -- controls -------------------------------------------------------------------------------
    def set_emergency_stop(self, *, stopped: bool, by: str, reason: str) -> ControlState:
        if not isinstance(stopped, bool):
            raise RegistryError(f"stopped must be a bool, got {stopped!r}")
        _check_actor(by, "by")
        reason = _check_reason(reason)
        with self._errors(), self._write() as conn:
            # Timestamped once the write lock is held: a stop that waited behind a decision is
            # not dated before that decision committed (audit order is commit order).
            now = _now()
            conn.execute(
                controls_table.update()
                .where(controls_table.c.id == CONTROL_ROW_ID)
                .values(stopped=stopped, changed_by=by, reason=reason, changed_at=now)
            )
            conn.execute(
                controls_log_table.insert().values(
                    action="stop_set" if stopped else "stop_cleared",
                    stopped=stopped,
                    changed_by=by,
                    reason=reason,
                    changed_at=now,
                )
            )
            return self._read_stop(conn)

    def emergency_stop(self) -> ControlState:
        with self._errors(), self._engine().connect() as conn:
            return self._read_stop(conn)

    def control_history(self, *, limit: int | None = None) -> list[ControlEvent]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise RegistryError(f"limit must be a positive integer or None, got {limit!r}")
        c = controls_log_table
        with self._errors(), self._engine().connect() as conn:
            rows = conn.execute(sa.select(c).order_by(c.c.id.desc()).limit(limit)).all()
        try:
            return [
                ControlEvent(
                    id=row.id,
                    action=row.action,
                    stopped=row.stopped,
                    capacity=row.capacity,
                    by=row.changed_by,
                    reason=row.reason,
                    at=_utc(row.changed_at),
                )
                for row in rows
            ]
        except ValidationError as exc:
            raise self._corrupt("the controls log", exc) from exc

    def set_live_capacity(self, *, capacity: int, by: str, reason: str) -> int:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise RegistryError(f"capacity must be an integer >= 1, got {capacity!r}")
        _check_actor(by, "by")
        reason = _check_reason(reason)
        s = slots_table
        with self._errors(), self._write() as conn:
            rows = conn.execute(sa.select(s.c.slot, s.c.partition_key).order_by(s.c.slot)).all()
            if capacity > len(rows):
                first = max((row.slot for row in rows), default=0) + 1
                conn.execute(s.insert(), [{"slot": n} for n in range(first, first + capacity - len(rows))])
            elif capacity < len(rows):
                free = [row.slot for row in rows if row.partition_key is None]
                excess = len(rows) - capacity
                if len(free) < excess:
                    live = sorted(row.partition_key for row in rows if row.partition_key is not None)
                    raise RegistryError(
                        f"cannot shrink to {capacity} live slots with {len(live)} trials live {live}; "
                        f"retire {len(live) - capacity} first"
                    )
                conn.execute(s.delete().where(s.c.slot.in_(free[-excess:])))
            conn.execute(
                controls_log_table.insert().values(
                    action="capacity_set", capacity=capacity, changed_by=by, reason=reason, changed_at=_now()
                )
            )
        return capacity

    # -- taking deployments down ------------------------------------------------------------------
    def _take_down(
        self,
        conn: sa.Connection,
        *,
        target: LiveEntry,
        kind: DecisionKind,
        context: RegistryContext,
        by: str,
        reason: str,
        restore: DecisionRecord | None,
    ) -> DecisionRecord:
        d = decisions_table
        source = self._record_by_id(conn, target.decision_id)
        now = _now()
        record_id = conn.execute(
            d.insert().values(
                study=source.study,
                trial_number=source.number,
                partition_key=source.partition_key,
                params_hash=source.params_hash,
                code_version=source.code_version,
                data_hashes=source.data_hashes,
                verdicts={gate: v.model_dump(mode="json") for gate, v in (source.verdicts or {}).items()},
                grade=source.grade,
                paper_mode=source.paper_mode,
                context=context.model_dump(mode="json"),
                decision=kind,
                reason=reason,
                target_decision_id=source.id,
                restored=restore.partition_key if restore else None,
                restored_decision_id=restore.id if restore else None,
                decided_by=by,
                decided_at=now,
            )
        ).inserted_primary_key[0]
        s = slots_table
        after = (
            {"partition_key": restore.partition_key, "decision_id": restore.id, "claimed_at": now}
            if restore
            else {"partition_key": None, "decision_id": None, "claimed_at": None}
        )
        if conn.execute(s.update().where(s.c.decision_id == target.decision_id).values(**after)).rowcount != 1:
            raise RegistryError(f"{target.partition_key} left its live slot outside the registry lock")
        return self._record_by_id(conn, record_id)

    def retire(self, *, partition_key: str, by: str, reason: str) -> DecisionRecord:
        _check_actor(by, "by")
        reason = _check_reason(reason)
        with self._errors(trial=partition_key if isinstance(partition_key, str) else None), self._write() as conn:
            stop = self._read_stop(conn)
            live = [entry for _, entry in self._read_slots(conn)[1]]
            target = next((e for e in live if e.partition_key == partition_key), None)
            if target is None:
                raise RegistryError(
                    f"{partition_key!r} is not live, nothing to retire; live: {sorted(e.partition_key for e in live)}"
                )
            return self._take_down(
                conn,
                target=target,
                kind="retired",
                context=self._context(stop, live),
                by=by,
                reason=reason,
                restore=None,
            )

    def rollback(self, *, by: str, reason: str) -> DecisionRecord:
        _check_actor(by, "by")
        reason = _check_reason(reason)
        d = decisions_table
        with self._errors(), self._write() as conn:
            stop = self._read_stop(conn)
            live = [entry for _, entry in self._read_slots(conn)[1]]
            by_id = {entry.decision_id: entry for entry in live}
            promotion = self._fetch_record(conn, (d.c.decision == "promoted") & d.c.id.in_(list(by_id)))
            if promotion is None:
                raise RegistryError("no promotion is live, nothing to roll back")
            target = by_id[promotion.id]
            restore = None
            note = "nothing replaced"
            if promotion.replaced_decision_id is not None:
                others = {e.partition_key for e in live if e.decision_id != promotion.id}
                if stop.stopped:
                    note = f"{promotion.replaced} not restored: the emergency stop is set"
                elif promotion.replaced in others:
                    note = f"{promotion.replaced} not restored: it is live already"
                else:
                    restore = self._record_by_id(conn, promotion.replaced_decision_id)
                    note = f"restored {promotion.replaced} (decision #{promotion.replaced_decision_id})"
            return self._take_down(
                conn,
                target=target,
                kind="rolled_back",
                context=self._context(stop, live),
                by=by,
                reason=f"{reason}; rolled back promotion #{promotion.id} of {promotion.partition_key}, {note}",
                restore=restore,
            )

    # -- health ---------------------------------------------------------------------------------
    def ping(self) -> None:
        with self._errors(), self._engine().connect() as conn:
            self._read_stop(conn)
            n_slots, _ = self._read_slots(conn)
        mismatch = self._capacity_mismatch(n_slots, None)
        if mismatch:
            raise ConfigurationError(mismatch)


@dataclass(frozen=True)
class RegistryDatabase(SqlRegistry):
    """The registry at ``database_url``, opened outside Dagster (`SqlRegistry`)."""

    database_url: str
    live_capacity: int = DEFAULT_LIVE_CAPACITY
