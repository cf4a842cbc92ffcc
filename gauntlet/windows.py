"""Where the windows lie: the read model behind ``gauntlet windows`` and ``gauntlet config check``.

A study must be tuned on its train window only, so its author needs the window's dates before
tuning. They are read, in this order, from the configuration (``market.windows.*_start``), from
the Dagster instance (the dates `market_data` pinned there under the same window configuration),
or else computed as the next build of `market_data` would pin them now (it has not been built,
or the window configuration changed since). The bars are counted in the data as it is now: the
forward window grows as bars arrive. Loading validates the data exactly as `market_data` does
(`MarketDataResource.load_dated_windows`), so an error here is the error the build would raise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dagster as dg

from gauntlet.config import GauntletConfig
from gauntlet.environment import market_resource
from pipeline_assets.shared_assets import pinned_dates, recorded_window_dates
from resources.market_data import MarketDataResource
from simulations.constants import TRAIN_WINDOW_END_ATTR
from simulations.market import MarketWindows, WindowDates

#: The study name shown when no study is named or found yet: every study gets these windows.
ANY_STUDY = "*"


class WindowsOrigin(StrEnum):
    """Where the window dates shown come from."""

    CONFIGURED = "configured"
    PINNED = "pinned"
    FIRST_BUILD = "first_build"
    REPINNED = "repinned"


_ORIGIN_TEXT = {
    WindowsOrigin.CONFIGURED: "dates as configured (market.windows.*_start)",
    WindowsOrigin.PINNED: "dates pinned in the Dagster instance by market_data (its window_dates metadata)",
    WindowsOrigin.FIRST_BUILD: "market_data has not been built: dates the first build would pin now",
    WindowsOrigin.REPINNED: "market.windows changed since market_data pinned its dates: "
    "dates the next build will pin now",
}


@dataclass(frozen=True)
class InstrumentWindows:
    """One instrument's windows as they stand: where they start, and the bars in them now."""

    instrument: str
    source: str
    origin: WindowsOrigin
    dates: WindowDates
    windows: MarketWindows

    @property
    def summary(self) -> dict[str, dict[str, Any]]:
        """Each window's first and last bar (ISO timestamps) and bar count."""
        return {
            w.name: {"start": w.start.isoformat(), "end": w.end.isoformat(), "bars": w.n_bars}
            for w in (self.windows.train, self.windows.backtest, self.windows.forward)
        }

    def lines(self) -> list[str]:
        """The windows, where their dates come from, and what a study may tune on."""
        return [
            f"instrument {self.instrument}: {self.source}",
            f"{_ORIGIN_TEXT[self.origin]}: " + ", ".join(f"{k} {v}" for k, v in self.dates.as_dict().items()),
            *(
                f"  {name:<8}  {window['start']} .. {window['end']}  {window['bars']:>8} bars"
                for name, window in self.summary.items()
            ),
            f"tune on bars up to {self.windows.train.end.isoformat()} "
            f"(declare it in the trial's user attribute {TRAIN_WINDOW_END_ATTR!r})",
        ]


def read_windows(*, market: MarketDataResource, instance: dg.DagsterInstance | None) -> InstrumentWindows:
    """The market's windows: configured, pinned in ``instance``, or as the next build would pin them.

    Raises
    ------
    MarketDataError, ConfigurationError
        As building `market_data` would: the message names the file, row, rule and the key to change.
    """
    pinned = pinned_dates(instance, market) if instance is not None else None
    dates, windows = market.load_dated_windows(pinned=pinned)
    if market.configured_dates() is not None:
        origin = WindowsOrigin.CONFIGURED
    elif pinned is not None:
        origin = WindowsOrigin.PINNED
    elif instance is not None and recorded_window_dates(instance) is not None:
        origin = WindowsOrigin.REPINNED
    else:
        origin = WindowsOrigin.FIRST_BUILD
    return InstrumentWindows(
        instrument=windows.train.symbol, source=market.describe(), origin=origin, dates=dates, windows=windows
    )


def configured_windows(config: GauntletConfig) -> InstrumentWindows:
    """The windows of a validated configuration's market, with the dates pinned in ``$DAGSTER_HOME``'s
    instance when that is set (`gauntlet config check` runs without an instance too).

    Raises
    ------
    MarketDataError, ConfigurationError
        As `read_windows`.
    """
    market = market_resource(config.market)
    if not os.environ.get("DAGSTER_HOME"):
        return read_windows(market=market, instance=None)
    with dg.DagsterInstance.get() as instance:
        return read_windows(market=market, instance=instance)


def windows_payload(studies: Sequence[str], windows: InstrumentWindows) -> dict[str, Any]:
    """``{"studies": [{"study", "instrument", "windows": {"train": {"start", "end", "bars"}, ...}}]}``.

    Every study is evaluated on the one configured market, so every study has the same windows.
    """
    return {
        "studies": [
            {"study": study, "instrument": windows.instrument, "windows": windows.summary}
            for study in studies or [ANY_STUDY]
        ]
    }
