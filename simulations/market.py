"""Market data: the seeded synthetic market, validated loading of OHLCV files, fixed windows.

Every frame this module returns has the columns ``timestamp`` (``Datetime("us", "UTC")``),
``symbol`` (String) and ``open``, ``high``, ``low``, ``close``, ``volume`` (Float64), sorted
by symbol then timestamp, and satisfies ``0 < low <= min(open, close)``,
``max(open, close) <= high``, ``volume >= 0``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from simulations.calendars import MarketCalendar, market_calendar
from simulations.constants import (
    DAYS_PER_YEAR,
    DEFAULT_CALENDAR,
    DEFAULT_BACKTEST_DAYS,
    DEFAULT_FORWARD_DAYS,
    DEFAULT_GAP_TOLERANCE_BARS,
    DEFAULT_MARKET_SEED,
    DEFAULT_SYNTHETIC_DAYS,
    DEFAULT_TRAIN_DAYS,
    MIN_BARS_PER_WINDOW,
    SECONDS_PER_DAY,
    SYNTHETIC_BAR_SECONDS,
    SYNTHETIC_BAR_VOL,
    SYNTHETIC_BASE_VOLUME,
    SYNTHETIC_JUMP_PROBABILITY,
    SYNTHETIC_JUMP_STD,
    SYNTHETIC_LOG_VOL_STD,
    SYNTHETIC_NOISE_DOF,
    SYNTHETIC_RANDOM_SPELL_BARS,
    SYNTHETIC_REVERSION_HALF_LIFE_BARS,
    SYNTHETIC_REVERTING_SPELL_BARS,
    SYNTHETIC_START_ISO,
    SYNTHETIC_START_PRICE,
    SYNTHETIC_TREND_DRIFT_PER_VOL,
    SYNTHETIC_TREND_SPELL_BARS,
    SYNTHETIC_VOL_PERSISTENCE,
    SYNTHETIC_VOLUME_LOG_STD,
    SYNTHETIC_WICK_VOL_FRACTION,
    TRAIN_WINDOW_END_ATTR,
)
from simulations.errors import ConfigurationError, MarketDataError, TrainWindowOverlapError, TrialDataError
from simulations.window_dates import WindowDates

#: Column order of every market frame.
MARKET_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
REQUIRED_FILE_COLUMNS = ("timestamp", *VALUE_COLUMNS)
WINDOW_NAMES = ("train", "backtest", "forward")

_TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")
_MICROSECONDS = 1_000_000
_YEAR_MICROSECONDS = int(DAYS_PER_YEAR * SECONDS_PER_DAY) * _MICROSECONDS
_ROW = "__row"
#: In a directory's bars: the index of the file each bar comes from (messages name the file).
_FILE = "__file"
MARKET_FILE_SUFFIXES = (".csv", ".parquet", ".pq")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_TREND, _REVERTING, _RANDOM = 0, 1, 2
_STREAMS = 6  # child streams of a seed: regimes, volatility, noise, jumps, wicks, volume
_SPELL_BARS = np.array([SYNTHETIC_TREND_SPELL_BARS, SYNTHETIC_REVERTING_SPELL_BARS, SYNTHETIC_RANDOM_SPELL_BARS])


# --------------------------------------------------------------------------- synthetic market


def _regime_spells(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hidden Markov chain of regimes, drawn spell by spell without a loop.

    A spell's length is geometric with the regime's mean, and the next regime is uniform
    over the others (a non-zero step modulo the number of regimes), so per bar this is a Markov chain that stays with probability
    ``1 - 1/mean``. ``n`` spells always cover ``n`` bars because every spell lasts >= 1 bar.

    Returns per bar: regime code, drift sign of its spell (+1/-1), index of its spell's first bar.
    """
    n_regimes = _SPELL_BARS.size
    first = rng.integers(n_regimes)
    steps = rng.integers(1, n_regimes, size=n - 1)
    regimes = (first + np.concatenate(([0], np.cumsum(steps)))) % n_regimes
    lengths = rng.geometric(1.0 / _SPELL_BARS[regimes])
    signs = rng.choice(np.array([-1.0, 1.0]), size=n)
    ends = np.cumsum(lengths)
    starts = np.concatenate(([0], ends[:-1]))
    # Only the spells that reach bar n are expanded (the n spells span ~200 n bars).
    used = int(np.searchsorted(ends, n)) + 1
    lengths = lengths[:used]
    return (
        np.repeat(regimes[:used], lengths)[:n],
        np.repeat(signs[:used], lengths)[:n],
        np.repeat(starts[:used], lengths)[:n],
    )


