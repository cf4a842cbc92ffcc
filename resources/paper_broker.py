"""The paper venue as a resource: `PaperBrokerResource` and its local, persistent implementation.

`PaperBrokerResource` is what a broker's paper-trading API would provide: sessions keyed by
trial, advanced by `sync` as bars arrive, and reported as frames. `LocalPaperBrokerResource`
runs `simulations.paper.advance_session` against the forward window it is handed: the windows
`market_data` built, so that the venue trades the bars, and cuts at the dates, that every trial
is judged on (one source of truth; the dates are pinned in the Dagster instance). The forward
window is open-ended: bars appended to the market source join it when `market_data` is
rebuilt, and a session trades them next.

A session has a `simulations.vocabulary.PaperMode`, fixed when it starts. A ``forward`` session
(paper trading) starts at the newest bar of the window it is first handed and trades only the
bars that arrive after it; a ``holdout`` session replays the forward window from its first bar,
released by its clock (``replay``: at once; ``wall``: at a pace). The venue keeps every session
in three tables of Gauntlet's own database (the deployment registry's; tables prefixed
``paper_``):

* ``paper_sessions`` — one row per trial: strategy, params, mode, origin (forward bars before
  its first), clock, costs, the hash of the forward bars up to its last traded one and the
  `SessionState`;
* ``paper_fills`` and ``paper_bars`` — one row per (trial_key, bar_index), the primary
  key, so re-processing a bar can never add a second fill or equity row.

Each sync is one transaction that advances the session row only if it still holds the
state the sync started from (and locks it on PostgreSQL), so concurrent syncs of one
session cannot both write, and a crash mid-sync leaves the previous state intact.
`sync_many` does the same for many sessions in one transaction (a commit per session is
most of what a sync costs); a session another sync advanced meanwhile is left as that one
left it.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from pydantic import Field

from resources.paper_sessions import (
    TRIAL_KEY_LENGTH,
    PaperSessionStore,
    SessionInfo,
    SessionStatus,
    aware,
    from_us,
    new_market_days,
    paper_bars,
    paper_fills,
    paper_sessions,
    session_info,
    to_us,
)
from simulations.constants import DEFAULT_PAPER_CLOCK_SPEED
from simulations.errors import ConfigurationError, PaperTradingError, PipelineError
from simulations.market import MarketWindow, MarketWindows
from simulations.paper import BAR_SCHEMA, FILL_SCHEMA, SessionState, SessionStep, advance_session
from simulations.strategies import StrategyRegistry
from simulations.vocabulary import ClockMode, PaperMode

_MICROSECONDS = 1_000_000
_NO_SESSION = "no paper session for this trial; call start_session first"


#: The session row's columns a sync changes (`LocalPaperBrokerResource._advance`).
_STEP_COLUMNS = (
    "bars_processed", "held", "pending_target", "equity", "last_close", "n_fills", "updated_at_us",
    "n_forward_bars", "forward_sha256", "first_bar_us", "last_bar_us", "market_days",
)

#: A sync's write of the session row, only if it still holds the bars it was read with: one
#: statement with parameters, compiled once, whatever the number of sessions synced.
_GUARDED_UPDATE = (
    sa.update(paper_sessions)
    .where(
        paper_sessions.c.trial_key == sa.bindparam("session_key"),
        paper_sessions.c.bars_processed == sa.bindparam("bars_before"),
        paper_sessions.c.status == "running",
    )
    .values({name: sa.bindparam(f"new_{name}") for name in _STEP_COLUMNS})
)


@dataclass(frozen=True, eq=False)
class SessionReport:
    """Everything a session has recorded, read in one consistent view.

    Attributes
    ----------
    info
        The session's summary.
    fills
        Fills in bar order (:data:`simulations.paper.FILL_SCHEMA`).
    bars
        Per-bar record: close, held position, returns, costs and equity
        (:data:`simulations.paper.BAR_SCHEMA`), bars ``0..bars_processed-1``.
    """

    info: SessionInfo
    fills: pl.DataFrame
    bars: pl.DataFrame

    @property
    def days_elapsed(self) -> float:
        """Market time traded (days)."""
        return self.info.days_elapsed

    @property
    def bars_processed(self) -> int:
        """Forward bars processed."""
        return self.info.bars_processed

    @property
    def status(self) -> SessionStatus:
        """Session status."""
        return self.info.status

    @property
    def positions(self) -> pl.DataFrame:
        """Position held per bar (fraction of equity): ``bar_index, timestamp, held``."""
        return self.bars.select("bar_index", "timestamp", "held")

    @property
    def equity(self) -> pl.DataFrame:
        """Equity per bar (starts at 1.0): ``bar_index, timestamp, equity``."""
        return self.bars.select("bar_index", "timestamp", "equity")


class PaperBrokerResource(dg.ConfigurableResource, abc.ABC):
    """A paper-trading venue: one session per trial on the forward window.

    The caller hands the venue the market as `market_data` built it (``windows``): the venue
    trades its forward window, so sessions, backtests and grades all see the same bars, cut at
    the same pinned dates.

    Every method raises a `PipelineError`: `PaperTradingError` for an unknown session or a
    session that cannot continue, `StorageUnavailableError` (transient) when the venue's
    storage is locked or unreachable.
    """

    @abc.abstractmethod
    def start_session(
        self, *, trial_key: str, strategy_name: str, params: Mapping[str, Any], instrument: str,
        windows: MarketWindows, costs_bps: tuple[float, float], strategies: StrategyRegistry,
    ) -> SessionInfo:
        """Start trading ``strategy_name`` (of ``strategies``) with ``params`` for ``trial_key`` on
        ``windows.forward`` of ``instrument``, paying ``costs_bps`` (fee, slippage; basis points
        per unit traded); idempotent.

        A ``forward`` session trades only the bars after the newest one of ``windows.forward``; a
        ``holdout`` session the window from its first bar. Starting a session that exists with
        the same strategy and params returns it as it is (its mode is the one it started with);
        with different ones raises `PaperTradingError`.
        """

    @abc.abstractmethod
    def sync(self, *, trial_key: str, windows: MarketWindows, strategies: StrategyRegistry) -> SessionInfo:
        """Process the session's bars of ``windows.forward`` not traded yet, durably, with the session's
        strategy as ``strategies`` has it: every one that has arrived (forward), or those the clock
        released (holdout).

        The session goes on only if ``windows.forward`` starts with the bars up to its last
        traded one (bars appended since are traded next, once each); a stopped session is
        returned unchanged.
        """

    def sync_many(
        self, *, windows_of: Mapping[str, MarketWindows], strategies: StrategyRegistry
    ) -> dict[str, SessionInfo | PipelineError]:
        """`sync` every session of ``windows_of`` (trial key to the windows of its instrument).

        Returns
        -------
        dict
            Per trial key, the session as `sync` returns it, or the error that keeps that session
            from going on (its market changed under it, an unknown session); the others go on.

        Raises
        ------
        PipelineError
            A transient one (storage locked or unreachable): nothing more is synced.
        """
        results: dict[str, SessionInfo | PipelineError] = {}
        for key, windows in windows_of.items():
            try:
                results[key] = self.sync(trial_key=key, windows=windows, strategies=strategies)
            except PipelineError as exc:
                if exc.transient:
                    raise
                results[key] = exc
        return results

    @abc.abstractmethod
    def report(self, *, trial_key: str) -> SessionReport:
        """The session's fills and per-bar positions and equity, as recorded so far."""

    @abc.abstractmethod
    def stop(self, *, trial_key: str) -> SessionInfo:
        """Stop a running session where it stands (idempotent); its record is kept."""

    @abc.abstractmethod
    def sessions(self, *, min_days: float | None = None, updated_since: dt.datetime | None = None) -> list[SessionInfo]:
        """Sessions, oldest start first.

        Parameters
        ----------
        min_days
            Only sessions with at least this much market time traded (days), e.g. the gate
            policy's ``paper.min_days`` to find matured sessions.
        updated_since
            Only sessions that processed bars at or after this time (timezone-aware), e.g.
            a sensor's cursor.
        """


