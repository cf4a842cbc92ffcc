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

from resources.artifacts import read_checksummed, verified, write_checksummed
from simulations.errors import ArtifactError


class ChecksummedUPathIOManager(dg.UPathIOManager):
    """Pickles values next to a SHA-256 sidecar and refuses to load what does not match it."""

    extension = ".pkl"

    @staticmethod
    def _local(path: UPath) -> Path | None:
        return Path(path.path) if path.protocol in ("", "file", "local") else None

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        local = self._local(path)
        try:
            if local is not None:
                write_checksummed(local, data)
            else:
                # Object stores replace an object whole: no temporary file is needed.
                path.write_bytes(data)
                path.with_name(path.name + ".sha256").write_bytes(hashlib.sha256(data).hexdigest().encode())
        except OSError as exc:
            raise ArtifactError(f"could not write {path}: {exc.strerror or exc}") from exc

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        local = self._local(path)
        if local is not None:
            data = read_checksummed(local)
        else:
            try:
                raw = path.read_bytes()
                expected = path.with_name(path.name + ".sha256").read_bytes().decode("ascii").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ArtifactError(f"could not read {path} or its checksum: {exc}") from exc
            data = verified(raw, expected, where=str(path))
        return pickle.loads(data)  # noqa: S301 - verified against the checksum written with it


class ArtifactIOManager(dg.ConfigurableIOManagerFactory):
    """Stores shared assets below ``base_dir`` (a path or an fsspec URL)."""

    base_dir: str = Field(description="Directory or fsspec URL for stored asset values.")

    def create_io_manager(self, context: dg.InitResourceContext) -> ChecksummedUPathIOManager:
        return ChecksummedUPathIOManager(base_path=UPath(self.base_dir))
