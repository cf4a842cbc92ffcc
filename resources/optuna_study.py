"""The Optuna boundary: the only module (with the demo trainer) that imports optuna.

Everything downstream sees `TrialSnapshot`. Reads are incremental: a per-study cursor holds a
watermark (the largest trial id seen) plus the ids at or below it that were still running, so
a sensor tick over a 10,000-trial study reads about as much as a tick over a 100-trial one.

The storage is opened read-only, and what is not there is a `StorageNotFoundError`, never
created: Optuna creates a missing SQLite file, its schema in an empty database and a missing
journal file when merely opened, and an empty storage then reads as "no new trials". SQLite
is opened with ``mode=ro`` (SQLite itself refuses every write), PostgreSQL in read-only
transactions (``default_transaction_read_only``), a journal through a backend that never
creates or appends; other databases are refused, since their read-only mode is not enforced.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import functools
import math
import signal
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import dagster as dg
import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._rdb import models as optuna_models
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState as OptunaTrialState
from pydantic import BaseModel, ConfigDict, Field

from resources.database import mask_url, parse_url, redact
from resources.process_cache import OPTUNA_STORAGES
from simulations.errors import (
    ConfigurationError,
    PipelineError,
    StorageCorruptError,
    StorageNotFoundError,
    StorageUnavailableError,
    TrialDataError,
)
from simulations.trial import TrialSnapshot, TrialState

JOURNAL_PREFIX = "journal:"


_FINAL_STATES = {OptunaTrialState.COMPLETE, OptunaTrialState.PRUNED, OptunaTrialState.FAIL}

#: Optuna's RDB schema (its ORM's tables) and alembic's stamp. RDBStorage creates what is
#: missing and stamps an unstamped schema; Gauntlet never lets it, so all must be there.
_OPTUNA_TABLES = frozenset(optuna_models.BaseModel.metadata.tables) | {"alembic_version"}
#: Tables RDBStorage writes a row into when they are empty (its version manager).
_STAMP_TABLES = ("version_info", "alembic_version")
#: How a read-only connection says it refused a write (SQLite, PostgreSQL).
_READ_ONLY_REFUSALS = ("attempt to write a readonly database", "read-only transaction")
#: The signals a supervisor stops a process with (Dagster maps SIGTERM onto SIGINT's handler).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _uninterrupted(read: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run an Optuna read with SIGINT and SIGTERM held until it ends, then deliver them.

    SQLAlchemy configures Optuna's ORM lazily, during a process's first reads. An interrupt
    raised in the middle (Dagster raises one at the very bytecode a signal lands on) leaves the
    mappers half configured, and every later read in the process fails (``AttributeError:
    strategy``, ``_use_get``) as if the storage were corrupt. A Dagster run worker outlives an
    interrupt: the step's `RetryPolicy` retries it in the same process, so the retried batch
    failed for good. Held until the read ends, the signal then reaches the handler that was in
    place: Dagster's raises its interrupt, a default one stops the process.
    """

    @functools.wraps(read)
    def held(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
        if threading.current_thread() is not threading.main_thread() or None in previous.values():
            # Signals reach only the main thread; a handler installed outside Python cannot be restored.
            return read(*args, **kwargs)
        received: list[int] = []
        for s in _STOP_SIGNALS:
            signal.signal(s, lambda signum, _frame: received.append(signum))
        try:
            return read(*args, **kwargs)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for s in dict.fromkeys(received):
                handler = previous[s]
                if callable(handler):
                    handler(s, None)
                elif handler == signal.SIG_DFL:
                    signal.raise_signal(s)

    return held


class _ReadOnlyJournalFileBackend(JournalFileBackend):
    """A journal file read, never created or appended to.

    ``JournalFileBackend.__init__`` creates a missing file: this sets the state its
    ``read_logs`` uses (file path, log offsets) without touching the file system.
    """

    def __init__(self, file_path: str) -> None:
        self._file_path = file_path
        self._log_number_offset: dict[int, int] = {0: 0}

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PipelineError(
            f"Optuna journal {self._file_path} is opened read-only: Gauntlet never writes a study",
            stage="optuna_storage",
        )


class StudyCursor(BaseModel):
    """Where an incremental read of one study stopped.

    ``watermark`` is the largest trial id already seen; ``pending`` are ids at or below it that
    were not finished then (trials finish out of order) and must be looked at again.
    """

    model_config = ConfigDict(frozen=True)

    watermark: int = -1
    pending: tuple[int, ...] = ()


class TrialBatch(BaseModel):
    """The result of one incremental read: new complete trials and the advanced cursor."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    study_name: str
    completed: list[TrialSnapshot] = Field(default_factory=list)
    rejected: list[TrialDataError] = Field(default_factory=list)
    cursor: StudyCursor
    still_running: int = 0
    dropped: int = 0
    #: COMPLETE trials whose rows cannot be read (number → why): one bad row must not hide the
    #: study's other trials, and the sensor gives each its own run so it fails visibly.
    unreadable: dict[int, str] = Field(default_factory=dict)


class StudySourceResource(dg.ConfigurableResource, abc.ABC):
    """Where trials come from. Implementations must never leak their own trial objects."""

    @abc.abstractmethod
    def list_studies(self) -> list[str]:
        """Names of the studies in the storage."""

    @abc.abstractmethod
    def read_new_trials(self, study_name: str, cursor: StudyCursor) -> TrialBatch:
        """Complete trials finished since ``cursor``, and the cursor to use next time."""

    @abc.abstractmethod
    def get_trials(self, study_name: str, numbers: Sequence[int]) -> list[TrialSnapshot]:
        """Snapshots of the given trial numbers (all must exist and be complete)."""

    @abc.abstractmethod
    def completed_numbers(self, study_name: str) -> list[int]:
        """Numbers of every COMPLETE trial, ascending (the trials a deflated Sharpe counts)."""


class OptunaStudyResource(StudySourceResource):
    """Trials of Optuna studies in an RDB storage (SQLite, PostgreSQL) or a journal file.

    ``storage_url`` is an SQLAlchemy URL (``sqlite:///path.db``,
    ``postgresql+psycopg2://user:pass@host/db``) or ``journal:/path/to/file.log``. Pass it as
    ``dg.EnvVar(...)`` when it carries a password. ``studies`` limits which studies are
    watched; empty means every study in the storage.
    """

    storage_url: str = Field(description="Optuna storage URL, or journal:/path for a journal file.")
    studies: list[str] = Field(default_factory=list, description="Studies to watch; empty: all.")

    # -- storage access -------------------------------------------------------------------
    def _storage(self) -> BaseStorage:
        # Kept per process: RDBStorage checks its schema and builds its engine once, and a
        # sensor's code server lives across ticks.
        return OPTUNA_STORAGES.get(self.storage_url, self._open)

    def _open(self) -> BaseStorage:
        url = self.storage_url
        try:
            if url.startswith(JOURNAL_PREFIX):
                return self._open_journal(url[len(JOURNAL_PREFIX) :])
            return self._open_rdb(url)
        except Exception as exc:
            raise self._translate(exc, "opening the storage") from exc

    def _open_journal(self, path: str) -> BaseStorage:
        if not Path(path).is_file():
            raise StorageNotFoundError(
                f"Optuna journal {path} does not exist: Gauntlet reads a study's journal and never "
                "creates one; check optuna.storage (GAUNTLET_OPTUNA_STORAGE)",
                stage="optuna_storage",
            )
        return JournalStorage(_ReadOnlyJournalFileBackend(path))

    def _read_only_engine_kwargs(self, url: str) -> dict[str, Any]:
        parsed = parse_url(url)
        if parsed is None:
            # Not repeated: the string may hold a password where the parser could not find it.
            raise ConfigurationError(
                "the Optuna storage is not an SQLAlchemy URL (sqlite:///path.db, postgresql+psycopg2://…) "
                "nor journal:/path",
                stage="optuna_storage",
            )
        where = f"Optuna storage {mask_url(url)}"
        # pool_pre_ping and the connect timeout bound the wait on an unreachable server.
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:") or database.startswith("file:"):
                raise ConfigurationError(f"{where}: name the study's SQLite file (sqlite:///path.db)", stage="optuna_storage")
            path = Path(database).resolve()
            if not path.is_file():
                raise StorageNotFoundError(
                    f"{where}: the file {path} does not exist: Gauntlet reads a study's storage and never "
                    "creates one; check optuna.storage (GAUNTLET_OPTUNA_STORAGE)",
                    stage="optuna_storage",
                )
            # mode=ro: SQLite refuses every write and never creates the file.
            uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
            kwargs["creator"] = partial(sqlite3.connect, uri, uri=True, check_same_thread=False)
        elif backend == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 5, "options": "-c default_transaction_read_only=on"}
        else:
            raise ConfigurationError(
                f"{where}: Gauntlet opens Optuna storages read-only and cannot enforce that on {backend!r}; "
                "use SQLite, PostgreSQL or a journal file",
                stage="optuna_storage",
            )
        return kwargs

    def _check_schema(self, url: str, engine_kwargs: dict[str, Any]) -> None:
        where = f"Optuna storage {mask_url(url)}"
        engine = sqlalchemy.create_engine(url, **engine_kwargs)
        try:
            with engine.connect() as conn:
                tables = set(sqlalchemy.inspect(conn).get_table_names())
                if "studies" not in tables:
                    raise StorageNotFoundError(
                        f"{where} holds no Optuna schema: is the URL right? Gauntlet reads a study's storage "
                        "and never creates one",
                        stage="optuna_storage",
                    )
                missing = sorted(_OPTUNA_TABLES - tables)
                empty = [t for t in _STAMP_TABLES if t in tables and not conn.execute(
                    sqlalchemy.text(f"select count(*) from {t}")  # noqa: S608 - names from a constant
                ).scalar_one()]
        finally:
            engine.dispose()
        if missing or empty:
            found = ", ".join([*(f"table {t} missing" for t in missing), *(f"table {t} empty" for t in empty)])
            raise StorageCorruptError(
                f"{where} has an incomplete Optuna schema ({found}): written by another Optuna version? "
                f"Gauntlet never creates or migrates it; upgrade it with `optuna storage upgrade` "
                f"(Optuna {optuna.__version__})",
                stage="optuna_storage",
            )

    def _open_rdb(self, url: str) -> BaseStorage:
        engine_kwargs = self._read_only_engine_kwargs(url)
        self._check_schema(url, engine_kwargs)
        # The schema is complete and stamped: RDBStorage reads it and writes nothing; a write it
        # attempted all the same would be refused by the read-only connection.
        return RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=False, skip_table_creation=True)

    def _translate(self, exc: BaseException, doing: str) -> PipelineError:
        if isinstance(exc, PipelineError):
            return exc
        if isinstance(exc, StorageInternalError) and exc.__cause__ is not None:
            # Optuna wraps the database's own error (locked, connection refused or cut): judge
            # that one, or an outage would look like corruption and never be retried.
            return self._translate(exc.__cause__, doing)
        where = f"Optuna storage {mask_url(self.storage_url)}"
        # A driver may quote its connection string back: never the password in it.
        text = redact((str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0], self.storage_url)
        if any(refusal in text for refusal in _READ_ONLY_REFUSALS):
            return StorageCorruptError(
                f"{where} refused a write while {doing} (it is opened read-only): {text}", stage="optuna_storage"
            )
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            corrupt = "file is not a database" in text or "malformed" in text
            # PostgreSQL: 'database "x" does not exist' stays so on every retry.
            missing = "database \"" in text and text.endswith("does not exist")
            cls = StorageCorruptError if corrupt else StorageNotFoundError if missing else StorageUnavailableError
            return cls(f"{where} failed while {doing}: {text}", stage="optuna_storage")
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return StorageUnavailableError(f"{where} unreachable while {doing}: {text}", stage="optuna_storage")
        return StorageCorruptError(
            f"{where} could not be read while {doing}: {type(exc).__name__}: {text}",
            stage="optuna_storage",
        )

    def _study_id(self, storage: BaseStorage, study_name: str) -> int:
        try:
            return storage.get_study_id_from_name(study_name)
        except KeyError as exc:
            raise StorageNotFoundError(
                f"study {study_name!r} does not exist in {mask_url(self.storage_url)}",
                stage="optuna_storage",
            ) from exc

    def _fetch(self, storage: BaseStorage, study_id: int, cursor: StudyCursor) -> list[FrozenTrial]:
        if isinstance(storage, RDBStorage):
            # RDBStorage's own incremental query (the one its cache uses): only ids above the
            # watermark plus the pending ones, so the cost does not grow with the study.
            return storage._get_trials(  # noqa: SLF001
                study_id,
                states=None,
                included_trial_ids=set(cursor.pending),
                trial_id_greater_than=cursor.watermark,
            )
        # Journal storage replays its log incrementally in memory; filtering here is cheap.
        pending = set(cursor.pending)
        return [
            t
            for t in storage.get_all_trials(study_id, deepcopy=False)
            if t._trial_id > cursor.watermark or t._trial_id in pending  # noqa: SLF001
        ]

    # -- public API -----------------------------------------------------------------------
    def _all_studies(self) -> list[str]:
        storage = self._storage()
        try:
            return [s.study_name for s in storage.get_all_studies()]
        except Exception as exc:
            raise self._translate(exc, "listing studies") from exc

    @_uninterrupted
    def list_studies(self) -> list[str]:
        names = self._all_studies()
        if self.studies:
            return [n for n in self.studies if n in set(names)]
        return sorted(names)

    @_uninterrupted
    def check(self) -> list[str]:
        """The watched studies, once the storage and every study named in ``studies`` exist.

        `list_studies` leaves out a named study that does not exist (a trainer may create it
        later, and the others must go on); `gauntlet health` asks this instead, so a mistyped
        name is reported rather than watched in silence.
        """
        names = set(self._all_studies())
        missing = [n for n in self.studies if n not in names]
        if missing:
            raise StorageNotFoundError(
                f"watched study(ies) {missing} do not exist in Optuna storage {mask_url(self.storage_url)}: "
                "check optuna.studies (GAUNTLET_STUDIES)",
                stage="optuna_storage",
            )
        return self.list_studies()

    @_uninterrupted
    def read_new_trials(self, study_name: str, cursor: StudyCursor) -> TrialBatch:
        storage = self._storage()
        unreadable: dict[int, str] = {}
        pending: set[int] = set()
        watermark = cursor.watermark
        try:
            study_id = self._study_id(storage, study_name)
            trials = self._fetch(storage, study_id, cursor)
        except PipelineError:
            raise
        except Exception as exc:
            error = self._translate(exc, f"reading trials of study {study_name!r}")
            if not (isinstance(error, StorageCorruptError) and isinstance(storage, RDBStorage)):
                raise error from exc
            trials, unreadable, stuck, watermark = self._fetch_one_by_one(storage, study_id, study_name, cursor)
            pending.update(stuck)

        completed: list[TrialSnapshot] = []
        rejected: list[TrialDataError] = []
        dropped = 0
        for trial in sorted(trials, key=lambda t: t._trial_id):  # noqa: SLF001
            trial_id = trial._trial_id  # noqa: SLF001
            watermark = max(watermark, trial_id)
            if trial.state not in _FINAL_STATES:
                pending.add(trial_id)
            elif trial.state == OptunaTrialState.COMPLETE:
                try:
                    completed.append(to_snapshot(study_name, trial))
                except TrialDataError as exc:
                    rejected.append(exc)
            else:
                dropped += 1
        return TrialBatch(
            study_name=study_name,
            completed=completed,
            rejected=rejected,
            cursor=StudyCursor(watermark=watermark, pending=tuple(sorted(pending))),
            still_running=len(pending),
            dropped=dropped,
            unreadable=unreadable,
        )

    def _fetch_one_by_one(
        self, storage: RDBStorage, study_id: int, study_name: str, cursor: StudyCursor
    ) -> tuple[list[FrozenTrial], dict[int, str], list[int], int]:
        """The batch read failed on unreadable content: read each trial alone to isolate it.

        Returns the readable trials, the unreadable COMPLETE ones (number → why), the ids of
        unreadable unfinished ones (looked at again next time) and the largest id seen. The trials table itself (id,
        number, state) is read in one query; only a trial's own rows can be what is corrupt.
        """
        query = sqlalchemy.text(
            "select trial_id, number, state from trials where study_id = :study and trial_id > :low order by trial_id"
        )
        low = min([cursor.watermark, *(p - 1 for p in cursor.pending)])
        pending = set(cursor.pending)
        try:
            with storage.engine.connect() as conn:
                rows = [r for r in conn.execute(query, {"study": study_id, "low": low}) if r[0] > cursor.watermark or r[0] in pending]
        except Exception as exc:
            raise self._translate(exc, f"listing the trials of study {study_name!r}") from exc
        trials: list[FrozenTrial] = []
        unreadable: dict[int, str] = {}
        stuck: list[int] = []
        for trial_id, number, state in rows:
            try:
                trials.append(storage.get_trial(trial_id))
            except Exception as exc:
                error = self._translate(exc, f"reading trial {study_name}#{number}")
                if not isinstance(error, StorageCorruptError):
                    raise error from exc
                if state == OptunaTrialState.COMPLETE.name:
                    unreadable[number] = str(error)
                elif state not in {s.name for s in _FINAL_STATES}:
                    stuck.append(trial_id)
        return trials, unreadable, stuck, max([cursor.watermark, *(r[0] for r in rows)])

    @_uninterrupted
    def get_trials(self, study_name: str, numbers: Sequence[int]) -> list[TrialSnapshot]:
        storage = self._storage()
        wanted = set(numbers)
        try:
            study_id = self._study_id(storage, study_name)
            trials = None
            if isinstance(storage, RDBStorage) and len(wanted) <= 64:
                # A missing number is a KeyError quoting Optuna's internal study id; reading every
                # trial instead says exactly which numbers are missing.
                with contextlib.suppress(KeyError):
                    trials = [
                        storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, n))
                        for n in sorted(wanted)
                    ]
            if trials is None:
                trials = [t for t in storage.get_all_trials(study_id, deepcopy=False) if t.number in wanted]
            n_trials = storage.get_n_trials(study_id) if len(trials) < len(wanted) else None
        except PipelineError:
            raise
        except Exception as exc:
            raise self._translate(exc, f"reading trials {sorted(wanted)} of {study_name!r}") from exc
        missing = sorted(wanted - {t.number for t in trials})
        if missing:
            numbered = f"numbered 0 to {n_trials - 1}" if n_trials else "none yet"
            raise TrialDataError(
                f"study {study_name!r} has no trial numbered {', '.join(map(str, missing))} "
                f"(it has {n_trials} trial(s), {numbered})",
                stage="optuna_trial",
            )
        snapshots = [to_snapshot(study_name, t) for t in trials]
        not_complete = [s.label for s in snapshots if s.state != TrialState.COMPLETE]
        if not_complete:
            raise TrialDataError(f"trials {not_complete} are not COMPLETE and cannot be evaluated")
        return sorted(snapshots, key=lambda s: s.number)


    @_uninterrupted
    def completed_numbers(self, study_name: str) -> list[int]:
        storage = self._storage()
        try:
            study_id = self._study_id(storage, study_name)
            if isinstance(storage, RDBStorage):
                # One query for the numbers instead of materialising 10,000 FrozenTrials.
                query = sqlalchemy.text(
                    "select number from trials where study_id = :study and state = 'COMPLETE' order by number"
                )
                with storage.engine.connect() as conn:
                    return [int(n) for n in conn.execute(query, {"study": study_id}).scalars()]
            trials = storage.get_all_trials(study_id, deepcopy=False, states=(OptunaTrialState.COMPLETE,))
            return sorted(t.number for t in trials)
        except PipelineError:
            raise
        except Exception as exc:
            raise self._translate(exc, f"reading the completed trials of study {study_name!r}") from exc


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def to_snapshot(study_name: str, trial: FrozenTrial) -> TrialSnapshot:
    """Convert an Optuna ``FrozenTrial`` to a `TrialSnapshot`, or raise `TrialDataError`."""
    values: Iterable[float] | None = trial.values
    if values is not None and any(v is None or not math.isfinite(v) for v in values):
        raise TrialDataError(
            f"objective values {list(values)} are not finite", trial=f"{study_name}#{trial.number}"
        )
    return TrialSnapshot.build(
        study_name=study_name,
        number=trial.number,
        trial_id=trial._trial_id,  # noqa: SLF001
        state=TrialState(trial.state.name),
        params=dict(trial.params),
        values=tuple(values) if values is not None else None,
        user_attrs=dict(trial.user_attrs),
        datetime_start=_utc(trial.datetime_start),
        datetime_complete=_utc(trial.datetime_complete),
    )


def optuna_version() -> str:
    """The Optuna version in use, for run tags and diagnostics."""
    return optuna.__version__
