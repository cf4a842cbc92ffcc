"""Where the windows lie: the read model behind ``gauntlet windows`` and ``gauntlet config check``.

A study must be tuned on its train window only, so its author needs the window's dates before
tuning: those of its own instrument (``market``, or the ``instruments`` entry whose ``studies``
patterns match it). They are read, in this order, from the configuration
(``<instrument>.windows.*_start``), from the Dagster instance (the dates that instrument's
`market_data` partition pinned there under the same window configuration),
or else computed as the next build of `market_data` would pin them now (it has not been built,
or the window configuration changed since). The bars are counted in the data as it is now: the
forward window grows as bars arrive. Loading validates the data exactly as `market_data` does
(`MarketDataResource.load_dated_windows`), so an error here is the error the build would raise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dagster as dg

from gauntlet.config import GauntletConfig
from gauntlet.environment import instruments_resource
from pipeline_assets.shared_assets import pinned_dates, recorded_window_dates
from resources.market_data import InstrumentsResource, MarketDataResource
from simulations.errors import ConfigurationError, MarketDataError
from simulations.constants import TRAIN_WINDOW_END_ATTR
from simulations.market import MarketWindows
from simulations.window_dates import WindowDates

#: The study name shown for the default instrument when no study is named or found yet: every
#: study no pattern routes elsewhere gets its windows.
ANY_STUDY = "*"


class WindowsOrigin(StrEnum):
    """Where the window dates shown come from."""

    CONFIGURED = "configured"
    PINNED = "pinned"
    FIRST_BUILD = "first_build"
    REPINNED = "repinned"


_ORIGIN_TEXT = {
    WindowsOrigin.CONFIGURED: "dates as configured (windows.*_start)",
    WindowsOrigin.PINNED: "dates pinned in the Dagster instance by market_data (its window_dates metadata)",
    WindowsOrigin.FIRST_BUILD: "market_data has not been built: dates the first build would pin now",
    WindowsOrigin.REPINNED: "the windows' configuration changed since market_data pinned its dates: "
    "dates the next build will pin now",
}


@dataclass(frozen=True)
class InstrumentWindows:
    """One instrument's windows as they stand: where they start, and the bars in them now."""

    instrument: str
    symbol: str
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
            f"instrument {self.instrument} ({self.symbol}): {self.source}",
            f"{_ORIGIN_TEXT[self.origin]}: " + ", ".join(f"{k} {v}" for k, v in self.dates.as_dict().items()),
            *(
                f"  {name:<8}  {window['start']} .. {window['end']}  {window['bars']:>8} bars"
                for name, window in self.summary.items()
            ),
            f"tune on bars up to {self.windows.train.end.isoformat()} "
            f"(declare it in the trial's user attribute {TRAIN_WINDOW_END_ATTR!r})",
        ]


def read_windows(*, instrument: str, market: MarketDataResource, instance: dg.DagsterInstance | None) -> InstrumentWindows:
    """``instrument``'s windows: configured, pinned in ``instance``, or as the next build would pin them.

    Raises
    ------
    MarketDataError, ConfigurationError
        As building `market_data` would: the message names the file, row, rule and the key to change.
    """
    pinned = pinned_dates(instance, instrument, market) if instance is not None else None
    dates, windows = market.load_dated_windows(pinned=pinned)
    if market.configured_dates() is not None:
        origin = WindowsOrigin.CONFIGURED
    elif pinned is not None:
        origin = WindowsOrigin.PINNED
    elif instance is not None and recorded_window_dates(instance, instrument) is not None:
        origin = WindowsOrigin.REPINNED
    else:
        origin = WindowsOrigin.FIRST_BUILD
    return InstrumentWindows(
        instrument=instrument,
        symbol=windows.train.symbol,
        source=market.describe(),
        origin=origin,
        dates=dates,
        windows=windows,
    )


def every_instrument_windows(
    instruments: InstrumentsResource, instance: dg.DagsterInstance | None, *, keys: Mapping[str, str] | None = None
) -> dict[str, InstrumentWindows]:
    """Every instrument's windows, by name.

    Raises
    ------
    ConfigurationError
        One line per instrument whose data does not load, each naming the instrument's section
        (``keys``: instrument name to its key in gauntlet.yaml) and what `market_data` would say.
    """
    found: dict[str, InstrumentWindows] = {}
    problems: list[str] = []
    for name in instruments.names():
        try:
            found[name] = read_windows(instrument=name, market=instruments.market(name), instance=instance)
        except (MarketDataError, ConfigurationError) as exc:
            where = (keys or {}).get(name, f"instrument {name}")
            problems.append(f"{where}: {exc.cause}")
    if problems:
        raise ConfigurationError("\n".join(problems))
    return found


def configured_windows(config: GauntletConfig) -> dict[str, InstrumentWindows]:
    """The windows of every instrument of a validated configuration, with the dates pinned in
    ``$DAGSTER_HOME``'s instance when that is set (`gauntlet config check` runs without an instance too).

    Raises
    ------
    ConfigurationError
        As `every_instrument_windows`.
    """
    keys = {name: config.market_key(name) for name in config.markets()}
    # Built as a run builds it: a table's ${VAR} URL is resolved now.
    with dg.build_resources({"instruments": instruments_resource(config)}) as resources:
        if not os.environ.get("DAGSTER_HOME"):
            return every_instrument_windows(resources.instruments, None, keys=keys)
        with dg.DagsterInstance.get() as instance:
            return every_instrument_windows(resources.instruments, instance, keys=keys)


def windows_payload(
    studies: Sequence[str], windows: Mapping[str, InstrumentWindows], instruments: InstrumentsResource
) -> dict[str, Any]:
    """``{"studies": [{"study", "instrument", "windows": {"train": {"start", "end", "bars"}, ...}}]}``.

    Each study gets its own instrument's windows. With no study named or found yet, each
    instrument is listed under the study patterns that route to it (the default under ``*``).
    """
    if studies:
        rows = [(study, instruments.instrument_of(study)) for study in studies]
    else:
        rows = [(ANY_STUDY, instruments.default)] + [
            (pattern, name) for name, patterns in sorted(instruments.studies.items()) for pattern in patterns
        ]
    return {
        "studies": [
            {"study": study, "instrument": name, "symbol": windows[name].symbol, "windows": windows[name].summary}
            for study, name in rows
        ]
    }


def windows_lines(payload: Mapping[str, Any], windows: Mapping[str, InstrumentWindows]) -> list[str]:
    """Per instrument, the studies judged on it and its windows."""
    lines: list[str] = []
    for name, shown in windows.items():
        studies = [row["study"] for row in payload["studies"] if row["instrument"] == name]
        if studies:
            lines += [f"studies {', '.join(studies)}, each judged on:", *shown.lines()]
    return lines
