"""Every cache a process keeps across resource instances, in one place.

Dagster builds resources anew for every run and sensor tick. What is expensive or must be
shared inside one process outlives them here: a database engine and its connection pool per
URL, an Optuna storage per URL, an alert ledger (its lock and read offset) per file, the digest
of each market file as last seen, and the databases whose schema this process has already
created or checked. Each is created once per key (a file's digest once per version of the
file), under the cache's lock, by the function the caller passes; a creation that raises
caches nothing, so the next call tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ProcessCache(Generic[K, V]):
    """Values kept for the life of the process, created once per key (thread-safe)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._values: dict[K, V] = {}
        self._versioned: dict[K, tuple[Hashable, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, create: Callable[[], V]) -> V:
        """The value of ``key``, made by ``create()`` the first time (under the lock, so once)."""
        with self._lock:
            if key not in self._values:
                self._values[key] = create()
            return self._values[key]

    def get_current(self, key: K, version: Hashable, create: Callable[[], V]) -> V:
        """The value of ``key`` at ``version``, made by ``create()`` again whenever the version
        differs from the one it was made at; only the latest value of a key is kept."""
        with self._lock:
            held = self._versioned.get(key)
            if held is None or held[0] != version:
                held = self._versioned[key] = (version, create())
            return held[1]

    def clear(self) -> None:
        """Forget every value (tests that start from a fresh process state)."""
        with self._lock:
            self._values.clear()
            self._versioned.clear()


#: SQLAlchemy engines, per database URL (`resources.database.engine_for`).
ENGINES: ProcessCache[str, Any] = ProcessCache("database engines")
#: Optuna storages, per storage URL (`resources.optuna_study`); opened read-only once.
OPTUNA_STORAGES: ProcessCache[str, Any] = ProcessCache("Optuna storages")
#: Alert ledgers, per resolved file (`resources.notifier`).
ALERT_LEDGERS: ProcessCache[Any, Any] = ProcessCache("alert ledgers")
#: SHA-256 of each market file, per path, at its (size, modification and change times in ns,
#: inode): a directory source is looked at every market source sensor tick, and only files that
#: changed since are read again (`resources.market_data`).
FILE_DIGESTS: ProcessCache[str, str] = ProcessCache("market file digests")
#: Databases whose schema is known to be in place, per (what, URL): registry, paper broker.
SCHEMAS_READY: ProcessCache[tuple[str, str], bool] = ProcessCache("schemas in place")