def _bar_volatility(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-bar volatility whose log is a stationary AR(1): volatility clusters like GARCH.

    An AR(1) is a linear filter, so ``lfilter`` runs the recursion in C; the first value is
    drawn from the stationary distribution. The ``-std**2/2`` term makes the mean of the
    variance's square root about :data:`SYNTHETIC_BAR_VOL`.
    """
    # Imported here: scipy.signal costs about 0.9 s to import, and only the synthetic market needs it.
    from scipy.signal import lfilter

    phi, std = SYNTHETIC_VOL_PERSISTENCE, SYNTHETIC_LOG_VOL_STD
    shocks = rng.standard_normal(n) * std * np.sqrt(1.0 - phi * phi)
    initial = np.array([phi * std * rng.standard_normal()])
    log_vol, _ = lfilter([1.0], [1.0, -phi], shocks, zi=initial)
    return SYNTHETIC_BAR_VOL * np.exp(log_vol - 0.5 * std * std)


def _reverting_deviation(innovations: np.ndarray, spell_start: np.ndarray) -> np.ndarray:
    """AR(1) deviation from the spell's anchor, restarted at 0 at every spell's first bar.

    One global filter ``y_t = a y_{t-1} + e_t`` is corrected by the part carried over from
    before the spell, ``a**(t - start + 1) * y_{start - 1}``, instead of looping over spells.
    """
    from scipy.signal import lfilter

    persistence = 0.5 ** (1.0 / SYNTHETIC_REVERSION_HALF_LIFE_BARS)
    filtered = lfilter([1.0], [1.0, -persistence], innovations)
    carried = np.where(spell_start > 0, filtered[np.maximum(spell_start - 1, 0)], 0.0)
    age = np.arange(innovations.size) - spell_start + 1
    return filtered - persistence**age * carried


def synthetic_log_returns(*, seed: int, n_bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar log returns of the synthetic market's hidden-regime process, and its volatility.

    These are the returns :func:`generate_synthetic_market` compounds into close prices
    (same seed, same numbers): trending, mean-reverting and random-walk spells, clustered
    volatility, Student-t innovations and rare jumps, drawn from the first four of the
    seed's six child streams (the last two draw wicks and volume). Other simulators reuse
    the market's texture through this function, e.g. the gate calibration's markets.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng`` (non-negative integer).
    n_bars
        Number of bars (>= 1).

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        Log returns (dimensionless) and the bars' volatility (standard deviation of the
        innovation, per bar), both of shape ``(n_bars,)``; the first return leads to the
        first close.

    Raises
    ------
    ConfigurationError
        On a negative seed or ``n_bars < 1``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(n_bars, bool) or not isinstance(n_bars, int | np.integer) or n_bars < 1:
        raise ConfigurationError(f"n_bars must be a positive integer, got {n_bars!r}")
    n = int(n_bars)
    regime_rng, vol_rng, noise_rng, jump_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(int(seed)).spawn(_STREAMS)[:4]
    )
    regime, drift_sign, spell_start = _regime_spells(regime_rng, n)
    sigma = _bar_volatility(vol_rng, n)
    dof = SYNTHETIC_NOISE_DOF
    innovations = sigma * noise_rng.standard_t(dof, size=n) * np.sqrt((dof - 2.0) / dof)

    deviation = _reverting_deviation(innovations, spell_start)
    previous = np.concatenate(([0.0], deviation[:-1]))
    previous[np.arange(n) == spell_start] = 0.0
    drift = np.where(regime == _TREND, drift_sign * SYNTHETIC_TREND_DRIFT_PER_VOL * sigma, 0.0)
    jumps = (jump_rng.random(n) < SYNTHETIC_JUMP_PROBABILITY) * jump_rng.standard_normal(n) * SYNTHETIC_JUMP_STD
    return np.where(regime == _REVERTING, deviation - previous, drift + innovations) + jumps, sigma


def generate_synthetic_market(
    *,
    seed: int = DEFAULT_MARKET_SEED,
    n_days: int = DEFAULT_SYNTHETIC_DAYS,
    symbol: str = "SYN",
    start: dt.datetime = dt.datetime.fromisoformat(SYNTHETIC_START_ISO),
) -> pl.DataFrame:
    """Hourly OHLCV bars of a seeded synthetic market with hidden regimes.

    A hidden Markov chain switches between trending spells (drift of constant sign per
    spell, :data:`SYNTHETIC_TREND_DRIFT_PER_VOL` bar volatilities per bar), mean-reverting
    spells (the price is an AR(1) around the spell's anchor, half-life
    :data:`SYNTHETIC_REVERSION_HALF_LIFE_BARS` bars) and random-walk spells. Volatility
    clusters (log-volatility AR(1)), innovations are Student-t, and rare jumps hit any
    regime. Trend signs are symmetric, so buy-and-hold has no edge; a momentum rule with a
    long lookback has a small genuine one, mean-reverting spells and costs punish short
    lookbacks. Independent child streams of ``seed`` drive regimes, volatility, noise,
    jumps, wicks and volume, so the same seed gives bit-identical bars.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng`` (non-negative integer).
    n_days
        Calendar days of bars (``n_days * 24`` hourly bars, traded around the clock).
    symbol
        Value of the ``symbol`` column.
    start
        Timezone-aware timestamp of the first bar.

    Returns
    -------
    polars.DataFrame
        Columns :data:`MARKET_COLUMNS`; prices in price units, volume in units.

    Raises
    ------
    ConfigurationError
        On a negative seed, ``n_days < 1``, an empty symbol or a naive ``start``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(n_days, bool) or not isinstance(n_days, int | np.integer) or n_days < 1:
        raise ConfigurationError(f"n_days must be a positive integer, got {n_days!r}")
    if not isinstance(symbol, str) or not symbol:
        raise ConfigurationError(f"symbol must be a non-empty string, got {symbol!r}")
    if not isinstance(start, dt.datetime) or start.tzinfo is None or start.utcoffset() is None:
        raise ConfigurationError(f"start must be a timezone-aware datetime, got {start!r}")

    n = int(n_days) * (SECONDS_PER_DAY // SYNTHETIC_BAR_SECONDS)
    log_returns, sigma = synthetic_log_returns(seed=seed, n_bars=n)
    wick_rng, volume_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(int(seed)).spawn(_STREAMS)[4:]
    )

    close = SYNTHETIC_START_PRICE * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate(([SYNTHETIC_START_PRICE], close[:-1]))
    wick = SYNTHETIC_WICK_VOL_FRACTION * sigma
    high = np.maximum(open_, close) * np.exp(np.abs(wick_rng.standard_normal(n)) * wick)
    low = np.minimum(open_, close) * np.exp(-np.abs(wick_rng.standard_normal(n)) * wick)
    volume = (
        SYNTHETIC_BASE_VOLUME
        * (sigma / SYNTHETIC_BAR_VOL)
        * np.exp(SYNTHETIC_VOLUME_LOG_STD * volume_rng.standard_normal(n))
    )

    start_us = (start - _EPOCH) // dt.timedelta(microseconds=1)
    timestamps = start_us + np.arange(n, dtype=np.int64) * (SYNTHETIC_BAR_SECONDS * _MICROSECONDS)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(timestamps, dtype=pl.Int64).cast(_TIMESTAMP_DTYPE),
            "symbol": pl.Series([symbol] * n, dtype=pl.String),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


# --------------------------------------------------------------------------- loading files


def _fail(path: Path | str, rule: str, detail: str, row: int | None = None, more: int = 0) -> MarketDataError:
    """A typed error naming the source (a file's path, or another source's label), the row and the rule."""
    source = f"market file {path}" if isinstance(path, Path) else path
    where = f"row {row}: " if row is not None else ""
    extra = f" (and {more} more row{'s' if more != 1 else ''})" if more else ""
    return MarketDataError(f"{source}: {where}rule {rule}: {detail}{extra}")


def _first_violation(frame: pl.DataFrame, mask: pl.Expr) -> tuple[int, dict[str, object], int] | None:
    """(1-based data row, row values, count of further violations) of the first row matching ``mask``."""
    hits = frame.filter(mask)
    if hits.height == 0:
        return None
    first = hits.row(0, named=True)
    return int(first[_ROW]), first, hits.height - 1


def market_files(path: Path) -> list[Path]:
    """The files of a market source: ``path`` itself, or a directory's CSV and Parquet files by name.

    Raises
    ------
    MarketDataError
        If ``path`` is a directory holding no such file (rule ``empty_directory``).
    """
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MARKET_FILE_SUFFIXES)
    if not files:
        raise MarketDataError(
            f"market directory {path}: rule empty_directory: no {' / '.join(MARKET_FILE_SUFFIXES)} file in it"
        )
    return files


