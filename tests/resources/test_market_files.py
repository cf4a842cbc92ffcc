"""A directory market source's version: the content of its files, read again only where a file changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl
import pytest

from resources.market_data import FileMarketDataResource
from resources.process_cache import FILE_DIGESTS
from simulations.market import generate_synthetic_market


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """Three months of hourly bars, one CSV file per month."""
    FILE_DIGESTS.clear()
    bars = generate_synthetic_market(seed=7, n_days=90).drop("symbol")
    months = bars.with_columns(pl.col("timestamp").dt.strftime("%Y-%m").alias("__month"))
    for (month,), part in sorted(months.partition_by("__month", as_dict=True).items()):
        part.drop("__month").write_csv(tmp_path / f"{month}.csv")
    return tmp_path


def test_only_changed_files_are_read_again_and_the_version_follows_the_content(directory, monkeypatch):
    source = FileMarketDataResource(path=str(directory))
    read: list[str] = []
    digest = hashlib.file_digest

    def counting(handle, name):
        read.append(Path(handle.name).name)
        return digest(handle, name)

    monkeypatch.setattr(hashlib, "file_digest", counting)
    files = sorted(p.name for p in directory.glob("*.csv"))
    first = source.source_version()
    assert sorted(read) == files

    read.clear()
    assert source.source_version() == first and read == []  # a sensor tick with nothing new reads nothing

    # Rewritten with the same bars: read again, the same source.
    last = directory / files[-1]
    content = last.read_bytes()
    last.write_bytes(content)
    os.utime(last, ns=(last.stat().st_atime_ns, last.stat().st_mtime_ns + 1_000_000))
    assert source.source_version() == first and read == [files[-1]]

    # A bar appended in place, even with the modification time put back: a new version.
    read.clear()
    before = last.stat()
    with last.open("ab") as handle:
        handle.write(content.splitlines(keepends=True)[-1])
    os.utime(last, ns=(before.st_atime_ns, before.st_mtime_ns))
    appended = source.source_version()
    assert appended != first and read == [files[-1]]

    # A new month's file: a new version, and only that file is read.
    read.clear()
    (directory / "9999-01.csv").write_bytes(content)
    assert source.source_version() not in (first, appended) and read == ["9999-01.csv"]
