"""Engines for Gauntlet's own tables (deployment registry, paper sessions): one database.

SQLite by default, PostgreSQL in production. SQLite connections wait for a lock instead of
failing at once (``busy_timeout``) and use WAL so readers never block the writer.
"""

from __future__ import annotations

import re
import threading

import sqlalchemy as sa
import sqlalchemy.exc

from simulations.errors import PipelineError, StorageCorruptError, StorageUnavailableError

_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()
SQLITE_BUSY_TIMEOUT_MS = 30_000


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("pragma journal_mode=WAL")
    cursor.execute(f"pragma busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("pragma foreign_keys=ON")
    cursor.close()


def engine_for(url: str) -> sa.Engine:
    """One engine per URL per process (pooled connections survive between calls)."""
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
            _ENGINES[url] = engine
        return engine


def translate_db_error(exc: BaseException, *, what: str, url: str) -> PipelineError:
    """A typed error for a database failure: locked or unreachable is transient."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        if "not a database" in text or "malformed" in text:
            return StorageCorruptError(f"{what} database {mask_url(url)} is unreadable: {text}")
        return StorageUnavailableError(f"{what} database {mask_url(url)} unavailable: {text}")
    return StorageCorruptError(f"{what} database {mask_url(url)} failed: {type(exc).__name__}: {text}")
