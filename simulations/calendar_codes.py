"""Which calendar codes name a market calendar: no numpy, so the configuration validates them
without loading the calendars themselves (`simulations.calendars`)."""

from __future__ import annotations

from simulations.constants import CALENDAR_24_5, CALENDAR_24_7
from simulations.errors import ConfigurationError


def calendar_code(*, code: str, look_up_exchanges: bool = True) -> str:
    """``code`` if it names a calendar, as the calendar is named.

    Parameters
    ----------
    code
        ``24/7`` (every day, around the clock: crypto), ``24/5`` (spot FX: weekdays, rolling at
        17:00 New York, closed 25 December and 1 January) or an exchange's ISO 10383 MIC as
        ``exchange_calendars`` names it (``XNYS``, ``XNAS``, ``XLON``, ``XTKS``, ...).
    look_up_exchanges
        False: any other code is taken as an exchange's and returned as written, unchecked
        (looking it up imports pandas and exchange_calendars, most of a second).

    Returns
    -------
    str
        The code as the calendar is named (an exchange code in upper case).

    Raises
    ------
    ConfigurationError
        If the code names no calendar (the message lists how to find the valid ones).
    """
    if not isinstance(code, str) or not code.strip():
        raise ConfigurationError(f"market.calendar must be a calendar code such as '24/7', got {code!r}")
    code = code.strip()
    if code in (CALENDAR_24_7, CALENDAR_24_5) or not look_up_exchanges:
        return code
    import exchange_calendars

    names = exchange_calendars.get_calendar_names()
    for candidate in (code, code.upper()):
        if candidate in names:
            return candidate
    raise ConfigurationError(
        f"market.calendar = {code!r} is not a calendar: use '24/7' (crypto), '24/5' (FX) or an exchange code "
        "such as 'XNYS', 'XNAS', 'XLON' (python -c 'import exchange_calendars; "
        "print(exchange_calendars.get_calendar_names())' lists them)"
    )
