"""The Optuna storage is opened read-only: what is not there is a typed error, and nothing is
created (issue 20, item 4).

The fault: a mistyped SQLite path, an empty PostgreSQL database or a new journal file each got
Optuna's schema created by merely opening them; the run then said "no new complete trials" and
`gauntlet health` said healthy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from gauntlet.cli import main
from resources.optuna_study import OptunaStudyResource, StudyCursor
from simulations.errors import ConfigurationError, PipelineError, StorageCorruptError, StorageNotFoundError
from tests.conftest import add_complete_trials

ROOT = Path(__file__).resolve().parents[2]


def _resource(url: str, **fields) -> OptunaStudyResource:
    return OptunaStudyResource(storage_url=url, **fields)


def _deterministic(caught: pytest.ExceptionInfo[PipelineError]) -> PipelineError:
    assert not caught.value.transient, caught.value
    return caught.value


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]


def test_a_missing_sqlite_file_is_a_typed_error_and_is_not_created(tmp_path: Path):
    path = tmp_path / "typo" / "optuna.db"
    for call in (lambda r: r.list_studies(), lambda r: r.read_new_trials("demo", StudyCursor())):
        with pytest.raises(StorageNotFoundError, match="does not exist") as caught:
            call(_resource(f"sqlite:///{path}"))
        assert str(path) in str(_deterministic(caught))
    assert not path.exists() and not path.parent.exists()


def test_an_sqlite_file_without_optuna_tables_is_a_typed_error_and_gets_none(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StorageNotFoundError, match="no Optuna schema") as caught:
        _resource(f"sqlite:///{empty}").list_studies()
    _deterministic(caught)
    assert empty.stat().st_size == 0

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table prices (ts text, close real)")
    with pytest.raises(StorageNotFoundError, match="no Optuna schema"):
        _resource(f"sqlite:///{other}").list_studies()
    assert _tables(other) == ["prices"]


def test_an_incomplete_optuna_schema_is_refused_not_repaired(optuna_url: str, tmp_path: Path):
    add_complete_trials(optuna_url, "demo", [0.1])
    path = Path(optuna_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        conn.execute("drop table trial_heartbeats")
        conn.execute("delete from version_info")
    with pytest.raises(StorageCorruptError, match="incomplete Optuna schema") as caught:
        _resource(optuna_url).list_studies()
    _deterministic(caught)
    assert "trial_heartbeats" not in _tables(path)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("select count(*) from version_info").fetchone() == (0,)


def test_reading_an_existing_storage_writes_nothing(optuna_url: str):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    path = Path(optuna_url.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    res = _resource(optuna_url)
    assert res.list_studies() == ["demo"]
    batch = res.read_new_trials("demo", StudyCursor())
    assert [s.number for s in batch.completed] == [0, 1]
    assert [s.number for s in res.get_trials("demo", [1])] == [1]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    # The trainer keeps writing while Gauntlet reads.
    add_complete_trials(optuna_url, "demo", [0.3])
    assert [s.number for s in res.read_new_trials("demo", batch.cursor).completed] == [2]


def test_a_missing_journal_file_is_a_typed_error_and_is_not_created(tmp_path: Path):
    path = tmp_path / "optuna.log"
    with pytest.raises(StorageNotFoundError, match="does not exist") as caught:
        _resource(f"journal:{path}").list_studies()
    _deterministic(caught)
    assert list(tmp_path.iterdir()) == []


def test_a_journal_is_read_without_being_written(tmp_path: Path):
    path = tmp_path / "optuna.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    optuna.create_study(study_name="j", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    before = path.read_bytes()
    res = _resource(f"journal:{path}")
    assert [s.number for s in res.read_new_trials("j", StudyCursor()).completed] == [0, 1]
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["optuna.log"]


def test_a_missing_study_is_a_typed_error(optuna_url: str):
    add_complete_trials(optuna_url, "demo", [0.1])
    res = _resource(optuna_url)
    for call in (lambda: res.read_new_trials("nope", StudyCursor()), lambda: res.get_trials("nope", [0])):
        with pytest.raises(StorageNotFoundError, match="study 'nope' does not exist") as caught:
            call()
        _deterministic(caught)
    # A watched study that does not exist is named; the ones that do are still listed.
    watching = _resource(optuna_url, studies=["demo", "dmeo"])
    assert watching.list_studies() == ["demo"]
    with pytest.raises(StorageNotFoundError, match=r"watched study\(ies\) \['dmeo'\] do not exist"):
        watching.check()


def test_other_backends_are_refused_rather_than_opened_writable():
    with pytest.raises(ConfigurationError, match="cannot enforce that on 'mysql'") as caught:
        _resource("mysql+pymysql://optuna@db.example/optuna").list_studies()
    _deterministic(caught)


@pytest.mark.postgres
def test_an_empty_postgres_database_gets_no_schema(make_pg_database: Callable[[], str]):
    url = make_pg_database()
    with pytest.raises(StorageNotFoundError, match="no Optuna schema") as caught:
        _resource(url).list_studies()
    _deterministic(caught)
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_missing_postgres_database_is_not_retried(pg_admin_engine: sa.Engine):
    url = pg_admin_engine.url.set(database="gauntlet_no_such_database").render_as_string(hide_password=False)
    with pytest.raises(StorageNotFoundError, match="does not exist") as caught:
        _resource(url).list_studies()
    _deterministic(caught)


@pytest.mark.postgres
def test_a_postgres_storage_is_read_in_read_only_transactions(make_pg_database: Callable[[], str]):
    url = make_pg_database()
    add_complete_trials(url, "pg", [0.1, 0.2])
    res = _resource(url)
    assert [s.number for s in res.read_new_trials("pg", StudyCursor()).completed] == [0, 1]
    with pytest.raises(StorageNotFoundError, match="study 'nope' does not exist"):
        res.read_new_trials("nope", StudyCursor())


def test_health_is_unhealthy_when_the_storage_is_missing_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    home = tmp_path / "gauntlet"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("GAUNTLET_HOME", str(home))
    assert main(["health", "--json"]) == 1
    checks = {c["component"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert not checks["optuna storage"]["healthy"]
    assert "StorageNotFoundError" in checks["optuna storage"]["detail"]
    assert not (home / "optuna.db").exists()

    add_complete_trials(f"sqlite:///{home / 'optuna.db'}", "demo", [0.1])
    monkeypatch.setenv("GAUNTLET_STUDIES", "demo,dmeo")
    assert main(["health", "--json"]) == 1
    checks = {c["component"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "['dmeo'] do not exist" in checks["optuna storage"]["detail"]
    monkeypatch.setenv("GAUNTLET_STUDIES", "demo")
    main(["health", "--json"])
    checks = {c["component"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["optuna storage"] == {
        "component": "optuna storage",
        "healthy": True,
        "detail": "reachable; 1 study(ies)",
    }
