"""The demo's market feed: a directory any market source reads, growing bar by bar, resumable."""

from __future__ import annotations

from pathlib import Path

import optuna
import polars as pl
import pytest

from resources.market_data import FileMarketDataResource
from scripts.feed import HISTORY_FILE, demo_market, feed_next, main, seed_directory
from simulations.constants import DEFAULT_SYNTHETIC_DAYS, SYNTHETIC_BARS_PER_DAY
from simulations.errors import MarketDataError
from simulations.train import run

HISTORY_DAYS, FUTURE_DAYS = 30, 3


@pytest.fixture(scope="module")
def market() -> pl.DataFrame:
    return demo_market(seed=5, history_days=HISTORY_DAYS, future_days=FUTURE_DAYS)


def _source(directory: Path) -> pl.DataFrame:
    return FileMarketDataResource(path=str(directory), train_days=20, backtest_days=5, forward_days=5).load_frame()


def test_the_feed_grows_a_valid_market_directory_one_day_at_a_time_and_resumes(tmp_path, market):
    directory = tmp_path / "market"
    history = seed_directory(directory, market=market, history_bars=HISTORY_DAYS * SYNTHETIC_BARS_PER_DAY)
    assert history.name == HISTORY_FILE
    assert _source(directory).equals(market.head(HISTORY_DAYS * SYNTHETIC_BARS_PER_DAY))
    # A file being written is invisible to the market source until it is renamed.
    (directory / "bars-99990101T0000.parquet.partial").write_bytes(b"half a file")
    for day in range(1, FUTURE_DAYS + 1):
        path = feed_next(directory, market=market, bars_per_file=SYNTHETIC_BARS_PER_DAY)
        assert path is not None and path.suffix == ".parquet"
        assert _source(directory).equals(market.head((HISTORY_DAYS + day) * SYNTHETIC_BARS_PER_DAY))
    assert feed_next(directory, market=market, bars_per_file=SYNTHETIC_BARS_PER_DAY) is None
    # Started again, it keeps what is there and has nothing more to feed.
    seed_directory(directory, market=market, history_bars=HISTORY_DAYS * SYNTHETIC_BARS_PER_DAY)
    assert _source(directory).equals(market)


def test_a_directory_fed_from_another_market_is_refused(tmp_path, market):
    directory = tmp_path / "market"
    other = demo_market(seed=6, history_days=HISTORY_DAYS, future_days=FUTURE_DAYS)
    seed_directory(directory, market=other.with_columns(pl.col("timestamp") + pl.duration(minutes=30)), history_bars=24)
    with pytest.raises(MarketDataError, match="is not a bar of the demo market"):
        feed_next(directory, market=market, bars_per_file=24)


def test_the_command_feeds_everything_and_the_trainer_trains_on_the_history(tmp_path):
    directory = tmp_path / "market"
    # The demo's history: as many days as the trainer's default windows need.
    argv = ["--dir", str(directory), "--seed", "5", "--history-days", str(DEFAULT_SYNTHETIC_DAYS),
            "--future-days", "2", "--pace", "1e9"]
    assert main(argv) == 0
    assert _source(directory).equals(demo_market(seed=5, history_days=DEFAULT_SYNTHETIC_DAYS, future_days=2))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = run(study_name="fed", storage=storage, n_trials=2, strategy="momentum", seed=0, pace_seconds=0,
                market=directory / HISTORY_FILE)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
