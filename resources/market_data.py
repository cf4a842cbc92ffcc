"""Market data sources: the seeded synthetic market (default) or the user's OHLCV files.

Windows are dates. Given as dates, they are used as given; given in days, they are pinned to
dates the first time the instrument's data is built, and `market_data` records the pin in the
Dagster instance (its materialization's metadata), so a later build cuts at the same dates.

Two digests tell Dagster when to rebuild `market_data`: `source_version` changes with the bars
at the source (observed as `market_source`'s data version), `config_version` with any key of
the market's configuration (`market_data`'s code version).

Studies trade different instruments: `InstrumentsResource` names every instrument (each a
market source above) and says which study trades which; the shared assets are partitioned by
instrument name.
"""

from __future__ import annotations

import abc
import fnmatch
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import sqlalchemy as sa
import sqlalchemy.exc
from pydantic import Field

from resources.database import engine_for, mask_url, translate_db_error
from resources.process_cache import FILE_DIGESTS
from simulations.constants import (
    DEFAULT_BACKTEST_DAYS,
    DEFAULT_CALENDAR,
    DEFAULT_FEE_BPS,
    DEFAULT_FORWARD_DAYS,
    DEFAULT_GAP_TOLERANCE_BARS,
    DEFAULT_INSTRUMENT,
    DEFAULT_MARKET_SEED,
    DEFAULT_SLIPPAGE_BPS,
    DEFAULT_SYNTHETIC_DAYS,
    DEFAULT_TRAIN_DAYS,
    INSTRUMENT_NAME_PATTERN,
    TABLE_NAME_PATTERN,
)
from simulations.errors import ConfigurationError, MarketDataError
from simulations.market import (
    MarketWindows,
    WindowDates,
    cut_windows,
    generate_synthetic_market,
    load_market_file,
    market_files,
    pin_window_dates,
    validate_market_bars,
)


class MarketDataResource(dg.ConfigurableResource, abc.ABC):
    """Where bars come from, and how they are cut into train / backtest / forward windows."""

    train_start: str | None = Field(
        default=None, description="Train window start (ISO timestamp); with the other two starts, instead of days."
    )
    backtest_start: str | None = Field(default=None, description="Backtest window start (ISO timestamp).")
    forward_start: str | None = Field(default=None, description="Forward window start (ISO timestamp), open-ended.")
    calendar: str = Field(default=DEFAULT_CALENDAR, description="24/7, 24/5 or an exchange code such as XNYS.")
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

    @abc.abstractmethod
    def source_version(self) -> str:
        """A digest of the bars at the source as they are now: it changes when bars are added, removed or edited."""

    def config_version(self) -> str:
        """A digest of this market's whole configuration (source, calendar, windows, costs)."""
        return hashlib.sha256(f"{type(self).__qualname__}:{self.model_dump_json()}".encode()).hexdigest()[:24]

    def window_config(self) -> dict[str, object]:
        """What decides the window dates; a change to it pins the windows anew (a new data version)."""
        if self.train_start is not None:
            return {"symbol": self.symbol, **self.configured_dates().as_dict()}
        days = {"train_days": self.train_days, "backtest_days": self.backtest_days, "forward_days": self.forward_days}
        return {"symbol": self.symbol, **days}

    def configured_dates(self) -> WindowDates | None:
        """The window dates the configuration gives, if it gives dates rather than days."""
        if self.train_start is None:
            return None
        return WindowDates.from_dict(
            {"train_start": self.train_start, "backtest_start": self.backtest_start, "forward_start": self.forward_start}
        )

    def load_dated_windows(self, *, pinned: WindowDates | None = None) -> tuple[WindowDates, MarketWindows]:
        """The windows every trial is evaluated on, and their dates.

        Parameters
        ----------
        pinned
            Dates recorded at the instrument's first build under the same `window_config`; the
            configured dates win, and without either the days are pinned to the data's end now.
        """
        frame = self.load_frame()
        dates = self.configured_dates() or pinned or pin_window_dates(
            frame=frame,
            train_days=self.train_days,
            backtest_days=self.backtest_days,
            forward_days=self.forward_days,
            symbol=self.symbol,
        )
        return dates, cut_windows(frame=frame, dates=dates, symbol=self.symbol)

    def load_windows(self) -> MarketWindows:
        """The windows as the configuration alone gives them (dates, or days pinned to the data's end now)."""
        return self.load_dated_windows()[1]