def _read_raw(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in MARKET_FILE_SUFFIXES:
        raise _fail(path, "unsupported_format", f"suffix {path.suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise _fail(path, "missing_file", "no such file")
    try:
        if suffix == ".csv":
            # Everything as text, so an unparsable cell is reported with its row, not guessed away.
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise _fail(path, "unreadable_file", f"{type(exc).__name__}: {exc}") from exc


def _few(names: list[str], shown: int = 10) -> str:
    """At most ``shown`` names and how many there are: a message must stay one readable line."""
    return str(names) if len(names) <= shown else f"{names[:shown]} and {len(names) - shown} more"


def _normalised_columns(path: Path | str, raw: pl.DataFrame) -> pl.DataFrame:
    names = [str(name).strip().lower() for name in raw.columns]
    # Counted in one pass: a file may have tens of thousands of columns.
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise _fail(
            path, "duplicate_columns", f"columns {_few(duplicates)} appear more than once (case-insensitive)"
        )
    frame = raw.rename(dict(zip(raw.columns, names, strict=True)))
    present = set(names)
    missing = [column for column in REQUIRED_FILE_COLUMNS if column not in present]
    if missing:
        raise _fail(
            path,
            "missing_columns",
            f"missing {missing}; found {_few(names)}; required {list(REQUIRED_FILE_COLUMNS)} "
            "(plus an optional 'symbol')",
        )
    if frame.height == 0:
        raise _fail(path, "empty_file", "no data rows")
    return frame.with_row_index(_ROW, offset=1)


def _check_nulls(path: Path | str, frame: pl.DataFrame, columns: list[str]) -> None:
    for column in columns:
        empty = pl.col(column).is_null()
        if frame.schema[column] == pl.String:
            empty = empty | (pl.col(column).str.strip_chars() == "")
        found = _first_violation(frame, empty)
        if found:
            row, _, more = found
            raise _fail(path, "null_value", f"column {column!r} is empty", row, more)


def _parsed_timestamps(path: Path | str, frame: pl.DataFrame) -> pl.DataFrame:
    column = frame.get_column("timestamp")
    if column.dtype == pl.String:
        parsed = column.str.strip_chars().str.to_datetime(strict=False, time_zone="UTC", time_unit="us")
    elif isinstance(column.dtype, pl.Datetime):
        parsed = (
            column.dt.replace_time_zone("UTC") if column.dtype.time_zone is None else column.dt.convert_time_zone("UTC")
        ).dt.cast_time_unit("us")
    elif column.dtype == pl.Date:
        parsed = column.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    else:
        raise _fail(
            path,
            "unparsable_timestamp",
            f"column 'timestamp' has type {column.dtype}; expected datetimes or ISO-8601 strings",
        )
    found = _first_violation(frame.with_columns(parsed.alias("__parsed")), pl.col("__parsed").is_null())
    if found:
        row, values, more = found
        raise _fail(
            path,
            "unparsable_timestamp",
            f"{values['timestamp']!r} is not an ISO-8601 timestamp in the column's format",
            row,
            more,
        )
    return frame.with_columns(parsed.alias("timestamp"))


def _parsed_values(path: Path | str, frame: pl.DataFrame) -> pl.DataFrame:
    for column in VALUE_COLUMNS:
        raw = frame.get_column(column)
        if raw.dtype == pl.String:
            parsed = raw.str.strip_chars().cast(pl.Float64, strict=False)
        elif raw.dtype.is_numeric():
            parsed = raw.cast(pl.Float64)
        else:
            raise _fail(path, "unparsable_number", f"column {column!r} has type {raw.dtype}; expected numbers")
        found = _first_violation(frame.with_columns(parsed.alias("__parsed")), pl.col("__parsed").is_null())
        if found:
            row, values, more = found
            raise _fail(path, "unparsable_number", f"column {column!r} holds {values[column]!r}", row, more)
        frame = frame.with_columns(parsed.alias(column))
    return frame


def _check_values(path: Path | str, frame: pl.DataFrame) -> None:
    for column in VALUE_COLUMNS:
        found = _first_violation(frame, ~pl.col(column).is_finite())
        if found:
            row, values, more = found
            raise _fail(path, "non_finite_value", f"column {column!r} is {values[column]!r} (NaN or infinite)", row, more)
    for column in PRICE_COLUMNS:
        found = _first_violation(frame, pl.col(column) <= 0)
        if found:
            row, values, more = found
            raise _fail(path, "non_positive_price", f"{column} = {values[column]!r} must be > 0", row, more)
    found = _first_violation(frame, pl.col("volume") < 0)
    if found:
        row, values, more = found
        raise _fail(path, "negative_volume", f"volume = {values['volume']!r} must be >= 0", row, more)
    rules = (
        ("high_below_low", pl.col("high") < pl.col("low"), "high {high!r} < low {low!r}"),
        (
            "high_below_open_close",
            pl.col("high") < pl.max_horizontal("open", "close"),
            "high {high!r} < max(open {open!r}, close {close!r})",
        ),
        (
            "low_above_open_close",
            pl.col("low") > pl.min_horizontal("open", "close"),
            "low {low!r} > min(open {open!r}, close {close!r})",
        ),
    )
    for rule, mask, template in rules:
        found = _first_violation(frame, mask)
        if found:
            row, values, more = found
            raise _fail(path, rule, template.format(**values), row, more)


def _check_order_and_gaps(
    path: Path | str,
    frame: pl.DataFrame,
    gap_tolerance: float | None,
    calendar: MarketCalendar,
    files: Sequence[Path] | None = None,
) -> None:
    """Rows of a symbol strictly increasing in time, and no gap against ``calendar``.

    With ``files``, ``frame`` is a directory's bars from several files (column ``_FILE``
    indexes ``files``), and a message names the file and row of the offending bar.
    """

    def where(row: Mapping[str, object]) -> Path | str:
        return files[int(row[_FILE])] if files is not None else path

    timed = frame.with_columns(
        pl.col("timestamp").dt.epoch("us").diff().over("symbol").alias("__step"),
        pl.col("timestamp").shift(1).over("symbol").alias("__previous"),
    )
    for rule, mask, relation in (
        ("duplicate_timestamp", pl.col("__step") == 0, "repeats"),
        ("unsorted_timestamps", pl.col("__step") < 0, "is earlier than"),
    ):
        found = _first_violation(timed, mask)
        if found:
            row, values, more = found
            raise _fail(
                where(values),
                rule,
                f"symbol {values['symbol']!r}: timestamp {values['timestamp']} {relation} the previous "
                f"row's {values['__previous']}; rows of a symbol must be strictly increasing in time",
                row,
                more,
            )
    counts = timed.group_by("symbol").agg(pl.len().alias("__bars")).filter(pl.col("__bars") < 2)
    if counts.height:
        raise _fail(path, "too_few_bars", f"symbols {sorted(counts['symbol'])} have fewer than 2 bars")
    if gap_tolerance is None:
        return
    located = ["symbol", "timestamp", _ROW, *([_FILE] if files is not None else [])]
    gaps = [
        gap
        for symbol, bars in timed.select(located).partition_by("symbol", as_dict=True).items()
        if (gap := _calendar_gaps(symbol[0], bars, gap_tolerance, calendar)) is not None
    ]
    if gaps:
        first = min(gaps, key=lambda gap: (gap.file, gap.row))
        raise _fail(
            where({_FILE: first.file}),
            first.rule,
            f"{first.detail}; market.gap_tolerance_bars = {gap_tolerance:g} allows steps of up to {gap_tolerance:g} "
            f"{first.unit}; {max(g.needed for g in gaps):g} would accept every gap in this "
            f"{'directory' if files is not None else 'file'}, or fix the data"
            f"{first.hint}",
            first.row,
            sum(g.count for g in gaps) - 1,
        )


@dataclass(frozen=True)
class _Gap:
    rule: str
    file: int
    row: int
    detail: str
    unit: str
    needed: float
    count: int
    hint: str


def _calendar_gaps(symbol: str, bars: pl.DataFrame, tolerance: float, calendar: MarketCalendar) -> _Gap | None:
    """The first step of ``symbol`` longer than ``tolerance`` bars of the calendar, if any.

    Intraday bars are stepped in open time, daily and longer bars in sessions; either way
    the unit is the symbol's typical step (its median), so any bar frequency works.
    """
    stamps = bars.get_column("timestamp").dt.epoch("us").to_numpy().astype(np.int64)
    raw_bar_us = int(np.median(np.diff(stamps)))
    sessions = calendar.sessions(start_us=int(stamps[0]), end_us=int(stamps[-1]))
    intraday = raw_bar_us < SECONDS_PER_DAY * _MICROSECONDS
    position = sessions.open_time_us(stamps) if intraday else sessions.session_index(stamps)
    steps = np.diff(position)
    unit = max(float(np.median(steps)), 1.0)
    over = np.flatnonzero(steps > tolerance * unit)
    if over.size == 0:
        return None
    i = int(over[0])
    missing = int(round(steps[i] / unit)) - 1
    before, after = (_EPOCH + dt.timedelta(microseconds=int(stamps[j])) for j in (i, i + 1))
    if intraday:
        rule, what, unit_name = "missing_bars", f"{missing} bar(s) missing while calendar {calendar.code!r} is open", (
            f"bar intervals ({unit / _MICROSECONDS:g} s) of open time"
        )
    else:
        first_missing = sessions.session_date(int(position[i]) + 1).isoformat()
        rule, what, unit_name = "missing_sessions", (
            f"{missing} session(s) of calendar {calendar.code!r} missing (the first on {first_missing})"
        ), "sessions"
    weekend = (after - before).total_seconds() >= 2 * SECONDS_PER_DAY and any(
        (before + dt.timedelta(days=d)).weekday() == 5 for d in range(int((after - before).days) + 1)
    )
    hint = (
        "; the bars stop over a weekend: if this market closes on weekends, set market.calendar to '24/5' (FX) "
        "or an exchange code such as 'XNYS'"
        if weekend and not calendar.closes_on_weekends
        else ""
    )
    return _Gap(
        rule=rule,
        file=int(bars.get_column(_FILE)[i + 1]) if _FILE in bars.columns else 0,
        row=int(bars.get_column(_ROW)[i + 1]),
        detail=f"symbol {symbol!r}: {what} between {before.isoformat()} and {after.isoformat()}",
        unit=unit_name,
        needed=float(np.ceil(steps.max() / unit)),
        count=int(over.size),
        hint=hint,
    )


def load_market_file(
    *,
    path: str | Path,
    gap_tolerance: float | None = DEFAULT_GAP_TOLERANCE_BARS,
    calendar: str = DEFAULT_CALENDAR,
) -> pl.DataFrame:
    """Load and validate an OHLCV file (CSV or Parquet, chosen by suffix), or a directory of them.

    Column names are matched case-insensitively. Timestamps are datetimes or ISO-8601
    strings in one format; naive ones are taken as UTC. Without a ``symbol`` column the
    file holds one symbol named after the file stem (a directory's files: after the
    directory). A directory's files (e.g. one per month) are validated one by one, then as
    one series: a bar in two files is a ``duplicate_timestamp`` naming the second file. Gaps are judged against ``calendar``
    (:mod:`simulations.calendars`): weekends, holidays and early closes are no gap; a step
    between consecutive bars is measured in the symbol's typical step of open time (intraday
    bars) or in sessions (daily bars), so any bar frequency works.

    Parameters
    ----------
    path
        ``.csv``, ``.parquet`` or ``.pq`` file, or a directory of such files (not recursive).
    gap_tolerance
        Largest allowed step between a symbol's consecutive bars, in bar intervals of the
        calendar's open time (sessions for daily bars), >= 1; ``None`` disables the check.
    calendar
        ``24/7``, ``24/5`` or an exchange code (see :func:`simulations.calendars.market_calendar`).

    Returns
    -------
    polars.DataFrame
        Columns :data:`MARKET_COLUMNS`, sorted by symbol then timestamp.

    Raises
    ------
    MarketDataError
        Naming the file, the 1-based data row (header excluded) where one exists, and the
        rule: ``empty_directory``, ``unsupported_format``, ``missing_file``, ``unreadable_file``,
        ``duplicate_columns``, ``missing_columns``, ``empty_file``, ``null_value``,
        ``unparsable_timestamp``, ``unparsable_number``, ``non_finite_value``,
        ``non_positive_price``, ``negative_volume``, ``high_below_low``,
        ``high_below_open_close``, ``low_above_open_close``, ``duplicate_timestamp``,
        ``unsorted_timestamps``, ``too_few_bars``, ``missing_bars``, ``missing_sessions``; a gap
        names ``market.gap_tolerance_bars`` and the value that would accept it.
    ConfigurationError
        If ``gap_tolerance`` is not ``None`` and not a number >= 1, or ``calendar`` names no
        calendar.
    """
    _check_tolerance(gap_tolerance)
    market_cal = market_calendar(code=calendar)
    source = Path(path)
    files = market_files(source)
    if not source.is_dir():
        return _validated_bars(source, _read_raw(source), source.stem, gap_tolerance, market_cal)
    parts = []
    for index, file_path in enumerate(files):
        part = _validated_file(file_path, default_symbol=source.name)
        _check_order_and_gaps(file_path, part, None, market_cal)
        parts.append(part.select(*MARKET_COLUMNS, _ROW).with_columns(pl.lit(index, dtype=pl.Int32).alias(_FILE)))
    # Files in name order, each in time order: the series a symbol's bars make across them.
    frame = pl.concat(parts).sort(["symbol", "timestamp", _FILE], maintain_order=True)
    _check_order_and_gaps(source, frame, gap_tolerance, market_cal, files=files)
    return frame.select(MARKET_COLUMNS)


def validate_market_bars(
    *,
    raw: pl.DataFrame,
    source: str,
    default_symbol: str,
    gap_tolerance: float | None = DEFAULT_GAP_TOLERANCE_BARS,
    calendar: str = DEFAULT_CALENDAR,
) -> pl.DataFrame:
    """Validate bars read from a source other than a file (a database table) as a file's are.

    Parameters
    ----------
    raw
        The bars as read: columns as in a file (matched case-insensitively), one row per bar.
    source
        How messages name the source, e.g. ``"market table prices"``; rows are counted from 1
        in ``raw``'s order.
    default_symbol
        The symbol of every bar when ``raw`` has no ``symbol`` column.
    gap_tolerance, calendar
        As for `load_market_file`.

    Returns
    -------
    polars.DataFrame
        Columns :data:`MARKET_COLUMNS`, sorted by symbol then timestamp.

    Raises
    ------
    MarketDataError
        As `load_market_file`, naming ``source``.
    """
    _check_tolerance(gap_tolerance)
    return _validated_bars(source, raw, default_symbol, gap_tolerance, market_calendar(code=calendar))


def _validated_bars(
    source: Path | str, raw: pl.DataFrame, default_symbol: str, gap_tolerance: float | None, calendar: MarketCalendar
) -> pl.DataFrame:
    """One source's bars validated whole: values, then order and gaps; columns :data:`MARKET_COLUMNS`."""
    frame = _validated_frame(source, raw, default_symbol=default_symbol)
    _check_order_and_gaps(source, frame, gap_tolerance, calendar)
    return frame.select(MARKET_COLUMNS).sort(["symbol", "timestamp"])


def _check_tolerance(gap_tolerance: object) -> None:
    if gap_tolerance is not None and (
        isinstance(gap_tolerance, bool) or not isinstance(gap_tolerance, int | float) or not gap_tolerance >= 1
    ):
        raise ConfigurationError(
            f"market.gap_tolerance_bars must be null (no gap check) or a number >= 1 (bar intervals), "
            f"got {gap_tolerance!r}; e.g. {DEFAULT_GAP_TOLERANCE_BARS:g}"
        )


def _validated_file(file_path: Path, *, default_symbol: str) -> pl.DataFrame:
    """One file's bars, parsed and value-checked, with their data rows (column ``_ROW``)."""
    return _validated_frame(file_path, _read_raw(file_path), default_symbol=default_symbol)


def _validated_frame(file_path: Path | str, raw: pl.DataFrame, *, default_symbol: str) -> pl.DataFrame:
    """Bars parsed and value-checked, with their data rows (column ``_ROW``)."""
    frame = _normalised_columns(file_path, raw)
    if "symbol" not in frame.columns:
        frame = frame.with_columns(pl.lit(default_symbol, dtype=pl.String).alias("symbol"))
    else:
        frame = frame.with_columns(pl.col("symbol").cast(pl.String).str.strip_chars())
    _check_nulls(file_path, frame, ["timestamp", "symbol", *VALUE_COLUMNS])
    frame = _parsed_values(file_path, _parsed_timestamps(file_path, frame))
    _check_values(file_path, frame)
    return frame


# --------------------------------------------------------------------------- fixed windows


@dataclass(frozen=True, eq=False)
class MarketWindow:
    """One fixed window of one symbol's bars; arrays are read-only.

    Attributes
    ----------
    name
        ``"train"``, ``"backtest"`` or ``"forward"``.
    symbol
        The symbol.
    timestamps
        Bar timestamps, ``datetime64[us]`` in UTC.
    open, high, low, close
        Prices (price units), float64.
    volume
        Volume (units), float64.
    sha256
        Digest of the window's content (see :func:`window_hash`).
    bar_seconds
        The symbol's bar interval (median timestamp step), seconds.
    periods_per_year
        Bars per calendar year for annualising: bars observed per unit of time over the
        train and backtest windows (so appended bars never change it),
        ``365.25 * 86400 / bar_seconds`` for gap-free data, about 252 for daily exchange data.
    """

    name: str
    symbol: str
    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    sha256: str
    bar_seconds: float
    periods_per_year: float

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return int(self.close.size)

    @property
    def start(self) -> dt.datetime:
        """Timestamp of the first bar (UTC)."""
        return _to_datetime(self.timestamps[0])

    @property
    def end(self) -> dt.datetime:
        """Timestamp of the last bar (UTC)."""
        return _to_datetime(self.timestamps[-1])

    def head_sha256(self, n: int) -> str:
        """Digest of the window's first ``n`` bars (:func:`window_hash`); ``head_sha256(n_bars) == sha256``.

        A paper session is verified against the bars it has traded, which stay the same while
        the open-ended forward window grows.

        Raises
        ------
        MarketDataError
            If ``n`` is not an integer in ``[0, n_bars]``.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= n <= self.n_bars:
            raise MarketDataError(f"the {self.name} window holds {self.n_bars} bars; cannot hash its first {n!r}")
        # Remembered per window (its arrays are read-only): the sessions a paper sync advances on
        # one build share it and mostly the same prefixes. In __dict__, so windows pickled before
        # this memo existed load with it too.
        heads = self.__dict__.setdefault("_head_sha256", {})
        if n not in heads:
            heads[n] = window_hash(
                timestamps_us=self.timestamps[:n].astype(np.int64),
                values={column: getattr(self, column)[:n] for column in VALUE_COLUMNS},
            )
        return heads[n]

    def to_frame(self) -> pl.DataFrame:
        """The window as a market frame (columns :data:`MARKET_COLUMNS`)."""
        return pl.DataFrame(
            {
                "timestamp": pl.Series(self.timestamps.astype(np.int64), dtype=pl.Int64).cast(_TIMESTAMP_DTYPE),
                "symbol": pl.Series([self.symbol] * self.n_bars, dtype=pl.String),
                **{column: getattr(self, column) for column in VALUE_COLUMNS},
            }
        )


@dataclass(frozen=True, eq=False)
class MarketWindows:
    """The three contiguous, non-overlapping windows, in chronological order."""

    train: MarketWindow
    backtest: MarketWindow
    forward: MarketWindow

    @property
    def hashes(self) -> dict[str, str]:
        """Window name -> SHA-256, for every trial's metadata."""
        return {window.name: window.sha256 for window in (self.train, self.backtest, self.forward)}

    def history_before(self, *, name: str) -> np.ndarray:
        """Close prices of every bar before window ``name`` (indicator warm-up), price units.

        Raises
        ------
        MarketDataError
            If ``name`` is not one of :data:`WINDOW_NAMES`.
        """
        if name not in WINDOW_NAMES:
            raise MarketDataError(f"unknown window {name!r}; windows are {list(WINDOW_NAMES)}")
        before = (self.train, self.backtest, self.forward)[: WINDOW_NAMES.index(name)]
        return np.concatenate([np.empty(0), *(window.close for window in before)])

    def forward_from(self, *, origin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a paper session that starts after forward bar ``origin - 1`` trades on.

        A forward session starts at the newest bar available when its trial passed gate 2 and
        trades only the bars after it; ``origin`` is the number of forward bars that existed
        then (0 for a holdout replay of the whole forward window).

        Returns
        -------
        history_close, close, timestamps
            Closes of every bar before the session's first (indicator warm-up), and the closes
            (price units) and timestamps (``datetime64[us]`` UTC) of the bars from ``origin`` on.

        Raises
        ------
        MarketDataError
            If ``origin`` is not an integer in ``[0, forward.n_bars]``: the forward window is
            shorter than when the session started, so the market data is older than it.
        """
        forward = self.forward
        if isinstance(origin, bool) or not isinstance(origin, int | np.integer) or not 0 <= origin <= forward.n_bars:
            raise MarketDataError(
                f"a paper session starting after forward bar {origin!r} cannot trade a forward window of "
                f"{forward.n_bars} bars: this market data is older than the session; rebuild market_data"
            )
        history = np.concatenate([self.history_before(name="forward"), forward.close[:origin]])
        return history, forward.close[origin:], forward.timestamps[origin:]


def _to_datetime(value: np.datetime64) -> dt.datetime:
    micros = int(value.astype("datetime64[us]").astype(np.int64))
    return _EPOCH + dt.timedelta(microseconds=micros)


def window_hash(*, timestamps_us: np.ndarray, values: dict[str, np.ndarray]) -> str:
    """SHA-256 of a window's raw bytes, stable across runs and platforms.

    The digest covers the timestamps as little-endian int64 microseconds since the epoch,
    then ``open``, ``high``, ``low``, ``close``, ``volume`` as little-endian float64, in
    that order.

    Parameters
    ----------
    timestamps_us
        Bar timestamps, integer microseconds since 1970-01-01 UTC.
    values
        Arrays keyed by ``open``, ``high``, ``low``, ``close``, ``volume``.

    Returns
    -------
    str
        Hexadecimal digest.
    """
    digest = hashlib.sha256(np.ascontiguousarray(timestamps_us, dtype="<i8").tobytes())
    for column in VALUE_COLUMNS:
        digest.update(np.ascontiguousarray(values[column], dtype="<f8").tobytes())
    return digest.hexdigest()


def _symbol_frame(frame: pl.DataFrame, symbol: str | None) -> tuple[str, pl.DataFrame]:
    if not isinstance(frame, pl.DataFrame):
        raise MarketDataError(f"frame must be a polars DataFrame, got {type(frame).__name__}")
    missing = [column for column in MARKET_COLUMNS if column not in frame.columns]
    if missing:
        raise MarketDataError(f"market frame lacks columns {missing}; load it with load_market_file()")
    if not isinstance(frame.schema["timestamp"], pl.Datetime):
        raise MarketDataError(f"market frame's timestamp column has type {frame.schema['timestamp']}, not Datetime")
    symbols = frame.get_column("symbol").unique().sort().to_list()
    if symbol is None:
        if len(symbols) != 1:
            raise MarketDataError(
                f"market frame holds symbols {symbols}; pass symbol= to choose one: set market.symbol to one of them, "
                f"e.g. market.symbol: {symbols[0]}"
            )
        symbol = symbols[0]
    elif symbol not in symbols:
        raise MarketDataError(
            f"symbol {symbol!r} is not in the market frame (symbols: {symbols}); set market.symbol to one of them"
        )
    return symbol, frame.filter(pl.col("symbol") == symbol)


def _symbol_stamps(frame: pl.DataFrame, symbol: str | None) -> tuple[str, np.ndarray, dict[str, np.ndarray], int]:
    """A symbol's timestamps (us), values and bar interval (median step, us), validated."""
    symbol, bars = _symbol_frame(frame, symbol)
    stamps = bars.get_column("timestamp").dt.convert_time_zone("UTC").dt.epoch("us").to_numpy().astype(np.int64)
    values = {column: bars.get_column(column).cast(pl.Float64).to_numpy().astype(np.float64) for column in VALUE_COLUMNS}
    if stamps.size < 2:
        raise MarketDataError(f"symbol {symbol!r} has {stamps.size} bar(s); the bar interval needs at least 2")
    steps = np.diff(stamps)
    if (steps <= 0).any():
        bad = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise MarketDataError(f"symbol {symbol!r}: timestamps are not strictly increasing at bar {bad}")
    return symbol, stamps, values, int(np.sort(steps)[steps.size // 2])


def pin_window_dates(
    *,
    frame: pl.DataFrame,
    train_days: float = DEFAULT_TRAIN_DAYS,
    backtest_days: float = DEFAULT_BACKTEST_DAYS,
    forward_days: float = DEFAULT_FORWARD_DAYS,
    symbol: str | None = None,
) -> WindowDates:
    """Pin windows given in days to dates, laid back from the end of the data as it is now.

    Forward covers the last ``forward_days``, backtest the ``backtest_days`` before it, train
    the ``train_days`` before that, in calendar time; boundaries fall on multiples of the
    bar interval after the last bar, so hourly data gives exactly ``days * 24`` bars per
    window. Record the result: pinning again after bars are appended gives other dates.

    Parameters
    ----------
    frame
        A market frame (:data:`MARKET_COLUMNS`), as returned by this module's loaders.
    train_days, backtest_days, forward_days
        Window lengths in calendar days (> 0).
    symbol
        Symbol to use; optional when the frame holds one symbol.

    Returns
    -------
    WindowDates

    Raises
    ------
    MarketDataError
        If a length is not a positive number, the frame is malformed, holds several symbols
        and none is chosen, or does not cover the requested days (the message gives both spans).
    """
    lengths = {"train": train_days, "backtest": backtest_days, "forward": forward_days}
    for name, days in lengths.items():
        if isinstance(days, bool) or not isinstance(days, int | float) or not (np.isfinite(days) and days > 0):
            raise MarketDataError(f"{name}_days must be a positive number of days, got {days!r}")
    symbol, stamps, _, bar_us = _symbol_stamps(frame, symbol)
    end_us = int(stamps[-1]) + bar_us
    day_us = SECONDS_PER_DAY * _MICROSECONDS
    spans = [round(lengths[name] * day_us) for name in WINDOW_NAMES]
    starts = [end_us - sum(spans), end_us - spans[1] - spans[2], end_us - spans[2]]
    if starts[0] < stamps[0]:
        covered = (end_us - int(stamps[0])) / day_us
        # Floored to hundredths, so that the values suggested fit the data.
        fitting = np.floor((end_us - int(stamps[0]) - spans[1] - spans[2]) / day_us * 100) / 100
        scaled = [np.floor(span / sum(spans) * covered * 100) / 100 for span in spans]
        fix = (
            f"set market.windows.train_days to {fitting:g} or less"
            if fitting > 0
            else f"set market.windows.train_days, backtest_days and forward_days to {scaled[0]:g}, {scaled[1]:g} and "
            f"{scaled[2]:g} or less (the data's days in the same proportions)"
        )
        raise MarketDataError(
            f"symbol {symbol!r}: data covers {covered:.2f} days but the windows need "
            f"{sum(spans) / day_us:.2f} (train {train_days}, backtest {backtest_days}, forward {forward_days}); "
            f"{fix}, or give the windows as dates"
        )
    return WindowDates(*(_EPOCH + dt.timedelta(microseconds=start) for start in starts))


def cut_windows(
    *,
    frame: pl.DataFrame,
    dates: WindowDates,
    symbol: str | None = None,
    min_bars: int = MIN_BARS_PER_WINDOW,
) -> MarketWindows:
    """Cut one symbol's bars into the train, backtest and forward windows at fixed dates.

    Bars before ``dates.train_start`` are unused; every bar from ``dates.forward_start`` on
    is in the forward window, which grows as bars are appended.

    Parameters
    ----------
    frame
        A market frame (:data:`MARKET_COLUMNS`), as returned by this module's loaders.
    dates
        Where the windows start.
    symbol
        Symbol to use; optional when the frame holds one symbol.
    min_bars
        Fewest bars a window may hold (>= 2).

    Returns
    -------
    MarketWindows
        The three windows with content hashes, bar interval and periods per year.

    Raises
    ------
    MarketDataError
        If the frame is malformed, holds several symbols and none is chosen, is not strictly
        increasing in time, starts after ``dates.train_start``, or a window holds fewer than
        ``min_bars`` bars (the message names the ``market.windows`` key and a date that works).
    """
    symbol, stamps, values, bar_us = _symbol_stamps(frame, symbol)
    starts = [_to_us(getattr(dates, f"{name}_start")) for name in WINDOW_NAMES]
    first = _EPOCH + dt.timedelta(microseconds=int(stamps[0]))
    if starts[0] < stamps[0]:
        raise MarketDataError(
            f"symbol {symbol!r}: the data starts at {first.isoformat()}, after market.windows.train_start "
            f"{dates.train_start.isoformat()}; set train_start to {first.isoformat()} or later"
        )
    edges = [*np.searchsorted(stamps, starts, side="left").tolist(), stamps.size]
    ends_us = [*starts[1:], int(stamps[-1]) + bar_us]
    parts = [slice(int(edges[index]), int(edges[index + 1])) for index in range(len(WINDOW_NAMES))]
    for index, (name, part) in enumerate(zip(WINDOW_NAMES, parts, strict=True)):
        if part.stop - part.start < min_bars:
            raise MarketDataError(
                _too_few_bars(symbol, name, part.stop - part.start, min_bars, stamps, part.stop, ends_us[index])
            )
    # Measured on the train and backtest bars, which appended bars never change (nor bars
    # prepended before train_start): the two are annualised the same way however the data grows.
    known = stamps[parts[0].start : parts[2].start]
    periods_per_year = _YEAR_MICROSECONDS * known.size / (int(known[-1] - known[0]) + bar_us)
    windows = []
    for name, part in zip(WINDOW_NAMES, parts, strict=True):
        window_values = {column: _frozen(values[column][part]) for column in VALUE_COLUMNS}
        windows.append(
            MarketWindow(
                name=name,
                symbol=symbol,
                timestamps=_frozen(stamps[part].astype("datetime64[us]")),
                sha256=window_hash(timestamps_us=stamps[part], values=window_values),
                bar_seconds=bar_us / _MICROSECONDS,
                periods_per_year=periods_per_year,
                **window_values,
            )
        )
    return MarketWindows(*windows)


def _too_few_bars(
    symbol: str, name: str, n: int, min_bars: int, stamps: np.ndarray, stop: int, end_us: int
) -> str:
    """Why window ``name`` (ending before bar ``stop``, at ``end_us``) is too short, and a start or length that would do."""
    message = f"symbol {symbol!r}: the {name} window holds {n} bar(s); it needs at least {min_bars}"
    if stop < min_bars:
        return f"{message}: the data before its end holds only {stop} bar(s); move the later windows' starts later"
    earlier_us = int(stamps[stop - min_bars])
    earlier = _EPOCH + dt.timedelta(microseconds=earlier_us)
    # Rounded up to hundredths, so that the length suggested holds the bars.
    days = np.ceil((end_us - earlier_us) / (SECONDS_PER_DAY * _MICROSECONDS) * 100) / 100
    return (
        f"{message}: set market.windows.{name}_start to {earlier.isoformat()} or earlier "
        f"(or market.windows.{name}_days to {days:g} or more){', or append data' if name == 'forward' else ''}"
    )


def _to_us(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def split_windows(
    *,
    frame: pl.DataFrame,
    train_days: float = DEFAULT_TRAIN_DAYS,
    backtest_days: float = DEFAULT_BACKTEST_DAYS,
    forward_days: float = DEFAULT_FORWARD_DAYS,
    symbol: str | None = None,
    min_bars: int = MIN_BARS_PER_WINDOW,
) -> MarketWindows:
    """Windows given in days, pinned at the end of the data now: :func:`pin_window_dates` then :func:`cut_windows`.

    For simulations whose data never grows (the calibration, the demo trainer, tests); the
    pipeline pins an instrument's dates once and cuts every later build at those dates.

    Raises
    ------
    MarketDataError
        As :func:`pin_window_dates` and :func:`cut_windows`.
    """
    dates = pin_window_dates(
        frame=frame, train_days=train_days, backtest_days=backtest_days, forward_days=forward_days, symbol=symbol
    )
    return cut_windows(frame=frame, dates=dates, symbol=symbol, min_bars=min_bars)


def check_declared_train_end(*, user_attrs: dict[str, object], windows: MarketWindows) -> None:
    """Stop a trial whose declared tuning data reaches the backtest window.

    A study may declare the last bar it was tuned on in the trial's user attribute
    :data:`~simulations.constants.TRAIN_WINDOW_END_ATTR` (an ISO-8601 timestamp; naive means
    UTC). A trial that declares nothing is taken at its word that it used the train window only.

    Parameters
    ----------
    user_attrs
        The trial's user attributes.
    windows
        The windows the trial is evaluated on.

    Raises
    ------
    TrialDataError
        If the attribute is not an ISO-8601 timestamp.
    TrainWindowOverlapError
        If the declared end is at or after the backtest window's first bar.
    """
    declared = user_attrs.get(TRAIN_WINDOW_END_ATTR)
    if declared is None:
        return
    try:
        end = dt.datetime.fromisoformat(declared) if isinstance(declared, str) else None
    except ValueError:
        end = None
    if end is None:
        raise TrialDataError(
            f"user_attr {TRAIN_WINDOW_END_ATTR!r} = {declared!r} is not an ISO-8601 timestamp, "
            f"e.g. {windows.train.end.isoformat()}"
        )
    end = end if end.utcoffset() is not None else end.replace(tzinfo=dt.UTC)
    if end >= windows.backtest.start:
        raise TrainWindowOverlapError(
            f"user_attr {TRAIN_WINDOW_END_ATTR!r} = {declared!r}: the trial was tuned on data up to "
            f"{end.isoformat()}, inside the backtest window ({windows.backtest.start.isoformat()} .. "
            f"{windows.backtest.end.isoformat()}), so the backtest is not out of sample; re-tune on bars up to "
            f"{windows.train.end.isoformat()} (`gauntlet windows` prints the windows)"
        )


def _frozen(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy
