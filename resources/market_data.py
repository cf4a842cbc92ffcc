"""Market data sources: the seeded synthetic market (default) or the user's OHLCV files."""

from __future__ import annotations

import abc

import dagster as dg
import polars as pl
from pydantic import Field

from simulations.constants import (
    DEFAULT_BACKTEST_DAYS,
    DEFAULT_FEE_BPS,
    DEFAULT_FORWARD_DAYS,
    DEFAULT_GAP_TOLERANCE_BARS,
    DEFAULT_MARKET_SEED,
    DEFAULT_SLIPPAGE_BPS,
    DEFAULT_SYNTHETIC_DAYS,
    DEFAULT_TRAIN_DAYS,
)
from simulations.market import MarketWindows, generate_synthetic_market, load_market_file, split_windows


class MarketDataResource(dg.ConfigurableResource, abc.ABC):
    """Where bars come from, and how they are cut into train / backtest / forward windows."""

    train_days: float = Field(default=DEFAULT_TRAIN_DAYS, gt=0, description="Train window (Optuna study), days.")
    backtest_days: float = Field(default=DEFAULT_BACKTEST_DAYS, gt=0, description="Backtest window (gate 1), days.")
    forward_days: float = Field(default=DEFAULT_FORWARD_DAYS, gt=0, description="Forward window (paper venue), days.")
    symbol: str | None = Field(default=None, description="Symbol to trade when the data holds several.")
    fee_bps: float = Field(default=DEFAULT_FEE_BPS, ge=0, description="Fee per unit traded, basis points.")
    slippage_bps: float = Field(
        default=DEFAULT_SLIPPAGE_BPS, ge=0, description="Slippage per unit traded, basis points."
    )

    @abc.abstractmethod
    def load_frame(self) -> pl.DataFrame:
        """All bars, validated (columns of `simulations.market.MARKET_COLUMNS`)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line naming the source, for metadata."""

    def load_windows(self) -> MarketWindows:
        """The fixed windows every trial is evaluated on."""
        return split_windows(
            frame=self.load_frame(),
            train_days=self.train_days,
            backtest_days=self.backtest_days,
            forward_days=self.forward_days,
            symbol=self.symbol,
        )


class SyntheticMarketDataResource(MarketDataResource):
    """The seeded synthetic market with regimes: works offline, identical for every trial."""

    seed: int = Field(default=DEFAULT_MARKET_SEED, description="Generator seed.")
    n_days: int = Field(default=DEFAULT_SYNTHETIC_DAYS, gt=0, description="Days of hourly bars.")

    def load_frame(self) -> pl.DataFrame:
        return generate_synthetic_market(seed=self.seed, n_days=self.n_days)

    def describe(self) -> str:
        return f"synthetic market, seed {self.seed}, {self.n_days} days of hourly bars"


class FileMarketDataResource(MarketDataResource):
    """The user's own OHLCV file (CSV or Parquet), validated on load."""

    path: str = Field(description="Path of the CSV or Parquet file.")
    gap_tolerance_bars: float = Field(
        default=DEFAULT_GAP_TOLERANCE_BARS, gt=0, description="Largest allowed gap, in bar intervals."
    )

    def load_frame(self) -> pl.DataFrame:
        return load_market_file(path=self.path, gap_tolerance=self.gap_tolerance_bars)

    def describe(self) -> str:
        return f"file {self.path}"
