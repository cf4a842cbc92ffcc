"""Fixtures of the resources' tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for one test: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return f"sqlite:///{tmp_path / 'gauntlet.db'}"
