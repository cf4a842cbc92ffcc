"""Start what a user starts (dagster-daemon, dagster-webserver) as real processes on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Deployment:
    """A temporary Gauntlet home with its own Dagster instance and Optuna storage."""

    home: Path
    dagster_home: Path
    env: dict[str, str]

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.home / 'optuna.db'}"

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def start(self, *args: str, log_name: str) -> subprocess.Popen:
        log = open(self.home / f"{log_name}.log", "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            list(args), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_daemon(self) -> subprocess.Popen:
        return self.start(str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml"), log_name="daemon")

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def stop_process(proc: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """SIGTERM the whole process group, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 1.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    home = tmp_path / "gauntlet"
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "GAUNTLET_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "GAUNTLET_SENSOR_INTERVAL": "2",
        "PYTHONUNBUFFERED": "1",
    }
    # dagster.yaml reads DAGSTER_HOME: the test process opens the same instance.
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    # Create the SQLite storages once, before several daemon threads race to create them.
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    yield Deployment(home=home, dagster_home=dagster_home, env=env)
