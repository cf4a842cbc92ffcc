"""Disk full and corruption: the artifact store and the shared-asset IO manager fail loudly and safely.

A full disk is injected (an `OSError(ENOSPC)` from the file handle's ``write`` or from
``os.fsync``): mounting a tiny file system needs root. Corruption is real bytes changed on disk.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upath import UPath

from resources.artifacts import LocalArtifactStoreResource
from resources.io_manager import ChecksummedUPathIOManager
from resources.shared_values import decode
from simulations.errors import ArtifactError

KEY = "trials/demo__t00000007/backtest_results.json"
OLD = b'{"sharpe": 1.25, "trades": 14}'
NEW = b'{"sharpe": 0.5, "trades": 3}' * 100

# Where the disk fills up: the n-th atomic write of one store call (0 = the data file,
# 1 = its .sha256 sidecar), in write() or in fsync() (the sidecar is written without fsync).
FAULTS = {
    "data-write": ("write", 0),
    "data-fsync": ("fsync", 0),
    "sidecar-write": ("write", 1),
}

class _DiskFullHandle:
    """A real binary file handle whose writes fail with ENOSPC."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __enter__(self) -> _DiskFullHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@contextmanager
def disk_full(monkeypatch: pytest.MonkeyPatch, fault: str) -> Iterator[None]:
    """Fill the disk at ``fault`` (a key of FAULTS) for the calls inside the block."""
    call, nth = FAULTS[fault]
    real_fdopen, real_fsync = os.fdopen, os.fsync
    # atomic_write_bytes opens each temp file with os.fdopen and may fsync it: counting
    # opens tells the data file (0) from the sidecar (1).
    opened = {"n": -1}
    file_fds: set[int] = set()

    def fdopen(fd: int, mode: str = "r", *args, **kwargs):
        opened["n"] += 1
        handle = real_fdopen(fd, mode, *args, **kwargs)
        file_fds.add(handle.fileno())
        if call == "write" and opened["n"] == nth:
            return _DiskFullHandle(handle)
        return handle

    def fsync(fd: int) -> None:
        if call == "fsync" and opened["n"] == nth and fd in file_fds:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fdopen", fdopen)
        patch.setattr(os, "fsync", fsync)
        yield


def _temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- per-trial artifact store


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStoreResource:
    return LocalArtifactStoreResource(base_dir=str(tmp_path / "artifacts"))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_disk_full_keeps_the_previous_artifact_and_names_the_file(store, tmp_path, monkeypatch, fault):
    store.write_bytes(KEY, OLD)
    with disk_full(monkeypatch, fault), pytest.raises(ArtifactError) as raised:
        store.write_bytes(KEY, NEW)
    assert "backtest_results.json" in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert store.read_bytes(KEY) == OLD
    assert _temp_files(tmp_path) == []


def test_disk_full_on_a_first_write_leaves_no_artifact(store, tmp_path, monkeypatch):
    with disk_full(monkeypatch, "data-write"), pytest.raises(ArtifactError, match="backtest_results.json"):
        store.write_bytes(KEY, NEW)
    assert not store.exists(KEY)
    assert _temp_files(tmp_path) == []
    with pytest.raises(ArtifactError, match=r"backtest_results\.json.* is missing"):
        store.read_bytes(KEY)


def _truncate(data: bytes, at: int) -> bytes:
    return data[: at % len(data)]


def _flip(data: bytes, at: int) -> bytes:
    index = at % len(data)
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


def _append(data: bytes, at: int) -> bytes:
    return data + bytes([at % 256])


MUTATIONS: dict[str, Callable[[bytes, int], bytes]] = {"truncate": _truncate, "flip": _flip, "append": _append}

# A checksum sidecar is part of the artifact: damaging it in any way is the same typed error.
DAMAGED_SIDECARS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"0" * 64, id="wrong-digest"),
    pytest.param(b"\xff\xfe" + b"0" * 62, id="not-utf8"),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.sampled_from(sorted(MUTATIONS)), at=st.integers(min_value=0, max_value=10_000))
def test_a_damaged_artifact_file_is_an_artifact_error_naming_it(store, tmp_path, mutation, at):
    store.write_bytes(KEY, OLD)
    path = tmp_path / "artifacts" / KEY
    path.write_bytes(MUTATIONS[mutation](OLD, at))
    with pytest.raises(ArtifactError, match=r"backtest_results\.json is corrupt or truncated"):
        store.read_bytes(KEY)


@pytest.mark.parametrize("damage", DAMAGED_SIDECARS)
def test_a_damaged_checksum_sidecar_is_an_artifact_error_naming_the_file(store, tmp_path, damage):
    store.write_bytes(KEY, OLD)
    (tmp_path / "artifacts" / (KEY + ".sha256")).write_bytes(damage)
    with pytest.raises(ArtifactError, match=r"backtest_results\.json"):
        store.read_bytes(KEY)


