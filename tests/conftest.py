"""Shared fixtures: real SQLite files everywhere, real PostgreSQL where it can be had.

With ``CI=true`` a missing PostgreSQL is an error, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

optuna.logging.set_verbosity(optuna.logging.WARNING)

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "GAUNTLET_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def require_service(reason: str) -> None:
    """Skip with ``reason`` locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        require_service(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def make_pg_database(pg_admin_engine: sa.Engine) -> Iterator[Callable[[], str]]:
    """Creates fresh, empty PostgreSQL databases (returns their URLs); drops them afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"gauntlet_{uuid.uuid4().hex[:12]}"
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'create database "{name}"'))
        names.append(name)
        return pg_admin_engine.url.set(database=name).render_as_string(hide_password=False)

    yield make
    for name in names:
        with pg_admin_engine.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))


@pytest.fixture
def pg_database(make_pg_database: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test. Yields its URL."""
    return make_pg_database()


# Dagster is imported by these fixtures only, so that tests/simulations runs without it.
@pytest.fixture(scope="session")
def blank_instance_template(tmp_path_factory: pytest.TempPathFactory):
    from tests.dagster_helpers import InstanceTemplate

    return InstanceTemplate.build(tmp_path_factory.mktemp("blank_instance"))


@pytest.fixture(scope="session")
def shared_instance_template(tmp_path_factory: pytest.TempPathFactory):
    from tests.dagster_helpers import InstanceTemplate, build_default_shared

    return InstanceTemplate.build(tmp_path_factory.mktemp("shared_instance"), build_default_shared)


@pytest.fixture
def instance(blank_instance_template, tmp_path_factory: pytest.TempPathFactory):
    """A new, empty Dagster instance on SQLite (a copy of one whose storage is already created)."""
    with blank_instance_template.open(tmp_path_factory.mktemp("instance") / "dagster") as inst:
        yield inst


@pytest.fixture
def shared_instance(shared_instance_template, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """A new Dagster instance where `local_definitions` under ``tmp_path`` built the default
    market's shared assets (a copy of one build: the files under ``tmp_path``, the history here)."""
    with shared_instance_template.open(tmp_path_factory.mktemp("instance") / "dagster", tmp_path) as inst:
        yield inst


@pytest.fixture
def optuna_url(tmp_path: Path) -> str:
    """An Optuna RDB storage in a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def add_complete_trials(
    url: str,
    study_name: str,
    values: list[float],
    *,
    strategy: str = "momentum",
    params: list[dict] | None = None,
) -> optuna.Study:
    """Add COMPLETE momentum trials with the given objective values (no objective calls).

    ``params`` (one dict per value) overrides the default params, which vary the lookback.
    """
    study = optuna.create_study(study_name=study_name, storage=url, load_if_exists=True, direction="maximize")
    dist = {
        "lookback": optuna.distributions.IntDistribution(6, 480, log=True),
        "vol_lookback": optuna.distributions.IntDistribution(24, 720, log=True),
        "target_bar_vol": optuna.distributions.FloatDistribution(0.001, 0.01, log=True),
    }
    start = len(study.trials)
    for i, value in enumerate(values, start=start):
        trial_params = (
            params[i - start]
            if params is not None
            else {"lookback": 12 + 37 * i % 400, "vol_lookback": 168, "target_bar_vol": 0.003}
        )
        study.add_trial(
            optuna.trial.create_trial(
                params=trial_params,
                distributions=dist,
                value=value,
                user_attrs={"strategy": strategy, "in_sample_sharpe": value},
            )
        )
    return study
