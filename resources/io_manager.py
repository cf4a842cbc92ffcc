"""The IO manager for shared assets: Dagster's UPathIOManager, atomic and checksummed.

Built on `dg.UPathIOManager`, so the same code writes to local disk or, with an fsspec URL,
to object storage. Local writes are atomic (temp file, fsync, rename); every write leaves a
SHA-256 sidecar that is verified before a value is deserialised, so a truncated or altered
file is an `ArtifactError` naming it, not a crash inside the unpickler.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field
from upath import UPath

from resources.artifacts import atomic_write_bytes
from simulations.errors import ArtifactError

_SIDECAR = ".sha256"


class ChecksummedUPathIOManager(dg.UPathIOManager):
    """Pickles values next to a SHA-256 sidecar and refuses to load what does not match it."""

    extension = ".pkl"

    def _write(self, path: UPath, data: bytes) -> None:
        if path.protocol in ("", "file", "local"):
            atomic_write_bytes(Path(path.path), data)
        else:
            path.write_bytes(data)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._write(path, data)
            self._write(path.with_name(path.name + _SIDECAR), hashlib.sha256(data).hexdigest().encode())
        except OSError as exc:
            raise ArtifactError(f"could not write {path}: {exc.strerror or exc}") from exc

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        try:
            data = path.read_bytes()
            expected = path.with_name(path.name + _SIDECAR).read_text().strip()
        except FileNotFoundError as exc:
            raise ArtifactError(f"{path} or its checksum is missing: materialize the asset first") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtifactError(
                f"{path} is corrupt or truncated: sha256 {actual[:12]}, expected {expected[:12]}"
            )
        return pickle.loads(data)  # noqa: S301 - verified against the checksum written with it


class ArtifactIOManager(dg.ConfigurableIOManagerFactory):
    """Stores shared assets below ``base_dir`` (a path or an fsspec URL)."""

    base_dir: str = Field(description="Directory or fsspec URL for stored asset values.")

    def create_io_manager(self, context: dg.InitResourceContext) -> ChecksummedUPathIOManager:
        return ChecksummedUPathIOManager(base_path=UPath(self.base_dir))
