"""Shared, seeded fixtures of the simulations tests (no dagster)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from simulations.market import MarketWindows, generate_synthetic_market, split_windows


@pytest.fixture(scope="session")
def synthetic_frame() -> pl.DataFrame:
    """The default synthetic market (default seed, 605 days of hourly bars)."""
    return generate_synthetic_market()


@pytest.fixture(scope="session")
def windows(synthetic_frame: pl.DataFrame) -> MarketWindows:
    """Default train/backtest/forward windows of the default market."""
    return split_windows(frame=synthetic_frame)


@pytest.fixture(scope="session")
def random_walk_close() -> np.ndarray:
    """2,000 bars of a seeded geometric random walk (price units)."""
    rng = np.random.default_rng(7)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 2_000)))
