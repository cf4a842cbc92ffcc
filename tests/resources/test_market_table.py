"""Bars in a database table (SQLite, and PostgreSQL for real): loaded and validated as a file's,
watched through a watermark, and every failure a typed error naming the table and the rule."""

from __future__ import annotations


import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from gauntlet.config import load_config
from gauntlet.environment import instruments_resource
from resources.market_data import FileMarketDataResource, TableMarketDataResource
from simulations.constants import DEFAULT_INSTRUMENT
from simulations.errors import ConfigurationError, MarketDataError
from simulations.market import generate_synthetic_market

N_DAYS = 40
WINDOWS = {"train_days": 20.0, "backtest_days": 10.0, "forward_days": 5.0}


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return generate_synthetic_market(seed=9, n_days=N_DAYS)


def _write(url: str, frame: pl.DataFrame, table: str = "btc_hourly", *, if_exists: str = "replace") -> None:
    engine = sa.create_engine(url)
    try:
        frame.write_database(table, connection=engine, if_table_exists=if_exists)
    finally:
        engine.dispose()


def test_a_table_loads_the_bars_a_file_with_them_loads(database_url, bars, tmp_path):
    _write(database_url, bars)
    bars.write_csv(tmp_path / "btc_hourly.csv")
    table = TableMarketDataResource(database_url=database_url, table="btc_hourly", **WINDOWS)
    file = FileMarketDataResource(path=str(tmp_path / "btc_hourly.csv"), **WINDOWS)
    assert table.load_frame().equals(file.load_frame())
    assert table.load_windows().hashes == file.load_windows().hashes
    assert table.describe().startswith("table btc_hourly in ")


def test_the_watermark_sees_appended_bars(database_url, bars):
    _write(database_url, bars.head(24 * 30))
    market = TableMarketDataResource(database_url=database_url, table="btc_hourly", **WINDOWS)
    first = market.source_version()
    assert market.source_version() == first
    _write(database_url, bars.slice(24 * 30, 24), if_exists="append")
    assert market.source_version() != first


def test_bad_bars_in_a_table_name_the_table_row_and_rule(database_url, bars):
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 99).then(-1.0).otherwise(pl.col("close")).alias("close")
    )
    _write(database_url, broken)
    market = TableMarketDataResource(database_url=database_url, table="btc_hourly", **WINDOWS)
    with pytest.raises(MarketDataError) as caught:
        market.load_frame()
    assert caught.value.cause.startswith("market table btc_hourly: row 100: rule non_positive_price: close = -1.0")


def test_a_missing_table_or_column_is_a_typed_error(database_url, bars):
    market = TableMarketDataResource(database_url=database_url, table="nowhere", **WINDOWS)
    with pytest.raises(MarketDataError, match=r"market table nowhere: rule missing_table: .*check market.table.name"):
        market.load_frame()
    _write(database_url, bars.drop("volume"), table="no_volume")
    with pytest.raises(MarketDataError, match=r"market table no_volume: rule missing_columns: missing \['volume'\]"):
        TableMarketDataResource(database_url=database_url, table="no_volume", **WINDOWS).load_frame()
    with pytest.raises(ConfigurationError, match="is not a table name"):
        TableMarketDataResource(database_url=database_url, table="x; drop table y", **WINDOWS)


def test_a_table_instrument_from_gauntlet_yaml_with_its_url_in_a_variable(tmp_path, monkeypatch, bars):
    url = f"sqlite:///{tmp_path / 'bars.db'}"
    _write(url, bars)
    for name in [n for n in __import__("os").environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    (tmp_path / "gauntlet.yaml").write_text(
        "instruments:\n  btc:\n    table: {url: '${BARS_DB}', name: btc_hourly}\n"
        "    windows: {train_days: 20, backtest_days: 10, forward_days: 5}\n    studies: ['btc_*']\n"
    )
    environ = {"GAUNTLET_CONFIG": str(tmp_path / "gauntlet.yaml")}
    with pytest.raises(ConfigurationError, match=r"instruments.btc.table.url .*BARS_DB is not set"):
        load_config(environ)
    config = load_config({**environ, "BARS_DB": url}).config
    monkeypatch.setenv("BARS_DB", url)
    with dg.build_resources({"instruments": instruments_resource(config)}) as resources:
        instruments = resources.instruments
        assert instruments.names() == (DEFAULT_INSTRUMENT, "btc")
        assert instruments.instrument_of("btc_trend") == "btc"
        windows = instruments.market("btc").load_windows()
    assert windows.backtest.symbol == "SYN" and windows.backtest.n_bars == 10 * 24


def test_file_and_table_together_are_refused(tmp_path, monkeypatch):
    for name in [n for n in __import__("os").environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    (tmp_path / "gauntlet.yaml").write_text("market:\n  file: a.csv\n  table: {url: 'sqlite:///b.db', name: bars}\n")
    with pytest.raises(ConfigurationError, match="give file or table, not both"):
        load_config({"GAUNTLET_CONFIG": str(tmp_path / "gauntlet.yaml")})
