"""End-to-end throughput: trials from Optuna storage through every gate, by the real daemon.

Builds a demo study in bulk (valid momentum params, the default market), starts
`dagster-daemon run` on a fresh SQLite instance with the repository's dagster.yaml (paper
venue on `replay`), and times until every trial has been evaluated and no run is pending.
Peak memory is the largest resident set of the daemon's process tree, sampled from /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import optuna
from dagster._core.storage.dagster_run import FINISHED_STATUSES

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


def run_daemon_until_done(n_trials: int, *, max_trials_per_run: int | None = None) -> dict[str, float]:
    """Seconds and peak memory to take ``n_trials`` through the gauntlet with the daemon."""
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
        log = open(home / "daemon.log", "wb")  # noqa: SIM115 - closed after the daemon stops
        started = time.monotonic()
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        peak_kib = 0
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        try:
            while time.monotonic() - started < TIMEOUT_SECONDS:
                peak_kib = max(peak_kib, _tree_rss_kib(daemon.pid))
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
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
            log.close()
            instance.dispose()
        return {"seconds": elapsed, "peak_rss_mib": peak_kib / 1024, "runs": len(runs), "failed_runs": failed}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    per_run = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(run_daemon_until_done(n, max_trials_per_run=per_run), indent=2))
