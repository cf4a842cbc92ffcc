"""Where an instrument's train, backtest and forward windows start: plain dates, no numerics, so
the configuration schema can hold them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from simulations.errors import ConfigurationError


@dataclass(frozen=True)
class WindowDates:
    """Where an instrument's windows start, as fixed instants (UTC).

    The windows are contiguous and half-open: train ``[train_start, backtest_start)``,
    backtest ``[backtest_start, forward_start)``, forward ``[forward_start, ...)``, open-ended:
    bars appended to the data join the forward window and never move the other two.
    """

    train_start: dt.datetime
    backtest_start: dt.datetime
    forward_start: dt.datetime

    def __post_init__(self) -> None:
        for name in ("train_start", "backtest_start", "forward_start"):
            value = getattr(self, name)
            if not isinstance(value, dt.datetime) or value.utcoffset() is None:
                raise ConfigurationError(
                    f"market.windows.{name} must be a timezone-aware timestamp, e.g. 2024-01-01T00:00:00+00:00; "
                    f"got {value!r}"
                )
        if not self.train_start < self.backtest_start < self.forward_start:
            raise ConfigurationError(
                f"market.windows must start in order train < backtest < forward; got train_start "
                f"{self.train_start.isoformat()}, backtest_start {self.backtest_start.isoformat()}, forward_start "
                f"{self.forward_start.isoformat()}"
            )

    def as_dict(self) -> dict[str, str]:
        """ISO-8601 strings keyed by field name (how they are recorded in the instance)."""
        return {name: getattr(self, name).astimezone(dt.UTC).isoformat() for name in _DATE_FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, str]) -> WindowDates:
        """The dates :meth:`as_dict` wrote.

        Raises
        ------
        ConfigurationError
            If a field is missing or not an ISO-8601 timestamp with a timezone.
        """
        try:
            return cls(**{name: dt.datetime.fromisoformat(values[name]) for name in _DATE_FIELDS})
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"window dates {values!r} are not {list(_DATE_FIELDS)} as ISO timestamps") from exc


_DATE_FIELDS = ("train_start", "backtest_start", "forward_start")
