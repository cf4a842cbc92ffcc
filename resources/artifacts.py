"""Per-trial artifacts (snapshots, trade lists, equity curves): atomic writes, verified reads.

Each artifact is a file plus a ``.sha256`` sidecar. Both are first written to temporary files
in the same directory (the data fsynced), then renamed into place, so a reader sees the old
bytes or the new ones, never half of either, and a failed write (a full disk) leaves the
previous artifact and its checksum untouched. A read recomputes the hash: a truncated or
altered artifact is an `ArtifactError` naming the file.

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


def _temp_file(path: Path, data: bytes, *, durable: bool) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync (when ``durable``), rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(_temp_file(path, data, durable=durable), path)


def sidecar_of(path: Path) -> Path:
    """Where the checksum of ``path`` is kept."""
    return path.with_name(path.name + _SIDECAR)


def write_checksummed(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` with its SHA-256 sidecar; return the digest.

    Both temporary files are complete before either is renamed into place.
    """
    digest = hashlib.sha256(data).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    data_tmp = _temp_file(path, data, durable=True)
    try:
        sidecar_tmp = _temp_file(sidecar_of(path), digest.encode(), durable=False)
    except BaseException:
        data_tmp.unlink(missing_ok=True)
        raise
    os.replace(data_tmp, path)
    os.replace(sidecar_tmp, sidecar_of(path))
    return digest


def verified(data: bytes, expected: str, *, where: str) -> bytes:
    """``data`` if its SHA-256 is ``expected``, else an `ArtifactError` naming ``where``."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ArtifactError(
            f"artifact {where} is corrupt or truncated: sha256 {actual[:12]}, "
            f"expected {expected[:12]} ({len(data)} bytes on disk)"
        )
    return data


def read_checksummed(path: Path) -> bytes:
    """The bytes of ``path`` verified against its sidecar, or an `ArtifactError` naming it."""
    try:
        data = path.read_bytes()
        expected = sidecar_of(path).read_bytes().decode("ascii").strip()
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact {exc.filename} is missing") from exc
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"checksum of artifact {path} is damaged (not a hex digest)") from exc
    except OSError as exc:
        raise ArtifactError(f"could not read artifact {path}: {exc.strerror or exc}") from exc
    return verified(data, expected, where=str(path))


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
        try:
            return write_checksummed(path, data)
        except OSError as exc:
            raise ArtifactError(f"could not write artifact {path}: {exc.strerror or exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        return read_checksummed(self._path(key))

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return path.exists() and sidecar_of(path).exists()

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()
