"""The IO manager for shared assets: Dagster's UPathIOManager, atomic and checksummed.

Built on `dg.UPathIOManager`, so the same code writes to local disk or, with an fsspec URL,
to object storage. Local writes are atomic (temp file, fsync, rename); every write leaves a
SHA-256 sidecar that is verified before a value is decoded, so a truncated or altered file is
an `ArtifactError` naming it. Values are stored as data (`resources.shared_values`), never
pickled: the sidecar is a checksum, not an authentication, so whoever can write the volume
must still not be able to run code on the workers that load it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field
from upath import UPath

from resources.artifacts import read_checksummed, verified, write_checksummed
from resources.shared_values import decode, encode
from simulations.errors import ArtifactError


class ChecksummedUPathIOManager(dg.UPathIOManager):
    """Stores values as data next to a SHA-256 sidecar and refuses to load what does not match it."""

    extension = ".npz"

    @staticmethod
    def _local(path: UPath) -> Path | None:
        return Path(path.path) if path.protocol in ("", "file", "local") else None

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        data = encode(obj, where=str(path))
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
        if not path.exists():
            # Earlier versions pickled these values; a pickle is never read, whatever its sidecar says.
            legacy = path.with_suffix(".pkl")
            found = f"; {legacy} is a pickle from an earlier version and is not read" if legacy.exists() else ""
            raise ArtifactError(
                f"artifact {path} is missing{found}: rematerialize the shared assets (`make up`, or the "
                f"shared_job in the UI)"
            )
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
        return decode(data, where=str(path))


class ArtifactIOManager(dg.ConfigurableIOManagerFactory):
    """Stores shared assets below ``base_dir`` (a path or an fsspec URL)."""

    base_dir: str = Field(description="Directory or fsspec URL for stored asset values.")

    def create_io_manager(self, context: dg.InitResourceContext) -> ChecksummedUPathIOManager:
        return ChecksummedUPathIOManager(base_path=UPath(self.base_dir))
