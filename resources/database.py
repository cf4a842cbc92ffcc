"""Engines for Gauntlet's own tables (deployment registry, paper sessions): one database.

SQLite by default, PostgreSQL in production. SQLite connections wait for a lock instead of
failing at once (``busy_timeout``) and use WAL so readers never block the writer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import URL, make_url

from resources.process_cache import ENGINES
from simulations.errors import PipelineError, StorageCorruptError, StorageUnavailableError

SQLITE_BUSY_TIMEOUT_MS = 30_000


#: Query parameters that carry a credential (``?password=``, ``?sslpassword=``, ``?token=``).
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


def parse_url(text: str) -> URL | None:
    """``text`` as SQLAlchemy parses it, or None when it is not a URL SQLAlchemy can parse.

    SQLAlchemy ends the password at the first ``@``; a password with an unencoded ``@`` then
    leaves its tail in the host (``u:p@ss@host`` gives host ``ss@host``). The tail is moved back
    into the password, so nothing of it is ever shown as a host.
    """
    try:
        url = make_url(text)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        # ValueError: a port that is not a number.
        return None
    if url.host and "@" in url.host:
        tail, host = url.host.rsplit("@", 1)
        url = url.set(password=f"{url.password or ''}@{tail}", host=host)
    return url


def _secret_query_keys(url: URL) -> list[str]:
    return [key for key in url.query if _SECRET_QUERY_KEY.search(key)]


def _unparseable_may_hide_secret(text: str) -> bool:
    # Not a URL SQLAlchemy can parse (a path, ``journal:/x``, a typo such as ``postgresql//``):
    # without its parse, where a password or a query in it ends cannot be told.
    return "@" in text or "?" in text


def url_has_secret(text: str) -> bool:
    """Whether ``text`` is a URL that carries a password (in its authority or its query).

    A string SQLAlchemy cannot parse counts as one when it has an ``@`` or a ``?``.
    """
    url = parse_url(text)
    if url is None:
        return _unparseable_may_hide_secret(text)
    return url.password is not None or bool(_secret_query_keys(url))


def mask_url(text: str) -> str:
    """``text`` with any password (authority or query) replaced by ``***``.

    A path (``journal:/x``, ``/data/file``) is returned as it is; a string SQLAlchemy cannot
    parse that has an ``@`` or a ``?`` is not shown at all.
    """
    url = parse_url(text)
    if url is None:
        return "<not shown: not a URL SQLAlchemy can parse>" if _unparseable_may_hide_secret(text) else text
    secret_keys = _secret_query_keys(url)
    shown = url.set(query={k: v for k, v in url.query.items() if k not in secret_keys})
    rendered = shown.render_as_string(hide_password=True)
    if secret_keys:
        rendered += ("&" if shown.query else "?") + "&".join(f"{key}=***" for key in secret_keys)
    return rendered


def redact(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with ``url``'s password and the URL itself masked."""
    parsed = parse_url(url)
    secrets = [url]
    if parsed is not None:
        secrets += [parsed.password or "", *(str(parsed.query[k]) for k in _secret_query_keys(parsed))]
    # Passwords under four characters are left: replacing every "a" would garble the message
    # and hide the cause, and such a password is guessed faster than read from a log.
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, mask_url(url) if secret == url else "***")
    return text


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("pragma journal_mode=WAL")
    cursor.execute(f"pragma busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("pragma foreign_keys=ON")
    cursor.close()


def engine_for(url: str) -> sa.Engine:
    """One engine per URL per process (pooled connections survive between calls)."""

    def create() -> sa.Engine:
        if url.startswith("sqlite"):
            engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})

    return ENGINES.get(url, create)


def missing_columns(bind: sa.Engine | sa.Connection, table: sa.Table) -> list[str]:
    """Columns ``table`` defines that the database's table lacks (it was made by an earlier version)."""
    present = {column["name"] for column in sa.inspect(bind).get_columns(table.name)}
    return [column.name for column in table.columns if column.name not in present]


def add_column(conn: sa.Connection, table: sa.Table, name: str, *, existing_rows: Mapping[str, Any]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` with the column's type and nullability as ``table`` defines them.

    Parameters
    ----------
    existing_rows
        Per column, the value the rows already in the table get: required for a column that is
        not nullable, which the database fills with it as the column's default.

    Raises
    ------
    KeyError
        If the column is not nullable and ``existing_rows`` has no value for it.
    """
    column, dialect = table.c[name], conn.dialect
    ddl = f"{column.name} {column.type.compile(dialect=dialect)}"
    if not column.nullable:
        value = sa.literal(existing_rows[name]).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        ddl += f" NOT NULL DEFAULT {value}"
    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


def translate_db_error(exc: BaseException, *, what: str, url: str) -> PipelineError:
    """A typed error for a database failure: locked or unreachable is transient."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # A driver may quote its connection string back (an invalid DSN): never its password.
    text = redact(text, url)
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        if "not a database" in text or "malformed" in text:
            return StorageCorruptError(f"{what} database {mask_url(url)} is unreadable: {text}")
        return StorageUnavailableError(f"{what} database {mask_url(url)} unavailable: {text}")
    return StorageCorruptError(f"{what} database {mask_url(url)} failed: {type(exc).__name__}: {text}")
