"""Per-trial artifacts (snapshots, trade lists, equity curves): atomic writes, verified reads.

Each artifact is a file plus a ``.sha256`` sidecar. A write goes to a temporary file in the
same directory, is fsynced and renamed over the target, so a reader sees the old bytes or the
new ones, never half of either; the sidecar is replaced the same way afterwards. A read
recomputes the hash: a truncated or altered artifact is an `ArtifactError` naming the file.

Only the data is fsynced: the sidecar and the directory entry are not, because a crash that
loses them leaves a file whose hash does not match, which every read detects and names. An
fsync costs milliseconds and a trial writes about eight artifacts.
"""

from __future__ import annotations

import abc
import hashlib
import os
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from simulations.errors import ArtifactError

_SIDECAR = ".sha256"


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync (when ``durable``), rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactStoreResource(dg.ConfigurableResource, abc.ABC):
    """Where per-trial artifacts live. Keys are relative POSIX paths."""

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key``; return its SHA-256."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the bytes stored under ``key``, verified against their checksum."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an artifact is stored under ``key``."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Where a user finds the artifact (shown in metadata)."""


class LocalArtifactStoreResource(ArtifactStoreResource):
    """Artifacts on the local file system below ``base_dir``."""

    base_dir: str = Field(description="Directory that holds every artifact.")

    def _path(self, key: str) -> Path:
        base = Path(self.base_dir).resolve()
        path = (base / key).resolve()
        if base not in path.parents:
            raise ArtifactError(f"artifact key {key!r} escapes the store at {base}")
        return path

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        digest = hashlib.sha256(data).hexdigest()
        try:
            atomic_write_bytes(path, data)
            atomic_write_bytes(path.with_name(path.name + _SIDECAR), digest.encode(), durable=False)
        except OSError as exc:
            raise ArtifactError(f"could not write artifact {path}: {exc.strerror or exc}") from exc
        return digest

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        sidecar = path.with_name(path.name + _SIDECAR)
        try:
            data = path.read_bytes()
            expected = sidecar.read_text().strip()
        except FileNotFoundError as exc:
            raise ArtifactError(f"artifact {exc.filename} is missing") from exc
        except OSError as exc:
            raise ArtifactError(f"could not read artifact {path}: {exc.strerror or exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtifactError(
                f"artifact {path} is corrupt or truncated: sha256 {actual[:12]}, "
                f"expected {expected[:12]} ({len(data)} bytes on disk)"
            )
        return data

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return path.exists() and path.with_name(path.name + _SIDECAR).exists()

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()
