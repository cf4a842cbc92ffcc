"""Per-trial artifacts (snapshots, trade lists, equity curves): atomic writes, verified reads.

Each artifact is a file plus a ``.sha256`` sidecar listing the digests its data may have. A
write goes through temporary files in the same directory (the data fsynced) and three renames:

1. the sidecar, listing the new digest and the current ones;
2. the data (the write takes effect here);
3. the sidecar again, listing the new digest only.

A process killed between any two renames leaves a valid artifact, the old bytes or the new
ones, never half of either and never data beside a checksum that does not list it. A failed
write (a full disk) leaves the previous artifact and its checksum untouched. A read recomputes
the hash: a truncated or altered artifact is an `ArtifactError` naming the file. Temporary
files a killed writer left are swept by the next write to the same directory once they are
`STALE_TEMP_SECONDS` old.

Only the data is fsynced: the sidecar and the directory entry are not, because a crash that
loses them leaves a file whose hash does not match, which every read detects and names. An
fsync costs milliseconds and a trial writes about eight artifacts.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from simulations.errors import ArtifactError

_SIDECAR = ".sha256"
#: A temporary file this module names (``.<target>.<random>.tmp``, see `_temp_file`).
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
#: Age after which a temporary file is a killed writer's, not one at work: a write takes
#: milliseconds, an hour leaves room for the slowest shared file system.
STALE_TEMP_SECONDS = 3600


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


def sweep_stale_temp_files(directory: Path, *, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove this module's temporary files in ``directory`` older than ``older_than`` seconds."""
    cutoff = time.time() - older_than
    swept = []
    for entry in os.scandir(directory):
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                swept.append(Path(entry.path))
        except FileNotFoundError:
            # Another writer swept or renamed it first.
            continue
    return swept


def _digests(sidecar: Path) -> list[str]:
    """The digests a sidecar lists (one per line), [] when there is none."""
    try:
        return sidecar.read_bytes().decode("ascii").split()
    except (FileNotFoundError, UnicodeDecodeError):
        return []


def write_checksummed(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` with its SHA-256 sidecar; return the digest.

    Every temporary file is complete before anything is renamed into place; the renames are
    ordered so a kill between any two leaves a valid artifact (see the module docstring).
    """
    digest = hashlib.sha256(data).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temp_files(path.parent)
    sidecar = sidecar_of(path)
    listed = [digest, *(d for d in _digests(sidecar) if d != digest)]
    data_tmp = _temp_file(path, data, durable=True)
    try:
        transition_tmp = _temp_file(sidecar, "\n".join(listed).encode(), durable=False)
    except BaseException:
        data_tmp.unlink(missing_ok=True)
        raise
    try:
        final_tmp = _temp_file(sidecar, digest.encode(), durable=False)
    except BaseException:
        data_tmp.unlink(missing_ok=True)
        transition_tmp.unlink(missing_ok=True)
        raise
    os.replace(transition_tmp, sidecar)
    os.replace(data_tmp, path)
    os.replace(final_tmp, sidecar)
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
        listed = sidecar_of(path).read_bytes().decode("ascii").split()
    except FileNotFoundError as exc:
        raise ArtifactError(f"artifact {exc.filename} is missing") from exc
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"checksum of artifact {path} is damaged (not a hex digest)") from exc
    except OSError as exc:
        raise ArtifactError(f"could not read artifact {path}: {exc.strerror or exc}") from exc
    # During a write the sidecar lists the new digest and the old: the data is either.
    actual = hashlib.sha256(data).hexdigest()
    return data if actual in listed else verified(data, listed[0] if listed else "", where=str(path))


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
