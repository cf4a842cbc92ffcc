"""A worker killed in the middle of writing an artifact leaves a valid one, and the temporary
files it leaves are swept (issue 20, item 7).

The fault: the data file and its SHA-256 sidecar were renamed into place one after the other.
A kill between the two renames left the new data beside the old checksum: a valid artifact
that every read then flagged as corrupt. And the temporary files of killed writers stayed
forever.

Each case runs a real process that writes an artifact and is SIGKILLed right after its n-th
rename (``os.replace`` is wrapped in that process only, to place the kill exactly).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from resources.artifacts import STALE_TEMP_SECONDS, LocalArtifactStoreResource

ROOT = Path(__file__).resolve().parents[2]
KEY = "trials/demo__t00000007/backtest_results.json"
OLD = b'{"sharpe": 1.25, "trades": 14}'
NEW = b'{"sharpe": 0.5, "trades": 3}' * 100

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from resources.artifacts import LocalArtifactStoreResource

    base, key, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = LocalArtifactStoreResource(base_dir=base)
    store.write_bytes(key, {old!r})
    renames = 0
    real_replace = os.replace

    def replace(src, dst):
        global renames
        real_replace(src, dst)
        renames += 1
        if renames == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    store.write_bytes(key, {new!r})
    print(renames)
    """
).format(old=OLD, new=NEW)


def _write_and_kill(base: Path, kill_after: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRITER, str(base), KEY, str(kill_after)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )


def _renames_of_one_write(tmp_path: Path) -> int:
    done = _write_and_kill(tmp_path / "count", 0)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_kill_between_any_two_renames_leaves_the_old_or_the_new_artifact(tmp_path: Path):
    renames = _renames_of_one_write(tmp_path)
    assert renames >= 2
    seen = []
    for kill_after in range(1, renames):
        base = tmp_path / f"killed-after-{kill_after}"
        done = _write_and_kill(base, kill_after)
        assert done.returncode == -signal.SIGKILL, done.stderr
        store = LocalArtifactStoreResource(base_dir=str(base))
        assert store.exists(KEY)
        content = store.read_bytes(KEY)  # never "corrupt": the old bytes or the new
        assert content in (OLD, NEW), kill_after
        seen.append(content)
    # Before the data file's rename the write has not happened; after it, it has.
    assert seen[0] == OLD and seen[-1] == NEW


def test_temporary_files_of_killed_writers_are_swept(tmp_path: Path):
    renames = _renames_of_one_write(tmp_path)
    base = tmp_path / "killed"
    done = _write_and_kill(base, renames - 1)
    assert done.returncode == -signal.SIGKILL
    directory = (base / KEY).parent
    (directory / ".other.json.0a1b2c3d.tmp").write_bytes(b"a writer at work right now")
    killed = [p for p in directory.iterdir() if p.name.endswith(".tmp") and "other" not in p.name]
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    for path in killed:
        os.utime(path, (long_ago, long_ago))

    store = LocalArtifactStoreResource(base_dir=str(base))
    store.write_bytes("trials/demo__t00000007/cge_stress_report.json", b"{}")
    left = sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))
    # The stale ones are gone; a young one may belong to a writer still running.
    assert left == [".other.json.0a1b2c3d.tmp"]
    assert store.read_bytes(KEY) in (OLD, NEW)
