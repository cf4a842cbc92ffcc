"""End-to-end throughput: trials from Optuna storage through every gate, by the real daemon.

Builds a demo study in bulk (valid momentum params, the default market), starts the code
location's server and `dagster-daemon run` on a fresh SQLite instance with the repository's
dagster.yaml (paper venue on `replay`), and times until every trial has been evaluated and
no run is pending. Peak memory is the largest resident set of the two process trees (code
server with its run workers, daemon), sampled from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import optuna

from resources.dagster_private import FINISHED_STATUSES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT_SECONDS = 1_800


def demo_study(url: str, n_trials: int, *, seed: int = 0) -> None:
    """``n_trials`` COMPLETE momentum trials with sampled params, inserted in bulk."""
    import numpy as np

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(seed)
    study = optuna.create_study(study_name="bench", storage=url, direction="maximize")
    dists = {
        "lookback": optuna.distributions.IntDistribution(6, 480, log=True),
        "vol_lookback": optuna.distributions.IntDistribution(24, 720, log=True),
        "target_bar_vol": optuna.distributions.FloatDistribution(0.001, 0.01, log=True),
    }
    trials = [
        optuna.trial.create_trial(
            params={
                "lookback": int(np.exp(rng.uniform(np.log(6), np.log(480)))),
                "vol_lookback": int(np.exp(rng.uniform(np.log(24), np.log(720)))),
                "target_bar_vol": float(np.exp(rng.uniform(np.log(0.001), np.log(0.01)))),
            },
            distributions=dists,
            value=float(rng.normal(0.3, 0.5)),
            user_attrs={"strategy": "momentum"},
        )
        for _ in range(n_trials)
    ]
    study.add_trials(trials)


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (KiB), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in (Path("/proc") / str(current) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        stack.extend(children.get(current, []))
    return total


def _stop_process_group(leader: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM ``leader``'s process group and wait until every member is gone, then SIGKILL.

    The leader can exit before its children (a run worker finishing a scheduled funnel run);
    they would still be writing into the home while the temporary directory is removed.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        leader.wait(timeout=timeout)
    while time.monotonic() < deadline:
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
    leader.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the code server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the code server did not listen on port {port} within {timeout:.0f}s")


def run_daemon_until_done(n_trials: int, *, max_trials_per_run: int | None = None) -> dict[str, float]:
    """Seconds and peak memory to take ``n_trials`` through the gauntlet with the daemon.

    The code location runs as its own server (`dagster code-server start`) that the daemon
    connects to, as under `make up` (`dagster dev`) and in production. A daemon left to start
    its own code server replaces it every minute and keeps the old one alive while its runs
    finish, which is not how Gauntlet is run and would count two code servers.
    """
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "gauntlet"
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        url = f"sqlite:///{home / 'optuna.db'}"
        demo_study(url, n_trials)
        env = {**os.environ, "GAUNTLET_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
               "GAUNTLET_SENSOR_INTERVAL": "5"}
        if max_trials_per_run is not None:
            env["GAUNTLET_MAX_TRIALS_PER_RUN"] = str(max_trials_per_run)
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        dg.DagsterInstance.from_config(str(dagster_home)).dispose()
        port = _free_port()
        workspace = home / "workspace.yaml"
        workspace.write_text(
            json.dumps({"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": "gauntlet"}}]})
        )
        log = open(home / "daemon.log", "wb")  # noqa: SIM115 - closed after the daemon stops
        started = time.monotonic()
        code_server = subprocess.Popen(
            [str(BIN / "dagster"), "code-server", "start", "-m", "pipeline_assets.definitions",
             "--location-name", "gauntlet", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        daemon = None
        peak_kib = 0
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        try:
            _wait_for_port(port, code_server)
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            while time.monotonic() - started < TIMEOUT_SECONDS:
                peak_kib = max(peak_kib, _tree_rss_kib(daemon.pid) + _tree_rss_kib(code_server.pid))
                evaluated = instance.get_materialized_partitions(dg.AssetKey("backtest_results"))
                runs = instance.get_run_records(dg.RunsFilter(job_name="trial_job"))
                if len(evaluated) >= n_trials and all(r.dagster_run.status in FINISHED_STATUSES for r in runs):
                    break
                time.sleep(1.0)
            else:
                raise TimeoutError(f"{n_trials} trials not done in {TIMEOUT_SECONDS}s; see {home / 'daemon.log'}")
            elapsed = time.monotonic() - started
            failed = sum(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in runs)
        finally:
            if daemon is not None:
                _stop_process_group(daemon)
            _stop_process_group(code_server)
            log.close()
            instance.dispose()
        return {"seconds": elapsed, "peak_rss_mib": peak_kib / 1024, "runs": len(runs), "failed_runs": failed}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    per_run = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(run_daemon_until_done(n, max_trials_per_run=per_run), indent=2))
