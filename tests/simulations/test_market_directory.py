"""A market source that is a directory of files (one per month, as data vendors deliver them):
loaded as the one series they make, every message naming the file and its row."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from resources.market_data import FileMarketDataResource
from simulations.errors import MarketDataError
from simulations.market import generate_synthetic_market, load_market_file

N_DAYS = 120


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    """Four months of hourly bars of one symbol, without a symbol column."""
    return generate_synthetic_market(seed=5, n_days=N_DAYS).drop("symbol")


def _by_month(bars: pl.DataFrame, directory: Path, *, parquet_months: tuple[str, ...] = ()) -> list[Path]:
    """``bars`` written one file per month (CSV, or Parquet for ``parquet_months``) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    months = bars.with_columns(pl.col("timestamp").dt.strftime("%Y-%m").alias("__month"))
    for (month,), part in sorted(months.partition_by("__month", as_dict=True).items()):
        part = part.drop("__month")
        path = directory / (f"{month}.parquet" if month in parquet_months else f"{month}.csv")
        part.write_parquet(path) if path.suffix == ".parquet" else part.write_csv(path)
        paths.append(path)
    return paths


def test_monthly_files_load_as_the_one_series_they_split(bars, tmp_path):
    paths = _by_month(bars, tmp_path / "BTCUSD", parquet_months=("2024-02",))
    (tmp_path / "BTCUSD" / "README.txt").write_text("not data: ignored")
    assert len(paths) == 4
    bars.write_csv(tmp_path / "whole.csv")
    whole = load_market_file(path=tmp_path / "whole.csv")
    loaded = load_market_file(path=tmp_path / "BTCUSD")
    # Without a symbol column the symbol is the directory's name, as a file's is its stem.
    assert loaded["symbol"].unique().to_list() == ["BTCUSD"]
    assert loaded.drop("symbol").equals(whole.drop("symbol"))


def test_a_bar_in_two_files_is_a_duplicate_naming_the_second_file(bars, tmp_path):
    paths = _by_month(bars, tmp_path / "m")
    march = pl.read_csv(paths[2])
    # The last bar of February delivered again at the top of March's file.
    pl.concat([pl.read_csv(paths[1]).tail(1), march]).write_csv(paths[2])
    with pytest.raises(MarketDataError) as caught:
        load_market_file(path=tmp_path / "m")
    assert caught.value.cause.startswith(f"market file {paths[2]}: row 1: rule duplicate_timestamp: ")


def test_a_missing_month_is_a_gap_naming_the_file_after_it(bars, tmp_path):
    paths = _by_month(bars, tmp_path / "m")
    paths[1].unlink()
    with pytest.raises(MarketDataError) as caught:
        load_market_file(path=tmp_path / "m")
    cause = caught.value.cause
    assert cause.startswith(f"market file {paths[2]}: row 1: rule missing_bars: ")
    assert "would accept every gap in this directory" in cause


def test_a_bad_value_names_its_own_file_and_row(bars, tmp_path):
    paths = _by_month(bars, tmp_path / "m")
    march = pl.read_csv(paths[2])
    march.with_columns(pl.when(pl.int_range(pl.len()) == 9).then(-1.0).otherwise(pl.col("low")).alias("low")).write_csv(
        paths[2]
    )
    with pytest.raises(MarketDataError) as caught:
        load_market_file(path=tmp_path / "m")
    assert caught.value.cause.startswith(f"market file {paths[2]}: row 10: rule non_positive_price")


def test_a_directory_without_market_files_is_a_typed_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("")
    with pytest.raises(MarketDataError, match=r"market directory .*empty: rule empty_directory: no .csv"):
        load_market_file(path=tmp_path / "empty")


def test_the_source_version_follows_the_files_content(bars, tmp_path):
    paths = _by_month(bars.head(24 * 60), tmp_path / "m")
    market = FileMarketDataResource(path=str(tmp_path / "m"))
    first = market.source_version()
    paths[-1].write_bytes(paths[-1].read_bytes())  # rewritten, same bars
    assert market.source_version() == first
    _by_month(bars, tmp_path / "m")  # the rest of the data arrives: a longer file and new months
    assert market.source_version() != first
    assert market.describe().startswith(f"directory {tmp_path / 'm'} ")
