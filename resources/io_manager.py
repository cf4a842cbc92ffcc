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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field
from upath import UPath

from resources.artifacts import read_checksummed, verified, write_checksummed
from resources.dagster_private import upath_partition_paths
from resources.shared_values import decode, encode
from simulations.errors import ArtifactError


class PartitionValues(Mapping[str, Any]):
    """An asset's value per partition, each read (and verified) the first time it is asked for.

    An input annotated with this type gets it: a run that needs some partitions of an input
    mapped to all of them (a batch of trials reads its instruments', not every instrument's)
    reads only those, and a partition that was never built is an `ArtifactError` for whoever
    asks for it, not for the whole run.
    """

    def __init__(self, paths: Mapping[str, UPath], load: Callable[[UPath], Any]) -> None:
        self._paths = dict(paths)
        self._load = load
        self._values: dict[str, Any] = {}

    def __getitem__(self, partition: str) -> Any:
        if partition not in self._values:
            self._values[partition] = self._load(self._paths[partition])
        return self._values[partition]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


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

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions and context.dagster_type.typing_type is PartitionValues:
            paths = upath_partition_paths(self, context)
            return PartitionValues(paths, lambda path: self.load_from_path(context, path))
        return super().load_input(context)


class ArtifactIOManager(dg.ConfigurableIOManagerFactory):
    """Stores shared assets below ``base_dir`` (a path or an fsspec URL)."""

    base_dir: str = Field(description="Directory or fsspec URL for stored asset values.")

    def create_io_manager(self, context: dg.InitResourceContext) -> ChecksummedUPathIOManager:
        return ChecksummedUPathIOManager(base_path=UPath(self.base_dir))
