"""Paper sessions in Gauntlet's database: the tables, the session summary and its reads.

No Dagster and no numerics: `LocalPaperBrokerResource` (`resources.paper_broker`) trades the
sessions and runs this store inside Dagster; `PaperSessionsDatabase` opens it outside Dagster for
the commands that only read (``gauntlet status``). Tables are created, and those of an earlier
version brought up to date, on first use.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
import sqlalchemy.exc
from pydantic import BaseModel, ConfigDict, Field, computed_field

from resources.database import add_column, engine_for, missing_columns, translate_db_error
from resources.process_cache import SCHEMAS_READY
from simulations.constants import DEFAULT_INSTRUMENT, SECONDS_PER_DAY
from simulations.errors import ConfigurationError, PaperTradingError, PipelineError
from simulations.vocabulary import ClockMode, PaperMode

if TYPE_CHECKING:
    import numpy as np

SessionStatus = Literal["running", "stopped"]

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TRIAL_KEY_LENGTH = 255

PAPER_METADATA = sa.MetaData()

#: What the sessions of a table from before a column existed get in that column: they traded the
#: one market there was (the default instrument), replaying the held-out forward window from its
#: start (their bars and market days are filled in from the stored bars).
_EARLIER_SESSIONS = {"instrument": DEFAULT_INSTRUMENT, "mode": "holdout", "origin": 0, "market_days": 0}

paper_sessions = sa.Table(
    "paper_sessions",
    PAPER_METADATA,
    sa.Column("trial_key", sa.String(TRIAL_KEY_LENGTH), primary_key=True),
    sa.Column("strategy_name", sa.String(255), nullable=False),
    sa.Column("instrument", sa.String(32), nullable=False, server_default=DEFAULT_INSTRUMENT),
    sa.Column("params_json", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("origin", sa.Integer, nullable=False),
    sa.Column("origin_bar_us", sa.BigInteger, nullable=True),
    sa.Column("first_bar_us", sa.BigInteger, nullable=True),
    sa.Column("last_bar_us", sa.BigInteger, nullable=True),
    sa.Column("market_days", sa.Integer, nullable=False),
    sa.Column("clock", sa.String(16), nullable=False),
    sa.Column("speed", sa.Double, nullable=False),
    sa.Column("fee_bps", sa.Double, nullable=False),
    sa.Column("slippage_bps", sa.Double, nullable=False),
    sa.Column("bar_seconds", sa.Double, nullable=False),
    sa.Column("n_forward_bars", sa.Integer, nullable=False),
    sa.Column("forward_sha256", sa.String(64), nullable=False),
    sa.Column("started_at_us", sa.BigInteger, nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    sa.Column("bars_processed", sa.Integer, nullable=False),
    sa.Column("held", sa.Double, nullable=False),
    sa.Column("pending_target", sa.Double, nullable=False),
    sa.Column("equity", sa.Double, nullable=False),
    sa.Column("last_close", sa.Double, nullable=True),
    sa.Column("n_fills", sa.Integer, nullable=False),
    sa.CheckConstraint("status in ('running', 'stopped')", name="paper_sessions_status"),
    sa.CheckConstraint("clock in ('replay', 'wall')", name="paper_sessions_clock"),
    sa.CheckConstraint("mode in ('forward', 'holdout')", name="paper_sessions_mode"),
    sa.CheckConstraint("origin >= 0", name="paper_sessions_origin"),
    sa.CheckConstraint("bars_processed >= 0 and bars_processed <= n_forward_bars", name="paper_sessions_bars"),
)

paper_fills = sa.Table(
    "paper_fills",
    PAPER_METADATA,
    sa.Column("trial_key", sa.String(TRIAL_KEY_LENGTH), sa.ForeignKey("paper_sessions.trial_key"), primary_key=True),
    sa.Column("bar_index", sa.Integer, primary_key=True),
    sa.Column("timestamp_us", sa.BigInteger, nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("quantity", sa.Double, nullable=False),
    sa.Column("position", sa.Double, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("cost", sa.Double, nullable=False),
    sa.CheckConstraint("side in ('buy', 'sell')", name="paper_fills_side"),
)

paper_bars = sa.Table(
    "paper_bars",
    PAPER_METADATA,
    sa.Column("trial_key", sa.String(TRIAL_KEY_LENGTH), sa.ForeignKey("paper_sessions.trial_key"), primary_key=True),
    sa.Column("bar_index", sa.Integer, primary_key=True),
    sa.Column("timestamp_us", sa.BigInteger, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("held", sa.Double, nullable=False),
    sa.Column("turnover", sa.Double, nullable=False),
    sa.Column("gross_return", sa.Double, nullable=False),
    sa.Column("cost", sa.Double, nullable=False),
    sa.Column("net_return", sa.Double, nullable=False),
    sa.Column("equity", sa.Double, nullable=False),
)


class SessionInfo(BaseModel):
    """A paper session's summary; independent of any maturity threshold (the gate policy's).

    Attributes
    ----------
    trial_key
        The trial's partition key.
    instrument
        The instrument it trades (its study's; `resources.market_data.InstrumentsResource`).
    strategy_name, params
        What is traded (validated params, JSON values).
    status
        ``running`` (the forward window is open-ended: a session that has traded every bar
        there is waits for the next); ``stopped`` by `stop`.
    mode
        ``forward``: the session trades only bars after the newest one it was first handed;
        ``holdout``: it replays the forward window from its start (`simulations.vocabulary.PaperMode`).
    origin, origin_bar
        Forward bars before the session's first (0 for a holdout), and the newest of them when
        a forward session started (None for a holdout).
    first_bar, last_bar
        Timestamps of the first and last bar traded (None before the first).
    market_days
        UTC days on which the session has traded a bar after its first (the looks of the
        sequential test, `simulations.paper.PaperMetrics.market_days`).
    clock, speed
        How a holdout session's bars are released (fixed when it starts): ``replay`` releases
        the whole forward window at once; ``wall`` releases ``speed`` market seconds per
        wall-clock second since ``started_at``. A forward session trades bars as they arrive.
    started_at, updated_at
        Wall-clock times (UTC) of the start and of the last sync that processed bars.
    bars_processed, n_forward_bars
        The session's bars processed, and available to it at the last sync that processed
        bars (forward bars from ``origin`` on).
    bar_seconds
        Bar length (seconds).
    fee_bps, slippage_bps
        Costs of the session, fixed when it starts (basis points).
    forward_sha256
        Hash of the forward bars up to the last one the session traded,
        ``0..origin+bars_processed-1`` (`MarketWindow.head_sha256`): a sync goes on only if the
        forward window it is handed starts with exactly these bars.
    held, pending_target
        Position held during the last processed bar, and the target waiting for the next
        bar (fractions of equity).
    equity
        Equity after the last processed bar (starts at 1.0).
    n_fills
        Fills so far.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    trial_key: str
    instrument: str
    strategy_name: str
    params: dict[str, Any]
    status: SessionStatus
    mode: PaperMode
    origin: int = Field(ge=0)
    origin_bar: dt.datetime | None
    first_bar: dt.datetime | None
    last_bar: dt.datetime | None
    market_days: int = Field(ge=0)
    clock: ClockMode
    speed: float = Field(gt=0)
    started_at: dt.datetime
    updated_at: dt.datetime
    bars_processed: int = Field(ge=0)
    n_forward_bars: int = Field(ge=0)
    bar_seconds: float = Field(gt=0)
    fee_bps: float = Field(ge=0)
    slippage_bps: float = Field(ge=0)
    forward_sha256: str
    held: float
    pending_target: float
    equity: float
    n_fills: int = Field(ge=0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def days_elapsed(self) -> float:
        """Market time traded: ``bars_processed * bar_seconds / 86400`` (days)."""
        return self.bars_processed * self.bar_seconds / SECONDS_PER_DAY

    def bar_times(self) -> dict[str, str | None]:
        """``started_after`` (the newest bar when a forward session started), ``first_bar`` and
        ``last_bar`` traded, as ISO timestamps; None where there is none (yet)."""
        moments = {"started_after": self.origin_bar, "first_bar": self.first_bar, "last_bar": self.last_bar}
        return {name: value.isoformat() if value is not None else None for name, value in moments.items()}


def to_us(moment: dt.datetime) -> int:
    """``moment`` as stored: microseconds since the Unix epoch."""
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def from_us(micros: int) -> dt.datetime:
    """A stored time (microseconds since the Unix epoch) as an aware UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=int(micros))


def from_us_or_none(micros: int | None) -> dt.datetime | None:
    """`from_us`, None for None."""
    return None if micros is None else from_us(micros)


def new_market_days(stamps_us: Sequence[int] | np.ndarray, *, after_us: int | None) -> int:
    """UTC days among ``stamps_us`` (a session's newly traded bars after its first, increasing;
    microseconds since the epoch), not counting the day of ``after_us``, the last bar counted before."""
    # Imported here: reading sessions (`gauntlet status`) needs no numpy, only trading them does.
    import numpy as np

    # UTC days as `simulations.paper.daily_returns` buckets them for the sequential test.
    days = np.unique(np.asarray(stamps_us, dtype=np.int64).astype("datetime64[us]").astype("datetime64[D]"))
    if after_us is not None:
        days = days[days != np.datetime64(after_us, "us").astype("datetime64[D]")]
    return int(days.size)


def aware(moment: object, name: str) -> dt.datetime:
    """``moment`` if it is a timezone-aware datetime; `ConfigurationError` naming ``name`` if not."""
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment


def session_info(row: Mapping[str, Any]) -> SessionInfo:
    """The summary of a ``paper_sessions`` row."""
    return SessionInfo(
        trial_key=row["trial_key"],
        instrument=row["instrument"],
        strategy_name=row["strategy_name"],
        params=json.loads(row["params_json"]),
        status=row["status"],
        mode=row["mode"],
        origin=row["origin"],
        origin_bar=from_us_or_none(row["origin_bar_us"]),
        first_bar=from_us_or_none(row["first_bar_us"]),
        last_bar=from_us_or_none(row["last_bar_us"]),
        market_days=row["market_days"],
        clock=row["clock"],
        speed=row["speed"],
        started_at=from_us(row["started_at_us"]),
        updated_at=from_us(row["updated_at_us"]),
        bars_processed=row["bars_processed"],
        n_forward_bars=row["n_forward_bars"],
        bar_seconds=row["bar_seconds"],
        fee_bps=row["fee_bps"],
        slippage_bps=row["slippage_bps"],
        forward_sha256=row["forward_sha256"],
        held=row["held"],
        pending_target=row["pending_target"],
        equity=row["equity"],
        n_fills=row["n_fills"],
    )


class PaperSessionStore:
    """The sessions' database: schema on first use, typed errors, and the sessions' summaries.

    Its host provides ``database_url`` (an SQLAlchemy URL of Gauntlet's database, the deployment
    registry's: ``sqlite:///path`` locally, ``postgresql+psycopg2://...`` in production).
    """

    def _engine(self) -> sa.Engine:
        engine = engine_for(self.database_url)
        SCHEMAS_READY.get(("paper broker", self.database_url), lambda: self._create_schema(engine))
        return engine

    def _create_schema(self, engine: sa.Engine) -> bool:
        try:
            PAPER_METADATA.create_all(engine)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Another process may have created the tables between our check and create.
            try:
                present = set(sa.inspect(engine).get_table_names())
            except sqlalchemy.exc.SQLAlchemyError as inspect_exc:
                raise translate_db_error(inspect_exc, what="paper broker", url=self.database_url) from exc
            if not set(PAPER_METADATA.tables) <= present:
                raise translate_db_error(exc, what="paper broker", url=self.database_url) from exc
        try:
            self._add_columns(engine)
            with engine.begin() as conn:
                # Earlier versions ended a session as 'completed' once its fixed forward
                # window ran out; the window is open-ended now, so such a session goes on.
                conn.execute(
                    sa.update(paper_sessions).where(paper_sessions.c.status == "completed").values(status="running")
                )
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate_db_error(exc, what="paper broker", url=self.database_url) from exc
        return True

    @staticmethod
    def _add_columns(engine: sa.Engine) -> None:
        """Give a table of an earlier version the columns added since, with what its sessions were."""

        for name in missing_columns(engine, paper_sessions):
            try:
                with engine.begin() as conn:
                    add_column(conn, paper_sessions, name, existing_rows=_EARLIER_SESSIONS)
            except sqlalchemy.exc.SQLAlchemyError:
                # Another process (a code server, the daemon) added it between the look and the change.
                if name in missing_columns(engine, paper_sessions):
                    raise
        # Every time, not only by the process that added the columns: one that died between the two
        # leaves sessions to fill, and the query selects only those.
        PaperSessionStore._backfill_bars(engine)

    @staticmethod
    def _backfill_bars(engine: sa.Engine) -> None:
        """First and last bar and market days of sessions recorded before those columns existed."""
        with engine.begin() as conn:
            keys = conn.execute(
                sa.select(paper_sessions.c.trial_key).where(
                    paper_sessions.c.bars_processed > 0, paper_sessions.c.first_bar_us.is_(None)
                )
            ).scalars().all()
            for key in keys:
                stamps = conn.execute(
                    sa.select(paper_bars.c.timestamp_us)
                    .where(paper_bars.c.trial_key == key)
                    .order_by(paper_bars.c.bar_index)
                ).scalars().all()
                if stamps:
                    conn.execute(
                        sa.update(paper_sessions)
                        .where(paper_sessions.c.trial_key == key)
                        .values(
                            first_bar_us=int(stamps[0]), last_bar_us=int(stamps[-1]),
                            market_days=new_market_days(stamps[1:], after_us=None),
                        )
                    )

    def _fail(self, exc: BaseException, trial_key: str | None) -> PipelineError:
        if isinstance(exc, PipelineError):
            error = exc
        else:
            error = translate_db_error(exc, what="paper broker", url=self.database_url)
        return error.for_trial(trial_key) if trial_key and error.trial is None else error

    def sessions(self, *, min_days: float | None = None, updated_since: dt.datetime | None = None) -> list[SessionInfo]:
        if min_days is not None and (
            isinstance(min_days, bool)
            or not isinstance(min_days, int | float)
            or not math.isfinite(min_days)
            or min_days < 0
        ):
            raise PaperTradingError(f"min_days must be None or a finite number of days >= 0, got {min_days!r}")
        query = sa.select(paper_sessions).order_by(paper_sessions.c.started_at_us, paper_sessions.c.trial_key)
        if updated_since is not None:
            query = query.where(paper_sessions.c.updated_at_us >= to_us(aware(updated_since, "updated_since")))
        try:
            with self._engine().connect() as conn:
                rows = conn.execute(query).mappings().all()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise self._fail(exc, None) from exc
        infos = [session_info(row) for row in rows]
        # Filtered with the same expression as SessionInfo.days_elapsed, so a session that
        # reports 7.0 days is never left out by SQL float rounding.
        return [info for info in infos if min_days is None or info.days_elapsed >= min_days]


@dataclass(frozen=True)
class PaperSessionsDatabase(PaperSessionStore):
    """The paper sessions at ``database_url``, opened outside Dagster (`PaperSessionStore`)."""

    database_url: str
