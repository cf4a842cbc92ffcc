"""A full disk under the alert ledger: a typed, retryable error and no torn line (issue 20, item 7).

The fault, on a real full file system (a 64 KiB tmpfs mounted for the test): an alert line
that fits only partly was written partly, left in the ledger as a torn line, and, when the line
was shorter than the write buffer, surfaced as a raw `OSError` when the file was closed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.notifier import Alert, AlertDeliveryError, JsonLinesNotifierResource


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root to mount), unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _alert(key: str, reason_bytes: int) -> Alert:
    return Alert(
        key=key, kind="run_failed", trial=None, study="demo", stage="trial_gauntlet",
        reason="r" * reason_bytes, run_id=None, at=dt.datetime.now(dt.UTC),
    )


def _fill(directory: Path) -> Path:
    """Fill the file system: a file grown until the next write fails with ENOSPC."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("reason_bytes", [2_000, 20_000], ids=["line inside the write buffer", "line beyond it"])
def test_a_full_disk_is_a_typed_error_and_leaves_no_torn_line(tiny_fs: Path, reason_bytes: int):
    log = tiny_fs / f"alerts-{uuid.uuid4().hex[:6]}.jsonl"
    notifier = JsonLinesNotifierResource(path=str(log))
    # The first line ends close to the file's first page: what is left of the page takes a few
    # bytes of the next line, then the write fails (tmpfs allocates whole pages).
    assert notifier.notify(_alert("first", 3_700))
    before = log.read_bytes()
    assert 3_900 < len(before) < 4_096
    filler = _fill(tiny_fs)

    with pytest.raises(AlertDeliveryError, match="No space left on device") as caught:
        notifier.notify(_alert("second", reason_bytes))
    assert caught.value.transient
    assert log.read_bytes() == before  # nothing of the second line

    # Space again: the retry delivers, and every line of the ledger is whole.
    filler.unlink()
    assert notifier.notify(_alert("second", reason_bytes))
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(line)["key"] for line in lines[:-1]] == ["first", "second"]
