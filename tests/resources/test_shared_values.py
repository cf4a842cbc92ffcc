"""Shared assets are stored as data: loading one never runs code, whatever its sidecar says.

The attack (issue 20): the SHA-256 sidecar is a checksum, not an authentication, so whoever can
write the artifact volume can replace a shared value *and* its sidecar. With pickles that ran
code on every worker that loaded the value; here the payload writes a marker file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import io
import json
import pickle
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
from upath import UPath

import resources.io_manager as io_manager_module
from resources.io_manager import ChecksummedUPathIOManager
from resources.shared_values import FORMAT, encode
from simulations.errors import ArtifactError
from simulations.market import MarketWindow, MarketWindows
from simulations.stress import StressScenarios
from tests.dagster_helpers import local_definitions, materialize_shared

ASSET = dg.AssetKey("market_data")


class _RunsCodeWhenUnpickled:
    """A pickle payload: unpickling it writes ``marker`` (a stand-in for running ``id``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    return tmp_path / "shared"


@pytest.fixture
def manager(shared: Path) -> ChecksummedUPathIOManager:
    return ChecksummedUPathIOManager(base_path=UPath(shared))


def _store(manager: ChecksummedUPathIOManager, value: object) -> None:
    with dg.build_output_context(asset_key=ASSET) as context:
        manager.handle_output(context, value)


def _load(manager: ChecksummedUPathIOManager) -> object:
    with (
        dg.build_output_context(asset_key=ASSET) as upstream,
        dg.build_input_context(asset_key=ASSET, upstream_output=upstream) as context,
    ):
        return manager.load_input(context)


def _plant(path: Path, data: bytes) -> None:
    """Replace ``path`` and its sidecar, as someone with write access to the volume can."""
    path.write_bytes(data)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("extension", [".pkl", ChecksummedUPathIOManager.extension])
def test_a_planted_pickle_with_a_matching_sidecar_runs_no_code(manager, shared, tmp_path, extension):
    # Planted where the pickles used to be, and where the values are now.
    shared.mkdir()
    marker = tmp_path / "marker"
    _plant(shared / f"market_data{extension}", pickle.dumps(_RunsCodeWhenUnpickled(marker)))
    with pytest.raises(ArtifactError, match=r"market_data\.(npz|pkl)") as raised:
        try:
            _load(manager)
        finally:
            assert not marker.exists(), "loading the shared value ran the planted code"
    assert "rematerialize the shared assets" in str(raised.value)


def test_an_old_pickle_is_treated_as_missing_and_says_to_rematerialize(manager, shared):
    shared.mkdir()
    _plant(shared / "market_data.pkl", pickle.dumps({"windows": "old"}))
    with pytest.raises(ArtifactError, match=r"market_data\.npz is missing; .*market_data\.pkl is a pickle"):
        _load(manager)


def _archive(**members: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _manifest(value: object) -> np.ndarray:
    return np.frombuffer(json.dumps({"format": FORMAT, "value": value}).encode(), dtype=np.uint8)


ALTERED = {
    "object array (pickled inside the npy)": _archive(
        manifest=_manifest({"array": "a0", "writeable": False}), a0=np.array([{"x": 1}], dtype=object)
    ),
    "class outside the whitelist": _archive(
        manifest=_manifest({"dataclass": "os.system", "fields": {"command": "id"}})
    ),
    "fields the class does not have": _archive(
        manifest=_manifest({"dataclass": "MarketWindows", "fields": {"train": None}})
    ),
    "unknown tag": _archive(manifest=_manifest({"callable": "builtins.eval"})),
    "dangling reference": _archive(manifest=_manifest({"frame": "f7"})),
    "another format": _archive(manifest=np.frombuffer(b'{"format": "x", "value": 1}', dtype=np.uint8)),
    "not an archive": b"\x80\x04K\x01.",
}


@pytest.mark.parametrize("kind", sorted(ALTERED))
def test_an_altered_value_with_a_matching_sidecar_is_an_artifact_error_naming_it(manager, shared, kind):
    _store(manager, {"windows": "genuine"})
    _plant(shared / "market_data.npz", ALTERED[kind])
    with pytest.raises(ArtifactError, match=r"artifact .*market_data\.npz is not a readable shared value"):
        _load(manager)


def test_a_compressed_archive_is_refused_before_it_is_inflated(manager, shared):
    _store(manager, {"windows": "genuine"})
    buffer = io.BytesIO()
    np.savez_compressed(buffer, manifest=_manifest(1))
    _plant(shared / "market_data.npz", buffer.getvalue())
    with pytest.raises(ArtifactError, match=r"market_data\.npz .*compressed members"):
        _load(manager)


def test_an_unsupported_type_is_an_error_when_written_naming_the_field(manager, shared):
    with pytest.raises(ArtifactError, match=r"market_data\.npz: the value\['model'\] is a builtins\.object"):
        _store(manager, {"model": object()})
    with pytest.raises(ArtifactError, match=r"the value\[0\] is a numpy array of Python objects"):
        _store(manager, [np.array([None])])
    # A subclass would come back as its base class: refused rather than silently changed.
    with pytest.raises(ArtifactError, match=r"the value is a enum\.IntEnum|the value is a .*Level"):
        _store(manager, enum.IntEnum("Level", "LOW HIGH").LOW)
    assert not (shared / "market_data.npz").exists()


def test_plain_values_round_trip_with_their_types(manager):
    value = {
        "none": None, "flag": True, "count": 3, "ratio": 0.1, "nan": float("nan"), "text": "é",
        "pair": (1, 2.5), "items": [1, "a"], "int64": np.int64(7), "float32": np.float32(0.25),
        "when": dt.datetime(2024, 1, 2, 3, tzinfo=dt.UTC), "day": dt.date(2024, 1, 2),
        "frame": pl.DataFrame({"study": ["a"], "n": [1]}), "empty": pl.DataFrame(schema={"study": pl.String}),
    }
    _store(manager, value)
    assert_same(_load(manager), value)


def assert_same(loaded: object, stored: object, at: str = "value") -> None:
    """Equal field by field: arrays bit-identical (dtype, shape, read-only flag), frames equal."""
    assert type(loaded) is type(stored), at
    if dataclasses.is_dataclass(stored):
        for field in dataclasses.fields(stored):
            assert_same(getattr(loaded, field.name), getattr(stored, field.name), f"{at}.{field.name}")
    elif isinstance(stored, np.ndarray | np.generic):
        assert (loaded.dtype, loaded.shape) == (stored.dtype, stored.shape), at
        assert np.asarray(loaded).tobytes() == np.asarray(stored).tobytes(), at
        if isinstance(stored, np.ndarray):
            assert loaded.flags.writeable == stored.flags.writeable, at
    elif isinstance(stored, pl.DataFrame):
        assert loaded.schema == stored.schema and loaded.equals(stored, null_equal=True), at
    elif isinstance(stored, dict):
        assert list(loaded) == list(stored), at
        for key in stored:
            assert_same(loaded[key], stored[key], f"{at}[{key!r}]")
    elif isinstance(stored, tuple | list):
        assert len(loaded) == len(stored), at
        for index, (left, right) in enumerate(zip(loaded, stored, strict=True)):
            assert_same(left, right, f"{at}[{index}]")
    elif isinstance(stored, float) and stored != stored:
        assert loaded != loaded, at
    else:
        assert loaded == stored, at


def test_the_real_shared_assets_round_trip_field_by_field(optuna_url, tmp_path, monkeypatch):
    written: dict[str, object] = {}

    def recording_encode(value: object, *, where: str) -> bytes:
        written[where] = value
        return encode(value, where=where)

    monkeypatch.setattr(io_manager_module, "encode", recording_encode)
    with dg.instance_for_test() as instance:
        materialize_shared(local_definitions(optuna_url, tmp_path), instance)
    kinds = {type(value) for value in written.values()}
    assert {MarketWindows, StressScenarios} <= kinds
    loader = ChecksummedUPathIOManager(base_path=UPath(tmp_path))
    for where, value in written.items():
        loaded = loader.load_from_path(context=None, path=UPath(where))  # type: ignore[arg-type]
        assert_same(loaded, value, where)
        if isinstance(loaded, MarketWindows):
            # MarketWindow promises read-only arrays; a loaded one keeps the promise.
            window = loaded.backtest
            assert not any(getattr(window, f.name).flags.writeable for f in dataclasses.fields(MarketWindow)
                           if isinstance(getattr(window, f.name), np.ndarray))
            assert window.head_sha256(window.n_bars) == window.sha256