class SyntheticMarketDataResource(MarketDataResource):
    """The seeded synthetic market with regimes: works offline, identical for every trial."""

    seed: int = Field(default=DEFAULT_MARKET_SEED, description="Generator seed.")
    n_days: int = Field(default=DEFAULT_SYNTHETIC_DAYS, gt=0, description="Days of hourly bars.")

    def load_frame(self) -> pl.DataFrame:
        return generate_synthetic_market(seed=self.seed, n_days=self.n_days)

    def describe(self) -> str:
        return f"synthetic market, seed {self.seed}, {self.n_days} days of hourly bars"

    def source_version(self) -> str:
        # The generator is deterministic: its inputs are its bars.
        return hashlib.sha256(f"synthetic:{self.seed}:{self.n_days}".encode()).hexdigest()[:24]


class FileMarketDataResource(MarketDataResource):
    """The user's own OHLCV file (CSV or Parquet), or a directory of them, validated on load."""

    path: str = Field(description="Path of the CSV or Parquet file, or of a directory of them (e.g. one per month).")
    gap_tolerance_bars: float | None = Field(
        default=DEFAULT_GAP_TOLERANCE_BARS,
        ge=1,
        description="Largest step between bars, in bar intervals of the calendar's open time; null: no gap check.",
    )

    def load_frame(self) -> pl.DataFrame:
        return load_market_file(path=self.path, gap_tolerance=self.gap_tolerance_bars, calendar=self.calendar)

    def describe(self) -> str:
        kind = "directory" if Path(self.path).is_dir() else "file"
        return f"{kind} {self.path} (calendar {self.calendar})"

    def source_version(self) -> str:
        # The content, not the modification times: files rewritten with the same bars are the same
        # source. A file whose size, times and inode are as last seen is not read again.
        try:
            digests = {path.name: _file_digest(path) for path in market_files(Path(self.path))}
        except OSError as exc:
            raise MarketDataError(f"market file {self.path}: cannot be read ({exc}); check market.file") from exc
        if not Path(self.path).is_dir():
            return next(iter(digests.values()))[:24]
        return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:24]


def _file_digest(path: Path) -> str:
    """SHA-256 of ``path``'s bytes, read again only when its size, times or inode changed."""
    stat = path.stat()

    def read() -> str:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    version = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    return FILE_DIGESTS.get_current(str(path.resolve()), version, read)


class TableMarketDataResource(MarketDataResource):
    """Bars in a database table (the production store an ingester writes to), validated on load.

    The table has a file's columns (``timestamp, open, high, low, close, volume`` and an
    optional ``symbol``); rows are read in time order, so a message's row is the bar's
    position in time. Its source version is a watermark: the row count and the first and
    last timestamps, so appended or deleted bars are seen; a bar edited in place is not.
    """

    database_url: str = Field(description="SQLAlchemy URL of the database (secrets through ${VAR}).")
    table: str = Field(description="The table, optionally schema-qualified ('market.btc_hourly').")
    gap_tolerance_bars: float | None = Field(
        default=DEFAULT_GAP_TOLERANCE_BARS,
        ge=1,
        description="Largest step between bars, in bar intervals of the calendar's open time; null: no gap check.",
    )

    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        if not re.fullmatch(TABLE_NAME_PATTERN, self.table):
            raise ConfigurationError(
                f"market.table.name {self.table!r} is not a table name: letters, digits and '_', "
                "optionally 'schema.table'"
            )

    def _label(self) -> str:
        return f"market table {self.table}"

    def _reflected(self, conn: sa.Connection) -> sa.Table:
        schema, _, name = self.table.rpartition(".")
        try:
            return sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
        except sqlalchemy.exc.NoSuchTableError as exc:
            raise MarketDataError(
                f"{self._label()}: rule missing_table: no such table in {mask_url(self.database_url)}; "
                "check market.table.name, or let the ingester create it"
            ) from exc

    def _timestamp(self, table: sa.Table) -> sa.Column:
        column = {c.name.lower(): c for c in table.columns}.get("timestamp")
        if column is None:
            raise MarketDataError(
                f"{self._label()}: rule missing_columns: no 'timestamp' column; found {[c.name for c in table.columns]}"
            )
        return column

    def _read(self, query: Callable[[sa.Connection, sa.Table], Any]) -> Any:
        try:
            with engine_for(self.database_url).connect() as conn:
                return query(conn, self._reflected(conn))
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate_db_error(exc, what="market table", url=self.database_url) from exc

    def load_frame(self) -> pl.DataFrame:
        def bars(conn: sa.Connection, table: sa.Table) -> pl.DataFrame:
            rows = conn.execute(sa.select(table).order_by(self._timestamp(table))).all()
            return pl.DataFrame([tuple(r) for r in rows], schema=[c.name for c in table.columns], orient="row")

        return validate_market_bars(
            raw=self._read(bars),
            source=self._label(),
            default_symbol=self.table.rpartition(".")[2],
            gap_tolerance=self.gap_tolerance_bars,
            calendar=self.calendar,
        )

    def describe(self) -> str:
        return f"table {self.table} in {mask_url(self.database_url)} (calendar {self.calendar})"

    def source_version(self) -> str:
        def watermark(conn: sa.Connection, table: sa.Table) -> tuple:
            stamp = self._timestamp(table)
            return tuple(conn.execute(sa.select(sa.func.count(), sa.func.min(stamp), sa.func.max(stamp))).one())

        return hashlib.sha256(repr(self._read(watermark)).encode()).hexdigest()[:24]



