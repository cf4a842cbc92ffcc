"""`make up`: the demo market is fed only when the configuration's market is the synthetic one."""

from __future__ import annotations

import os

import pytest

from resources.market_data import FileMarketDataResource
from scripts.feed import HISTORY_FILE
from scripts.up import demo_feed
from simulations.constants import DEFAULT_SYNTHETIC_DAYS, SYNTHETIC_BARS_PER_DAY
from simulations.market import generate_synthetic_market


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GAUNTLET_HOME", str(tmp_path / "home"))
    return monkeypatch


def test_the_synthetic_market_becomes_a_fed_directory_that_is_the_market_file(clean_environment, tmp_path):
    home = tmp_path / "home"
    command, history = demo_feed(home, "python")
    directory = home / "market"
    assert history == directory / HISTORY_FILE
    assert os.environ["GAUNTLET_MARKET_FILE"] == str(directory)
    assert command[:4] == ["python", "-m", "scripts.feed", "--dir"] and command[4] == str(directory)
    # The directory holds the synthetic market's history, valid as any market source.
    bars = FileMarketDataResource(path=str(directory)).load_frame()
    assert bars.height == DEFAULT_SYNTHETIC_DAYS * SYNTHETIC_BARS_PER_DAY


def test_a_configured_market_file_is_left_to_its_own_ingester(clean_environment, tmp_path):
    generate_synthetic_market(n_days=DEFAULT_SYNTHETIC_DAYS).write_csv(tmp_path / "prices.csv")
    clean_environment.setenv("GAUNTLET_MARKET_FILE", str(tmp_path / "prices.csv"))
    assert demo_feed(tmp_path / "home", "python") is None
    assert not (tmp_path / "home" / "market").exists()
