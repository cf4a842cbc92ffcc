"""`make up`: the demo study's trainer plus `dagster dev` (webserver and daemon) on loopback.

Both are child processes; Ctrl+C (or SIGTERM) stops both and waits for them. Running it again
continues the same study and the same Dagster instance: state lives under GAUNTLET_HOME.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_STUDY = "demo"
DEMO_TRIALS = 400
DEMO_PACE_SECONDS = 12.0
HOST, PORT = "127.0.0.1", 3000


def prepare_home() -> tuple[Path, Path]:
    """Create GAUNTLET_HOME and DAGSTER_HOME, linking the repository's dagster.yaml."""
    home = Path(os.environ.setdefault("GAUNTLET_HOME", str(ROOT / ".gauntlet"))).resolve()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))).resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    link = dagster_home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(ROOT / "dagster.yaml")
    # Create (or migrate) the instance's storages once, before the daemon's threads and the
    # webserver race to create the same SQLite tables.
    subprocess.run([str(Path(sys.executable).parent / "dagster"), "instance", "migrate"], check=True, cwd=ROOT)
    return home, dagster_home


def main() -> int:
    home, dagster_home = prepare_home()
    python = sys.executable
    storage = f"sqlite:///{home / 'optuna.db'}"
    print(f"Gauntlet: state in {home}; UI on http://{HOST}:{PORT} (Ctrl+C stops everything)")
    trainer = subprocess.Popen(
        [python, "-m", "simulations.train", "--study", DEMO_STUDY, "--trials", str(DEMO_TRIALS),
         "--storage", storage, "--pace", str(DEMO_PACE_SECONDS)],
        cwd=ROOT,
    )
    dagster = subprocess.Popen(
        [str(Path(python).parent / "dagster"), "dev", "-h", HOST, "-p", str(PORT), "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
    )
    children = [dagster, trainer]

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT if child is dagster else signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while dagster.poll() is None:
            time.sleep(0.5)
    finally:
        stop(signal.SIGTERM, None)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    return dagster.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