class InstrumentsResource(dg.ConfigurableResource):
    """Every instrument trials are evaluated on, and which study trades which.

    An instrument is a market source (a file or directory of files, a database table, or the
    seeded synthetic market) with its symbol, calendar, windows and costs; its name is its
    partition of the shared assets. A study trades the instrument whose ``studies`` patterns
    match its name, else the ``default`` one.
    """

    default: str = Field(default=DEFAULT_INSTRUMENT, description="Instrument of studies no pattern matches.")
    files: dict[str, FileMarketDataResource] = Field(
        default_factory=dict, description="Instruments read from a CSV or Parquet file, by name."
    )
    tables: dict[str, TableMarketDataResource] = Field(
        default_factory=dict, description="Instruments read from a database table, by name."
    )
    synthetic: dict[str, SyntheticMarketDataResource] = Field(
        default_factory=dict, description="Instruments of the seeded synthetic market, by name."
    )
    studies: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per instrument, the study names (shell patterns, e.g. 'btc_*') that trade it.",
    )

    def model_post_init(self, context: object, /) -> None:
        super().model_post_init(context)
        kinds = (self.files, self.tables, self.synthetic)
        counted = Counter(name for kind in kinds for name in kind)
        problems = [f"two instruments are named {n!r}" for n, count in sorted(counted.items()) if count > 1]
        names = set(counted)
        problems += [
            f"instrument name {n!r} must be 1-32 letters, digits, '_' or '-' (it is a partition key)"
            for n in sorted(names)
            if not re.fullmatch(INSTRUMENT_NAME_PATTERN, n)
        ]
        if self.default not in names:
            problems.append(f"the default instrument {self.default!r} is not one of {sorted(names)}")
        problems += [f"study patterns name an unknown instrument {n!r}" for n in sorted(set(self.studies) - names)]
        if problems:
            raise ConfigurationError("instruments: " + "; ".join(problems))

    def names(self) -> tuple[str, ...]:
        """Every instrument's name, the default first and then in alphabetical order."""
        others = sorted({*self.files, *self.tables, *self.synthetic} - {self.default})
        return (self.default, *others)

    def market(self, name: str) -> MarketDataResource:
        """The market source of instrument ``name``."""
        found = self.files.get(name) or self.tables.get(name) or self.synthetic.get(name)
        if found is None:
            raise ConfigurationError(f"no instrument named {name!r}; instruments: {', '.join(self.names())}")
        return found

    def instrument_of(self, study: str) -> str:
        """The instrument study ``study`` trades.

        Raises
        ------
        ConfigurationError
            If patterns of two instruments match the study: which one it trades would be a guess.
        """
        matched = sorted(
            name for name, patterns in self.studies.items() if any(fnmatch.fnmatchcase(study, p) for p in patterns)
        )
        if len(matched) > 1:
            raise ConfigurationError(
                f"study {study!r} matches the study patterns of instruments {matched}: make the patterns "
                "under instruments.<name>.studies match it for one instrument only"
            )
        return matched[0] if matched else self.default
