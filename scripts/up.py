"""`make up`: the demo study's trainer, its market feed and `dagster dev` (webserver and daemon) on loopback.

All are child processes; Ctrl+C (or SIGTERM) stops them and waits for them. Running it again
continues the same study, market and Dagster instance: state lives under GAUNTLET_HOME.

When the configuration's market is the synthetic one (the demo's), the market becomes a directory
of files under GAUNTLET_HOME that `scripts.feed` seeds with its history and then grows at a
market hour per second, so forward paper sessions get bars to trade; the trainer trains on that
history. A configured file or table is left to its own ingester.

`make up-postgres` (``--postgres``) runs the same pipeline in the production environment with
every store on one PostgreSQL server: the Dagster instance (deploy/dagster-postgres.yaml), the
Optuna study, and the registry and paper sessions, one database each. The server is
``GAUNTLET_PG_SERVER`` (default: the local server, user postgres, no password); any variable
this sets can be given beforehand instead, and its database is then yours to create.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from gauntlet.config import load_config
from scripts.feed import demo_market, seed_directory
from simulations.constants import SYNTHETIC_BARS_PER_DAY

ROOT = Path(__file__).resolve().parent.parent
DEMO_STUDY = "demo"
DEMO_TRIALS = 400
DEMO_PACE_SECONDS = 12.0
HOST, PORT = "127.0.0.1", 3000
LOCAL_INSTANCE_YAML = ROOT / "dagster.yaml"
POSTGRES_INSTANCE_YAML = ROOT / "deploy" / "dagster-postgres.yaml"
DEFAULT_PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
# Separate databases: Dagster and Optuna each keep an alembic_version table.
PG_DATABASES = {"dagster": "gauntlet_dagster", "optuna": "gauntlet_optuna", "gauntlet": "gauntlet"}


def dagster_pg_environment(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster-postgres.yaml reads, for the database at ``url``."""
    parsed = sa.engine.make_url(url)
    return {
        "DAGSTER_PG_USERNAME": parsed.username or "",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_DB": parsed.database or "",
    }


def postgres_environment(home: Path, server_url: str) -> dict[str, str]:
    """Production settings with every store in its own database on the server at ``server_url``."""
    server = sa.engine.make_url(server_url)

    def database(name: str) -> str:
        return server.set(database=name).render_as_string(hide_password=False)

    state = home / "postgres"
    return {
        "GAUNTLET_ENV": "production",
        **dagster_pg_environment(database(PG_DATABASES["dagster"])),
        "GAUNTLET_OPTUNA_STORAGE": database(PG_DATABASES["optuna"]),
        "GAUNTLET_DATABASE_URL": database(PG_DATABASES["gauntlet"]),
        "GAUNTLET_ARTIFACT_DIR": str(state / "artifacts"),
        "GAUNTLET_ALERT_LOG": str(state / "alerts.jsonl"),
    }


def create_databases(server_url: str, names: list[str]) -> None:
    """Create the databases in ``names`` that the server does not have yet."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            existing = set(conn.execute(sa.text("select datname from pg_database")).scalars())
            for name in names:
                if name not in existing:
                    conn.execute(sa.text(f'create database "{name}"'))
    finally:
        engine.dispose()


def use_postgres(home: Path) -> None:
    """Point this process (and so its children) at PostgreSQL; create the default databases."""
    server_url = os.environ.get("GAUNTLET_PG_SERVER", DEFAULT_PG_SERVER)
    defaults = postgres_environment(home, server_url)
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    # Only databases this chose are created: a variable set beforehand names a database its owner made.
    ours = {
        PG_DATABASES["dagster"]: os.environ["DAGSTER_PG_DB"] == defaults["DAGSTER_PG_DB"],
        PG_DATABASES["optuna"]: os.environ["GAUNTLET_OPTUNA_STORAGE"] == defaults["GAUNTLET_OPTUNA_STORAGE"],
        PG_DATABASES["gauntlet"]: os.environ["GAUNTLET_DATABASE_URL"] == defaults["GAUNTLET_DATABASE_URL"],
    }
    create_databases(server_url, [name for name, chosen in ours.items() if chosen])
    # Never the SQLite instance's home: its dagster.yaml is the local one.
    os.environ["DAGSTER_HOME"] = str(home / "postgres" / "dagster")


def prepare_home(instance_yaml: Path = LOCAL_INSTANCE_YAML) -> tuple[Path, Path]:
    """Create GAUNTLET_HOME and DAGSTER_HOME, linking ``instance_yaml`` as the instance's dagster.yaml."""
    home = Path(os.environ.setdefault("GAUNTLET_HOME", str(ROOT / ".gauntlet"))).resolve()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))).resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    link = dagster_home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(instance_yaml)
    # Create (or migrate) the instance's storages once, before the daemon's threads and the
    # webserver race to create the same tables.
    subprocess.run([str(Path(sys.executable).parent / "dagster"), "instance", "migrate"], check=True, cwd=ROOT)
    return home, dagster_home


def demo_feed(home: Path, python: str) -> tuple[list[str], Path] | None:
    """The feeder's command line and the history file the trainer reads, when the configured market
    is the synthetic one; its directory is then this process's (and its children's) market file."""
    market = load_config(os.environ, import_plugins=False).config.market
    if market.file is not None or market.table is not None:
        return None
    directory = home / "market"
    history = seed_directory(
        directory,
        market=demo_market(seed=market.synthetic.seed, history_days=market.synthetic.days),
        history_bars=market.synthetic.days * SYNTHETIC_BARS_PER_DAY,
    )
    os.environ["GAUNTLET_MARKET_FILE"] = str(directory)
    command = [python, "-m", "scripts.feed", "--dir", str(directory), "--seed", str(market.synthetic.seed),
               "--history-days", str(market.synthetic.days)]
    return command, history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", action="store_true", help="every store on PostgreSQL (GAUNTLET_PG_SERVER)")
    args = parser.parse_args(argv)
    if args.postgres:
        use_postgres(Path(os.environ.setdefault("GAUNTLET_HOME", str(ROOT / ".gauntlet"))).resolve())
        home, dagster_home = prepare_home(POSTGRES_INSTANCE_YAML)
        storage = os.environ["GAUNTLET_OPTUNA_STORAGE"]
        where = f"PostgreSQL (instance database {os.environ['DAGSTER_PG_DB']} on {os.environ['DAGSTER_PG_HOST']})"
    else:
        home, dagster_home = prepare_home()
        storage = f"sqlite:///{home / 'optuna.db'}"
        where = str(home)
    python = sys.executable
    print(f"Gauntlet: state in {where}; UI on http://{HOST}:{PORT} (Ctrl+C stops everything)")
    feed = demo_feed(home, python)
    if feed:
        print(f"Gauntlet: the demo market is fed into {os.environ['GAUNTLET_MARKET_FILE']}; for gauntlet commands "
              f"in another shell: export GAUNTLET_MARKET_FILE={os.environ['GAUNTLET_MARKET_FILE']}")
    feeder = subprocess.Popen(feed[0], cwd=ROOT) if feed else None
    trainer = subprocess.Popen(
        [python, "-m", "simulations.train", "--study", DEMO_STUDY, "--trials", str(DEMO_TRIALS),
         "--storage", storage, "--pace", str(DEMO_PACE_SECONDS), *(["--market", str(feed[1])] if feed else [])],
        cwd=ROOT,
    )
    dagster = subprocess.Popen(
        [str(Path(python).parent / "dagster"), "dev", "-h", HOST, "-p", str(PORT), "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
    )
    children = [dagster, trainer, *([feeder] if feeder else [])]

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