def _checked_key(trial_key: object) -> str:
    if not isinstance(trial_key, str) or not trial_key.strip() or len(trial_key) > TRIAL_KEY_LENGTH:
        raise PaperTradingError(
            f"trial_key must be a non-empty string of at most {TRIAL_KEY_LENGTH} characters, got {trial_key!r}"
        )
    return trial_key


def _frame(rows: list[Mapping[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Database rows (timestamps as integer microseconds) as a frame of ``schema``."""
    data = {name: [row["timestamp_us" if name == "timestamp" else name] for row in rows] for name in schema}
    return pl.DataFrame(data, schema={**schema, "timestamp": pl.Int64}).with_columns(
        pl.col("timestamp").cast(schema["timestamp"])
    )


def _insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table) -> sa.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` on the primary key, for SQLite and PostgreSQL."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(table.primary_key.columns))
    if dialect == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing(index_elements=list(table.primary_key.columns))
    raise ConfigurationError(f"the paper broker supports SQLite and PostgreSQL databases, not {dialect}")


def _db_rows(columns: Mapping[str, np.ndarray], trial_key: str) -> list[dict[str, Any]]:
    """A step's columns (`simulations.paper.SessionStep`) as database rows: a sync writes a few rows,
    and building a frame for them would cost more than they do."""
    lists = {"timestamp_us" if name == "timestamp" else name: values.tolist() for name, values in columns.items()}
    return [{"trial_key": trial_key, **dict(zip(lists, values, strict=True))} for values in zip(*lists.values())]


class LocalPaperBrokerResource(PaperSessionStore, PaperBrokerResource):
    """Paper venue simulated in-process on the forward window it is handed, persisted in a database.

    Restarts lose nothing: a new instance on the same ``database_url`` continues every
    session from its last committed sync. Tests replace the clock by overriding `now`.
    """

    database_url: str = Field(
        description="SQLAlchemy URL of Gauntlet's database (the deployment registry's): "
        "sqlite:///path locally, postgresql+psycopg2://... in production.",
    )
    mode: PaperMode = Field(
        default="forward",
        description="How new sessions meet the market: 'forward' from the newest bar on, trading only bars that "
        "arrive afterwards (paper trading); 'holdout' replaying the forward window from its start.",
    )
    clock: ClockMode = Field(
        default="replay",
        description="How new holdout sessions release bars: 'replay' the whole forward window at once; "
        "'wall' as wall-clock time passes since the session started.",
    )
    speed: float = Field(
        default=DEFAULT_PAPER_CLOCK_SPEED,
        gt=0,
        description="'wall' clock only: market seconds released per wall-clock second (1.0 is real time).",
    )

    def now(self) -> dt.datetime:
        """Current wall-clock time (UTC); the one place the venue reads the time."""
        return dt.datetime.now(dt.UTC)

    # ------------------------------------------------------------------ infrastructure

    def _now(self) -> dt.datetime:
        return aware(self.now(), "now()")

    @staticmethod
    def _released(row: Mapping[str, Any], timestamps: np.ndarray, bar_seconds: float, now: dt.datetime) -> int:
        """Of the session's bars (``timestamps``), how many it may trade by ``now``: a forward session
        every bar that has arrived; a holdout session those its clock has released."""
        if row["mode"] == "forward" or row["clock"] == "replay":
            return int(timestamps.size)
        stamps = timestamps.astype(np.int64)
        # Microseconds after the session's first bar at which each bar has closed.
        closes_at_us = stamps - stamps[0] + round(bar_seconds * _MICROSECONDS)
        elapsed_us = to_us(now) - row["started_at_us"]
        market_us = np.floor(elapsed_us * row["speed"])
        return int(np.searchsorted(closes_at_us, market_us, side="right"))

    @staticmethod
    def _check_traded(row: Mapping[str, Any], forward: MarketWindow, key: str) -> None:
        """Refuse a forward window that does not start with the bars up to the session's last traded one."""
        traded = row["origin"] + row["bars_processed"]
        for index, recorded, which in (
            (row["origin"], row["first_bar_us"], "first"),
            (traded - 1, row["last_bar_us"], "last"),
        ):
            if recorded is None or index >= forward.n_bars:
                continue
            now_us = int(forward.timestamps[index].astype("datetime64[us]").astype(np.int64))
            if now_us != recorded:
                raise PaperTradingError(
                    f"the session's {which} bar was {from_us(recorded).isoformat()} but forward bar {index} of the "
                    f"market is now {from_us(now_us).isoformat()}: a bar was inserted or removed "
                    "before it; restore the market data the session traded, or stop the session",
                    trial=key,
                )
        if traded > forward.n_bars:
            raise PaperTradingError(
                f"the session has traded up to forward bar {traded} but the forward window it was handed holds "
                f"{forward.n_bars}: that market_data is older than the session; run again on the latest market_data",
                trial=key,
            )
        if forward.head_sha256(traded) != row["forward_sha256"]:
            raise PaperTradingError(
                f"the first {traded} forward bars of the market (sha256 {forward.head_sha256(traded)[:12]}…) are not "
                f"the ones this session traded ({row['forward_sha256'][:12]}…): the market data or the window dates "
                "changed under it; restore the market data the session traded, or stop the session",
                trial=key,
            )

    @staticmethod
    def _existing(conn: sa.Connection, trial_key: str) -> Mapping[str, Any]:
        query = sa.select(paper_sessions).where(paper_sessions.c.trial_key == trial_key)
        row = conn.execute(query).mappings().first()
        if row is None:
            raise PaperTradingError(_NO_SESSION, trial=trial_key)
        return row

    # ------------------------------------------------------------------ API

    def start_session(
        self, *, trial_key: str, strategy_name: str, params: Mapping[str, Any], instrument: str,
        windows: MarketWindows, costs_bps: tuple[float, float], strategies: StrategyRegistry,
    ) -> SessionInfo:
        key = _checked_key(trial_key)
        try:
            _, model = strategies.build(name=strategy_name, params=params)
            params_json = json.dumps(model.model_dump(mode="json"), sort_keys=True)
            forward = windows.forward
            # A forward session starts after the newest bar there is: it trades only bars to come.
            origin = forward.n_bars if self.mode == "forward" else 0
            engine = self._engine()
            now_us = to_us(self._now())
            with engine.begin() as conn:
                # Insert-or-keep in one statement: of two concurrent starts, one inserts and
                # the other reads that row back below.
                conn.execute(
                    _insert_ignoring_duplicates(engine, paper_sessions).values(
                        trial_key=key,
                        instrument=instrument,
                        strategy_name=strategy_name,
                        params_json=params_json,
                        status="running",
                        mode=self.mode,
                        origin=origin,
                        origin_bar_us=int(forward.timestamps[origin - 1].astype(np.int64)) if origin else None,
                        first_bar_us=None,
                        last_bar_us=None,
                        market_days=0,
                        clock=self.clock,
                        speed=self.speed,
                        fee_bps=costs_bps[0],
                        slippage_bps=costs_bps[1],
                        bar_seconds=forward.bar_seconds,
                        n_forward_bars=forward.n_bars - origin,
                        forward_sha256=forward.head_sha256(origin),
                        started_at_us=now_us,
                        updated_at_us=now_us,
                        bars_processed=0,
                        held=0.0,
                        pending_target=0.0,
                        equity=1.0,
                        last_close=None,
                        n_fills=0,
                    )
                )
                row = self._existing(conn, key)
        except (PipelineError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise self._fail(exc, key) from exc
        if row["strategy_name"] != strategy_name or row["params_json"] != params_json:
            raise PaperTradingError(
                f"a session already trades strategy {row['strategy_name']!r} with params {row['params_json']}; "
                f"it cannot restart as {strategy_name!r} with {params_json}: a trial's params never change",
                trial=key,
            )
        return session_info(row)

    def sync(self, *, trial_key: str, windows: MarketWindows, strategies: StrategyRegistry) -> SessionInfo:
        key = _checked_key(trial_key)
        try:
            synced = self.sync_many(windows_of={key: windows}, strategies=strategies)[key]
        except PipelineError as exc:
            raise self._fail(exc, key) from exc
        if isinstance(synced, PipelineError):
            raise synced
        return synced

    def sync_many(
        self, *, windows_of: Mapping[str, MarketWindows], strategies: StrategyRegistry
    ) -> dict[str, SessionInfo | PipelineError]:
        # One transaction for every session: a commit per session is most of what a sync costs.
        keys = [_checked_key(key) for key in windows_of]
        results: dict[str, SessionInfo | PipelineError] = {}
        try:
            now = self._now()
            engine = self._engine()
            with engine.connect() as conn:
                moved = []
                with conn.begin():
                    # FOR UPDATE serialises syncs on PostgreSQL; SQLite ignores it and relies on the
                    # guarded update.
                    query = sa.select(paper_sessions).where(paper_sessions.c.trial_key.in_(keys)).with_for_update()
                    rows = {row["trial_key"]: row for row in conn.execute(query).mappings()}
                    bars: list[dict[str, Any]] = []
                    fills: list[dict[str, Any]] = []
                    for key in keys:
                        row = rows.get(key)
                        if row is None:
                            results[key] = PaperTradingError(_NO_SESSION, trial=key)
                            continue
                        try:
                            advanced = self._advance(row, windows_of[key], strategies, now, key)
                        except PipelineError as exc:
                            if exc.transient:
                                raise
                            results[key] = self._fail(exc, key)
                            continue
                        if advanced is None:
                            results[key] = session_info(row)
                            continue
                        before, step, values = advanced
                        if not self._guarded_update(conn, key, before, values):
                            moved.append(key)
                            continue
                        bars += _db_rows(step.bar_columns, key)
                        fills += _db_rows(step.fill_columns, key)
                        results[key] = session_info({**row, **values})
                    self._insert_rows(conn, bars, fills)
                for key in moved:
                    # Another sync advanced it between the read and the update: it stands as that one left it.
                    results[key] = session_info(self._existing(conn, key))
        except (PipelineError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise self._fail(exc, None) from exc
        return results

    def _advance(
        self, row: Mapping[str, Any], windows: MarketWindows, strategies: StrategyRegistry, now: dt.datetime,
        key: str,
    ) -> tuple[SessionState, SessionStep, dict[str, Any]] | None:
        """The session's state before, its new bars and fills, and its row's new values; ``None`` when
        it is stopped or has nothing new to trade."""
        if row["status"] != "running":
            return None
        forward = windows.forward
        self._check_traded(row, forward, key)
        state = SessionState(
            bars_processed=row["bars_processed"],
            held=row["held"],
            pending_target=row["pending_target"],
            equity=row["equity"],
            last_close=row["last_close"],
        )
        strategy, params = strategies.build(name=row["strategy_name"], params=json.loads(row["params_json"]))
        history, close, timestamps = windows.forward_from(origin=row["origin"])
        step = advance_session(
            state=state,
            history_close=history,
            forward_close=close,
            forward_timestamps=timestamps,
            n_available=self._released(row, timestamps, forward.bar_seconds, now),
            strategy=strategy,
            params=params,
            fee_bps=row["fee_bps"],
            slippage_bps=row["slippage_bps"],
        )
        if step.state.bars_processed == state.bars_processed:
            return None
        new = step.state
        stamps_us = step.bar_columns["timestamp"]
        counted = step.bar_columns["bar_index"] >= 1
        values = {
            "bars_processed": new.bars_processed,
            "held": new.held,
            "pending_target": new.pending_target,
            "equity": new.equity,
            "last_close": new.last_close,
            "n_fills": row["n_fills"] + step.fill_columns["bar_index"].size,
            "updated_at_us": max(to_us(now), row["updated_at_us"]),
            "n_forward_bars": close.size,
            "forward_sha256": forward.head_sha256(row["origin"] + new.bars_processed),
            "first_bar_us": row["first_bar_us"] if row["first_bar_us"] is not None else int(stamps_us[0]),
            "last_bar_us": int(stamps_us[-1]),
            "market_days": row["market_days"]
            + new_market_days(stamps_us[counted], after_us=row["last_bar_us"] if state.bars_processed >= 2 else None),
        }
        return state, step, values

    @staticmethod
    def _guarded_update(conn: sa.Connection, key: str, before: SessionState, values: Mapping[str, Any]) -> bool:
        """Advance the session row only if it still holds ``before``; ``False`` if it moved meanwhile."""
        parameters = {f"new_{name}": values[name] for name in _STEP_COLUMNS}
        moved = conn.execute(_GUARDED_UPDATE, {"session_key": key, "bars_before": before.bars_processed, **parameters})
        return moved.rowcount == 1

    @staticmethod
    def _insert_rows(conn: sa.Connection, bars: list[dict[str, Any]], fills: list[dict[str, Any]]) -> None:
        """The bars and fills of every session a sync advanced, in its transaction."""
        if bars:
            conn.execute(sa.insert(paper_bars), bars)
        if fills:
            conn.execute(sa.insert(paper_fills), fills)

    def report(self, *, trial_key: str) -> SessionReport:
        key = _checked_key(trial_key)
        try:
            with self._engine().connect() as conn:
                row = self._existing(conn, key)
                # Rows are append-only and the session row is committed with them, so rows
                # below its bar count are exactly the bars it reports, whatever syncs since.
                visible = row["bars_processed"]
                bars = conn.execute(
                    sa.select(paper_bars)
                    .where(paper_bars.c.trial_key == key, paper_bars.c.bar_index < visible)
                    .order_by(paper_bars.c.bar_index)
                ).mappings().all()
                fills = conn.execute(
                    sa.select(paper_fills)
                    .where(paper_fills.c.trial_key == key, paper_fills.c.bar_index < visible)
                    .order_by(paper_fills.c.bar_index)
                ).mappings().all()
        except (PipelineError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise self._fail(exc, key) from exc
        if len(bars) != visible or len(fills) != row["n_fills"]:
            raise PaperTradingError(
                f"the session records {visible} bars and {row['n_fills']} fills but the database holds "
                f"{len(bars)} and {len(fills)}: its rows were altered outside the venue",
                trial=key,
            )
        return SessionReport(
            info=session_info(row), fills=_frame(list(fills), FILL_SCHEMA), bars=_frame(list(bars), BAR_SCHEMA)
        )

    def stop(self, *, trial_key: str) -> SessionInfo:
        key = _checked_key(trial_key)
        try:
            now_us = to_us(self._now())
            with self._engine().connect() as conn:
                with conn.begin():
                    self._existing(conn, key)
                    conn.execute(
                        sa.update(paper_sessions)
                        .where(paper_sessions.c.trial_key == key, paper_sessions.c.status == "running")
                        .values(status="stopped", updated_at_us=now_us)
                    )
                row = self._existing(conn, key)
        except (PipelineError, sqlalchemy.exc.SQLAlchemyError) as exc:
            raise self._fail(exc, key) from exc
        return session_info(row)
