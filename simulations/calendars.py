"""Trading calendars: when a market is open, so that gaps in its bars are judged against its sessions.

A calendar is a sequence of sessions, each a half-open interval of open time ``[open, close)``
in UTC microseconds (an exchange's lunch break splits a session in two). Three kinds:

* ``24/7`` (crypto): every UTC day is a session, open around the clock;
* ``24/5`` (spot FX): a session per weekday, from 17:00 New York the evening before to 17:00
  New York (the market's conventional roll), closed on weekends, 25 December and 1 January;
* an exchange code (``XNYS``, ``XLON``, ``XTKS``, ...): the exchange's sessions, holidays, early
  closes and breaks as the maintained ``exchange_calendars`` package publishes them.

Gaps are measured in open time (intraday bars) or in sessions (daily bars), so a weekend or a
holiday is no gap at all while a missing session, or missing bars inside one, is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulations.constants import (
    CALENDAR_24_5,
    CALENDAR_24_7,
    FX_CLOSED_DATES,
    FX_ROLL_HOUR,
    FX_ROLL_TIMEZONE,
    SECONDS_PER_DAY,
)
from simulations.calendar_codes import calendar_code
from simulations.errors import MarketDataError

# pandas and exchange_calendars cost about 0.6 s to import, and every command and the code
# location import this module: they are imported where a 24/5 or exchange calendar needs them.
if TYPE_CHECKING:
    import pandas as pd

_MICROSECONDS = 1_000_000
_DAY_US = SECONDS_PER_DAY * _MICROSECONDS
#: Days either side of the data asked of a calendar, so the first and last bars have a session.
_MARGIN_DAYS = 7


@dataclass(frozen=True)
class Sessions:
    """A calendar's sessions over a span, as sorted, non-overlapping intervals of open time.

    Attributes
    ----------
    opens, closes
        Start and end (exclusive) of each interval, int64 microseconds since 1970-01-01 UTC.
    session
        Index of the session each interval belongs to (a session with a break has two).
    """

    opens: np.ndarray
    closes: np.ndarray
    session: np.ndarray

    def open_time_us(self, timestamps_us: np.ndarray) -> np.ndarray:
        """Open time elapsed from the first interval to each timestamp, microseconds.

        A timestamp in closed time counts the open time up to it, so the step between two bars
        is the open time between them: a weekend or a holiday adds nothing.
        """
        lengths = self.closes - self.opens
        before = np.concatenate(([0], np.cumsum(lengths)))
        index = np.searchsorted(self.opens, timestamps_us, side="right") - 1
        inside = np.clip(timestamps_us - self.opens[np.maximum(index, 0)], 0, lengths[np.maximum(index, 0)])
        return np.where(index >= 0, before[np.maximum(index, 0)] + inside, 0)

    def session_index(self, timestamps_us: np.ndarray) -> np.ndarray:
        """The session each timestamp belongs to: the one it falls in, else the next one.

        A daily bar stamped at midnight UTC, before its session opens, is that session's bar.
        """
        interval = np.searchsorted(self.closes, timestamps_us, side="right")
        return self.session[np.minimum(interval, self.session.size - 1)] + (interval >= self.session.size)

    def session_date(self, index: int) -> dt.date:
        """The date of session ``index``: the UTC date its trading ends on."""
        last = int(self.closes[np.searchsorted(self.session, index, side="right") - 1]) - 1
        return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=last)).date()


@dataclass(frozen=True)
class MarketCalendar:
    """A trading calendar by code: ``24/7``, ``24/5`` or an exchange code (``XNYS``, ...).

    Build one with :func:`market_calendar`, which validates the code.
    """

    code: str

    @property
    def closes_on_weekends(self) -> bool:
        """Whether the market is shut on Saturdays and Sundays."""
        return self.code != CALENDAR_24_7

    def sessions(self, *, start_us: int, end_us: int) -> Sessions:
        """The sessions that cover ``[start_us, end_us]`` (UTC microseconds), with a margin.

        Raises
        ------
        MarketDataError
            If an exchange calendar does not reach back or forward to the data's dates.
        """
        first_day, last_day = start_us // _DAY_US - _MARGIN_DAYS, end_us // _DAY_US + _MARGIN_DAYS
        if self.code == CALENDAR_24_7:
            days = np.arange(first_day, last_day + 1, dtype=np.int64)
            return Sessions(opens=days * _DAY_US, closes=(days + 1) * _DAY_US, session=np.arange(days.size))
        import pandas as pd

        first, last = pd.Timestamp(first_day, unit="D"), pd.Timestamp(last_day, unit="D")
        if self.code == CALENDAR_24_5:
            return _fx_sessions(first, last)
        return _exchange_sessions(self.code, first, last)


def _fx_sessions(first: pd.Timestamp, last: pd.Timestamp) -> Sessions:
    import pandas as pd

    days = pd.date_range(first, last, freq="D")
    closed = np.isin(days.month * 100 + days.day, [month * 100 + day for month, day in FX_CLOSED_DATES])
    trading = days[(days.day_of_week < 5) & ~closed]
    roll = pd.Timedelta(hours=FX_ROLL_HOUR)
    closes = (trading + roll).tz_localize(FX_ROLL_TIMEZONE).tz_convert("UTC").as_unit("us").asi8
    opens = (trading - pd.Timedelta(days=1) + roll).tz_localize(FX_ROLL_TIMEZONE).tz_convert("UTC").as_unit("us").asi8
    return Sessions(opens=opens.astype(np.int64), closes=closes.astype(np.int64), session=np.arange(closes.size))


def _exchange_sessions(code: str, first: pd.Timestamp, last: pd.Timestamp) -> Sessions:
    import exchange_calendars

    try:
        calendar = exchange_calendars.get_calendar(code, start=first.date().isoformat(), end=last.date().isoformat())
    except (exchange_calendars.errors.CalendarError, ValueError) as exc:
        raise MarketDataError(
            f"calendar {code!r} cannot cover the data's dates {first.date()} .. {last.date()}: {exc}; "
            "trim the data to the calendar's range or set market.calendar to '24/5' or '24/7'"
        ) from exc
    schedule = calendar.schedule
    opens, closes = _utc_us(schedule["open"]), _utc_us(schedule["close"])
    session = np.arange(opens.size)
    breaks = schedule["break_start"].notna().to_numpy()
    if breaks.any():
        # A session with a lunch break is two intervals of open time.
        break_start, break_end = _utc_us(schedule["break_start"]), _utc_us(schedule["break_end"])
        opens = np.concatenate([opens, break_end[breaks]])
        closes = np.concatenate([np.where(breaks, break_start, closes), closes[breaks]])
        session = np.concatenate([session, session[breaks]])
        order = np.argsort(opens, kind="stable")
        opens, closes, session = opens[order], closes[order], session[order]
    return Sessions(opens=opens, closes=closes, session=session)


def _utc_us(column: pd.Series) -> np.ndarray:
    """A schedule column of UTC times as int64 microseconds (a missing break is the int64 minimum)."""
    return column.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)


def market_calendar(*, code: str) -> MarketCalendar:
    """The calendar named ``code``, validated (`simulations.calendar_codes.calendar_code`).

    Returns
    -------
    MarketCalendar

    Raises
    ------
    ConfigurationError
        If the code names no calendar (the message lists how to find the valid ones).
    """
    return MarketCalendar(code=calendar_code(code=code))
