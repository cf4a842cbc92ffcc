"""The shared assets' values as data, never as pickles: one typed codec per supported type.

A checksum sidecar detects damage, not an attacker: whoever can write the artifact volume can
write a matching sidecar too. So a stored value must be something that can only be *read*,
never executed. A value is stored as one uncompressed ``.npz`` archive (numpy's own format,
loaded with ``allow_pickle=False``) holding:

- ``manifest``: UTF-8 JSON describing the value's tree: JSON scalars as themselves, and
  tagged objects for tuples, lists, string-keyed dicts, datetimes, dates, numpy arrays and
  scalars, polars frames and dataclasses;
- ``a<n>``: the numpy arrays (and numpy scalars as 0-d arrays), object dtypes refused;
- ``f<n>``: the polars frames as Parquet bytes.

Dataclasses are walked field by field (``dataclasses.fields``), so adding or changing a field
of a known class needs no change here as long as the field's type is one of the above. The
class is recorded by its name in `SHARED_DATACLASSES`, a fixed table: nothing read from the
file decides what is imported or constructed beyond that table. An unsupported type is an
`ArtifactError` when the value is written; an archive that is not what this module writes is
an `ArtifactError` when it is read. Both name the artifact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import zipfile
from typing import Any

import numpy as np
import polars as pl

from simulations.calendars import MarketCalendar, Sessions
from simulations.errors import ArtifactError, PipelineError
from simulations.market import MarketWindow, MarketWindows
from simulations.window_dates import WindowDates
from simulations.stress import StressScenarios

#: Version tag of the manifest: a file written in another layout is refused, not guessed at.
FORMAT = "gauntlet-shared-value/1"

#: The only classes a stored value may contain, by the name recorded in the manifest: the
#: shared assets' values and the dataclasses their fields hold (the market's dates and
#: calendar are listed so that windows carrying them keep round-tripping).
SHARED_DATACLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (MarketWindows, MarketWindow, WindowDates, MarketCalendar, Sessions, StressScenarios)
}

_MANIFEST = "manifest"


class _Malformed(Exception):
    """The archive holds something this module does not write (turned into an `ArtifactError`)."""


class _Encoder:
    def __init__(self, where: str) -> None:
        self.where = where
        self.members: dict[str, np.ndarray] = {}

    def _member(self, prefix: str, array: np.ndarray) -> str:
        name = f"{prefix}{len(self.members)}"
        self.members[name] = array
        return name

    def _unsupported(self, value: object, at: str) -> ArtifactError:
        return ArtifactError(
            f"cannot store {self.where}: {at} is a {type(value).__module__}.{type(value).__qualname__}, which has "
            f"no data codec; shared values hold JSON scalars, tuples, lists, str-keyed dicts, datetimes, numpy "
            f"arrays, polars frames and the dataclasses in resources.shared_values.SHARED_DATACLASSES"
        )

    def encode(self, value: Any, at: str) -> Any:
        # numpy scalars first: np.float64 subclasses float and would lose its dtype as JSON.
        if isinstance(value, np.generic):
            return {"scalar": self.encode_array(np.asarray(value), at)}
        # Exact types: a subclass (an enum, a named tuple, a pandas Timestamp) would come back as
        # its base class, a silent change of type; it is refused instead.
        kind = type(value)
        if value is None or kind in (bool, int, float, str):
            return value
        if kind is np.ndarray:
            return {"array": self.encode_array(value, at), "writeable": bool(value.flags.writeable)}
        if kind is pl.DataFrame:
            buffer = io.BytesIO()
            try:
                value.write_parquet(buffer)
            except pl.exceptions.PolarsError as exc:
                raise ArtifactError(f"cannot store {self.where}: {at} cannot be written as Parquet ({exc})") from exc
            return {"frame": self._member("f", np.frombuffer(buffer.getvalue(), dtype=np.uint8))}
        if kind is dt.datetime:
            return {"datetime": value.isoformat()}
        if kind is dt.date:
            return {"date": value.isoformat()}
        if kind in (tuple, list):
            items = [self.encode(item, f"{at}[{index}]") for index, item in enumerate(value)]
            return {"tuple" if kind is tuple else "list": items}
        if kind is dict:
            if not all(isinstance(key, str) for key in value):
                raise ArtifactError(f"cannot store {self.where}: {at} is a dict with keys that are not strings")
            return {"dict": {key: self.encode(item, f"{at}[{key!r}]") for key, item in value.items()}}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = kind.__name__
            if SHARED_DATACLASSES.get(name) is not kind:
                raise self._unsupported(value, at)
            fields = {
                field.name: self.encode(getattr(value, field.name), f"{at}.{field.name}")
                for field in dataclasses.fields(value)
            }
            return {"dataclass": name, "fields": fields}
        raise self._unsupported(value, at)

    def encode_array(self, array: np.ndarray, at: str) -> str:
        if array.dtype.hasobject:
            raise ArtifactError(f"cannot store {self.where}: {at} is a numpy array of Python objects")
        return self._member("a", array)


def encode(value: Any, *, where: str) -> bytes:
    """``value`` as the bytes of a shared-value archive.

    Raises
    ------
    ArtifactError
        If ``value`` holds a type with no codec, naming ``where`` and the field.
    """
    encoder = _Encoder(where)
    manifest = json.dumps({"format": FORMAT, "value": encoder.encode(value, "the value")}).encode()
    buffer = io.BytesIO()
    # Uncompressed, so that the size of what a read allocates is bounded by the file's size.
    np.savez(buffer, **{_MANIFEST: np.frombuffer(manifest, dtype=np.uint8)}, **encoder.members)
    return buffer.getvalue()


class _Decoder:
    def __init__(self, members: dict[str, np.ndarray]) -> None:
        self.members = members

    def _member(self, name: object, prefix: str) -> np.ndarray:
        if not isinstance(name, str) or not name.startswith(prefix) or name not in self.members:
            raise _Malformed(f"reference {name!r} names no stored member")
        return self.members[name]

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise _Malformed(f"unexpected manifest node {type(node).__name__}")
        tag = next(iter(node))
        payload = node[tag]
        if tag == "array":
            array = self._member(payload, "a")
            # Restored as written: e.g. MarketWindow promises read-only arrays.
            array.setflags(write=node.get("writeable") is True)
            return array
        if tag == "scalar":
            return self._member(payload, "a")[()]
        if tag == "frame":
            return pl.read_parquet(io.BytesIO(self._member(payload, "f").tobytes()))
        if tag == "datetime":
            return dt.datetime.fromisoformat(payload)
        if tag == "date":
            return dt.date.fromisoformat(payload)
        if tag in ("tuple", "list") and isinstance(payload, list):
            items = [self.decode(item) for item in payload]
            return tuple(items) if tag == "tuple" else items
        if tag == "dict" and isinstance(payload, dict):
            return {key: self.decode(item) for key, item in payload.items()}
        if tag == "dataclass":
            return self._dataclass(payload, node.get("fields"))
        raise _Malformed(f"unknown manifest tag {tag!r}")

    def _dataclass(self, name: object, stored: object) -> Any:
        cls = SHARED_DATACLASSES.get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(stored, dict):
            raise _Malformed(f"class {name!r} is not one a shared value may hold")
        fields = dataclasses.fields(cls)
        if set(stored) != {field.name for field in fields}:
            raise _Malformed(
                f"{name} was stored with fields {sorted(stored)}, the code has {sorted(f.name for f in fields)}"
            )
        values = {key: self.decode(item) for key, item in stored.items()}
        # Through the constructor, so that the class's own validation (__post_init__) runs.
        instance = cls(**{field.name: values[field.name] for field in fields if field.init})
        for field in fields:
            if not field.init:
                object.__setattr__(instance, field.name, values[field.name])
        return instance


def decode(data: bytes, *, where: str) -> Any:
    """The value stored in ``data`` by :func:`encode`; never unpickles.

    Raises
    ------
    ArtifactError
        If ``data`` is not an archive :func:`encode` writes, naming ``where``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if any(info.compress_type != zipfile.ZIP_STORED for info in archive.infolist()):
                raise _Malformed("it holds compressed members, which this format never writes")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
        manifest = json.loads(members.pop(_MANIFEST, np.empty(0, dtype=np.uint8)).tobytes() or b"null")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _Malformed(f"it is not in format {FORMAT}")
        return _Decoder(members).decode(manifest.get("value"))
    except (_Malformed, zipfile.BadZipFile, ValueError, TypeError, KeyError, OSError, RecursionError,
            pl.exceptions.PolarsError, PipelineError) as exc:
        raise ArtifactError(
            f"artifact {where} is not a readable shared value ({exc}); rematerialize the shared assets"
        ) from exc