def test_a_missing_sidecar_or_file_is_an_artifact_error_naming_it(store, tmp_path):
    store.write_bytes(KEY, OLD)
    (tmp_path / "artifacts" / (KEY + ".sha256")).unlink()
    with pytest.raises(ArtifactError, match=r"backtest_results\.json\.sha256 is missing"):
        store.read_bytes(KEY)
    store.write_bytes(KEY, OLD)
    (tmp_path / "artifacts" / KEY).unlink()
    with pytest.raises(ArtifactError, match=r"backtest_results\.json is missing"):
        store.read_bytes(KEY)


def test_an_io_error_while_reading_is_an_artifact_error_naming_the_file(store, monkeypatch):
    store.write_bytes(KEY, OLD)

    def failing_read(self: Path) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))

    monkeypatch.setattr(Path, "read_bytes", failing_read)
    with pytest.raises(ArtifactError, match=r"could not read artifact .*backtest_results\.json: Input/output error"):
        store.read_bytes(KEY)


# --------------------------------------------------------------------------- shared-asset IO manager

ASSET = dg.AssetKey("market_data")


@pytest.fixture
def io_manager(tmp_path: Path) -> ChecksummedUPathIOManager:
    return ChecksummedUPathIOManager(base_path=UPath(tmp_path / "shared"))


def _store_value(io_manager: ChecksummedUPathIOManager, value: object) -> None:
    with dg.build_output_context(asset_key=ASSET) as context:
        io_manager.handle_output(context, value)


@contextmanager
def _input_context() -> Iterator[dg.InputContext]:
    # Entered as context managers so their ephemeral instances are closed, not garbage-collected.
    with (
        dg.build_output_context(asset_key=ASSET) as upstream,
        dg.build_input_context(asset_key=ASSET, upstream_output=upstream) as context,
    ):
        yield context


def _load_value(io_manager: ChecksummedUPathIOManager) -> object:
    with _input_context() as context:
        return io_manager.load_input(context)


@pytest.fixture(scope="module")
def stored_value(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A shared value as the IO manager stores it, and its checksum sidecar."""
    base = tmp_path_factory.mktemp("stored_value")
    _store_value(ChecksummedUPathIOManager(base_path=UPath(base)), {"windows": list(range(50))})
    return (base / "market_data.npz").read_bytes(), (base / "market_data.npz.sha256").read_bytes()


@pytest.fixture
def input_context() -> Iterator[dg.InputContext]:
    """One context for every example of a property test: each context starts an ephemeral instance."""
    with _input_context() as context:
        yield context


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_disk_full_keeps_the_previous_shared_value_and_names_the_file(io_manager, tmp_path, monkeypatch, fault):
    _store_value(io_manager, {"windows": "old"})
    with disk_full(monkeypatch, fault), pytest.raises(ArtifactError) as raised:
        _store_value(io_manager, {"windows": "new" * 1000})
    assert "market_data.npz" in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert _load_value(io_manager) == {"windows": "old"}
    assert _temp_files(tmp_path) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.sampled_from(sorted(MUTATIONS)), at=st.integers(min_value=0, max_value=10_000))
def test_a_damaged_shared_value_is_an_artifact_error_not_a_decoding_error(
    io_manager, input_context, stored_value, tmp_path, mutation, at
):
    value, sidecar = stored_value
    path = tmp_path / "shared" / "market_data.npz"
    path.parent.mkdir(exist_ok=True)
    path.with_name("market_data.npz.sha256").write_bytes(sidecar)
    path.write_bytes(MUTATIONS[mutation](value, at))
    with pytest.raises(ArtifactError, match=r"market_data\.npz is corrupt or truncated"):
        io_manager.load_input(input_context)


@pytest.mark.parametrize("damage", DAMAGED_SIDECARS)
def test_a_damaged_shared_checksum_is_an_artifact_error_naming_the_file(io_manager, tmp_path, damage):
    _store_value(io_manager, {"windows": "old"})
    (tmp_path / "shared" / "market_data.npz.sha256").write_bytes(damage)
    with pytest.raises(ArtifactError, match=r"market_data\.npz"):
        _load_value(io_manager)


def test_a_missing_shared_value_is_an_artifact_error_naming_the_file(io_manager, tmp_path):
    _store_value(io_manager, {"windows": "old"})
    (tmp_path / "shared" / "market_data.npz.sha256").unlink()
    with pytest.raises(ArtifactError, match=r"market_data\.npz.* missing"):
        _load_value(io_manager)


def test_an_io_error_reading_a_shared_value_is_an_artifact_error_naming_the_file(io_manager, tmp_path, monkeypatch):
    _store_value(io_manager, {"windows": "old"})

    def failing_read(self: Path) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))

    # Local values may be read through pathlib or through UPath's local path class: fail both.
    monkeypatch.setattr(Path, "read_bytes", failing_read)
    monkeypatch.setattr(type(UPath(tmp_path)), "read_bytes", failing_read)
    with pytest.raises(ArtifactError, match=r"market_data\.npz"):
        _load_value(io_manager)


def test_a_verified_shared_value_round_trips_exactly(io_manager, tmp_path):
    value = {"windows": [1.5, 2.5], "hash": "abc"}
    _store_value(io_manager, value)
    data = (tmp_path / "shared" / "market_data.npz").read_bytes()
    assert decode(data, where="test") == value
    assert _load_value(io_manager) == value
