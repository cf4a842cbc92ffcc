"""The persistent paper venue: clocks, restarts, crashes, concurrency, bars arriving, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa

from resources.market_data import FileMarketDataResource, SyntheticMarketDataResource
from simulations.constants import DEFAULT_INSTRUMENT
from resources.paper_broker import LocalPaperBrokerResource, PaperBrokerResource
from resources.paper_sessions import PAPER_METADATA, paper_bars, paper_fills, paper_sessions
from simulations.backtest import backtest_strategy
from simulations.errors import ConfigurationError, PaperTradingError, StorageUnavailableError, TrialDataError
from simulations.market import generate_synthetic_market
from simulations.paper import SessionState, advance_session
from simulations.strategies import BUILT_IN_STRATEGIES

STRATEGY = "momentum"
PARAMS = {"lookback": 12, "vol_lookback": 24, "target_bar_vol": 0.003}
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
FORWARD_BARS = 360  # 15 days of hourly bars
#: Columns of `paper_sessions` that its first version did not have.
FIRST_VERSION_LACKED = ("instrument", "mode", "origin", "origin_bar_us", "first_bar_us", "last_bar_us", "market_days")


def small_market(**fields) -> SyntheticMarketDataResource:
    """40 days of synthetic hourly bars: 360 forward bars after 600 bars of history."""
    return SyntheticMarketDataResource(n_days=40, train_days=20, backtest_days=5, forward_days=15, **fields)


#: The windows `market_data` would hand the venue for `small_market()`, and its costs.
WINDOWS = small_market().load_windows()
COSTS_BPS = (small_market().fee_bps, small_market().slippage_bps)
#: Where every session of these tests trades: the default instrument, at its costs.
VENUE = {"instrument": DEFAULT_INSTRUMENT, "costs_bps": COSTS_BPS}


class FakeClock:
    """Wall-clock time that moves only when a test says so."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def make_broker(url: str, fake: FakeClock, **fields) -> LocalPaperBrokerResource:
    """A broker whose `now` reads ``fake``: the venue's only injection point for time. Holdout
    sessions unless ``mode`` says otherwise: they replay a window the tests know in advance."""

    class ClockedBroker(LocalPaperBrokerResource):
        def now(self) -> dt.datetime:
            return fake.now

    return ClockedBroker(database_url=url, **{"mode": "holdout", **fields})


@pytest.fixture(scope="module")
def batch():
    """The whole forward window processed at once by the pure engine, and the backtester's run."""
    windows = WINDOWS
    strategy, params = BUILT_IN_STRATEGIES.build(name=STRATEGY, params=PARAMS)
    history = windows.history_before(name="forward")
    step = advance_session(
        state=SessionState(),
        history_close=history,
        forward_close=windows.forward.close,
        forward_timestamps=windows.forward.timestamps,
        n_available=windows.forward.n_bars,
        strategy=strategy,
        params=params,
        fee_bps=2.0,
        slippage_bps=1.0,
    )
    result = backtest_strategy(
        strategy=strategy, params=params, close=windows.forward.close, history=history, fee_bps=2.0, slippage_bps=1.0
    )
    return step, result


def _assert_prefix_of_batch(report, batch, n_bars: int) -> None:
    step, _ = batch
    assert report.bars.equals(step.bars.head(n_bars))
    assert report.fills.equals(step.fills.filter(pl.col("bar_index") < n_bars))
    assert report.info.n_fills == report.fills.height


def test_replay_session_trades_the_whole_forward_window_at_once_and_equals_the_backtester(
    database_url: str, batch
) -> None:
    broker = make_broker(database_url, FakeClock(), clock="replay")
    started = broker.start_session(trial_key="study#1", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    assert (started.status, started.bars_processed, started.equity, started.days_elapsed) == ("running", 0, 1.0, 0.0)

    info = broker.sync(trial_key="study#1", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert (info.status, info.bars_processed, info.days_elapsed) == ("running", FORWARD_BARS, 15.0)
    report = broker.report(trial_key="study#1")
    _assert_prefix_of_batch(report, batch, FORWARD_BARS)
    _, result = batch
    np.testing.assert_allclose(report.equity["equity"].to_numpy(), result.equity, rtol=0, atol=1e-12)
    np.testing.assert_allclose(report.positions["held"].to_numpy(), result.held, rtol=0, atol=1e-12)
    assert info.equity - 1.0 == pytest.approx(result.total_return, abs=1e-12)
    assert report.status == "running" and report.bars_processed == FORWARD_BARS and report.days_elapsed == 15.0
    # Until bars arrive, there is nothing left to process.
    assert broker.sync(trial_key="study#1", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES) == info


def test_start_is_idempotent_and_refuses_other_params(database_url: str) -> None:
    clock = FakeClock()
    broker = make_broker(database_url, clock, clock="wall")
    first = broker.start_session(trial_key="study#2", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    clock.advance(hours=5)
    again = make_broker(database_url, clock, clock="replay").start_session(
        trial_key="study#2", strategy_name=STRATEGY, params=dict(reversed(list(PARAMS.items()))), windows=WINDOWS, **VENUE,
        strategies=BUILT_IN_STRATEGIES,
    )
    assert again == first  # same start time and clock: the existing session, not a new one
    assert len(broker.sessions()) == 1
    with pytest.raises(PaperTradingError, match="a trial's params never change") as caught:
        broker.start_session(
            trial_key="study#2", strategy_name=STRATEGY, params={**PARAMS, "lookback": 13}, windows=WINDOWS, **VENUE,
            strategies=BUILT_IN_STRATEGIES,
        )
    assert "study#2" in str(caught.value)
    with pytest.raises(TrialDataError, match="unknown|invalid|not registered|known"):
        broker.start_session(trial_key="study#3", strategy_name="no_such_strategy", params={}, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    assert [info.trial_key for info in broker.sessions()] == ["study#2"]


@pytest.mark.parametrize("speed", [1.0, 3_600.0])
def test_a_wall_session_reaches_seven_days_only_after_seven_days_of_market_time(tmp_path: Path, speed: float) -> None:
    clock = FakeClock()
    broker = make_broker(f"sqlite:///{tmp_path / 'gauntlet.db'}", clock, clock="wall", speed=speed)
    broker.start_session(trial_key="study#4", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    seven_days = dt.timedelta(days=7) / speed

    clock.advance(seconds=(seven_days - dt.timedelta(seconds=1)).total_seconds())
    info = broker.sync(trial_key="study#4", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert info.bars_processed == 7 * 24 - 1 and info.days_elapsed < 7.0 and info.status == "running"
    assert broker.sessions(min_days=7.0) == []

    clock.advance(seconds=1)
    info = broker.sync(trial_key="study#4", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert info.bars_processed == 7 * 24 and info.days_elapsed == 7.0
    assert [s.trial_key for s in broker.sessions(min_days=7.0)] == ["study#4"]


def test_restarting_the_venue_mid_session_loses_nothing(database_url: str, batch) -> None:
    clock = FakeClock()
    make_broker(database_url, clock, clock="wall").start_session(
        trial_key="study#5", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE,
        strategies=BUILT_IN_STRATEGIES,
    )
    clock.advance(days=2, hours=12, minutes=30)
    before = make_broker(database_url, clock, clock="wall").sync(trial_key="study#5", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert before.bars_processed == 60

    # A new process: fresh resource instance on the same database, same config.
    restarted = make_broker(database_url, clock, clock="wall")
    assert restarted.report(trial_key="study#5").bars.height == 60
    clock.advance(days=6, hours=11, minutes=30)
    after = restarted.sync(trial_key="study#5", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert after.bars_processed == 9 * 24 and after.started_at == before.started_at
    _assert_prefix_of_batch(restarted.report(trial_key="study#5"), batch, 9 * 24)

    clock.advance(days=30)
    final = make_broker(database_url, clock, clock="wall").sync(trial_key="study#5", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert (final.status, final.bars_processed) == ("running", FORWARD_BARS)
    _assert_prefix_of_batch(restarted.report(trial_key="study#5"), batch, FORWARD_BARS)
    with sa.create_engine(database_url).connect() as conn:
        for table in (paper_bars, paper_fills):
            rows = conn.execute(sa.select(table.c.bar_index).where(table.c.trial_key == "study#5")).scalars().all()
            assert len(rows) == len(set(rows)), f"duplicate rows in {table.name}"


def test_a_crash_inside_a_sync_commits_nothing_and_the_next_sync_processes_each_bar_once(
    database_url: str, batch
) -> None:
    clock = FakeClock()

    class CrashingBroker(LocalPaperBrokerResource):
        def now(self) -> dt.datetime:
            return clock.now

        def _insert_rows(self, conn, bars, fills):
            super()._insert_rows(conn, bars, fills)
            raise RuntimeError("process killed between the inserts and the commit")

    broker = make_broker(database_url, clock, clock="wall")
    broker.start_session(trial_key="study#6", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    clock.advance(days=3)
    broker.sync(trial_key="study#6", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    clock.advance(days=1)
    crashing = CrashingBroker(database_url=database_url, clock="wall")
    with pytest.raises(RuntimeError, match="process killed"):
        crashing.sync(trial_key="study#6", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    unchanged = broker.report(trial_key="study#6")
    assert unchanged.bars_processed == 72
    _assert_prefix_of_batch(unchanged, batch, 72)

    assert broker.sync(trial_key="study#6", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES).bars_processed == 96
    _assert_prefix_of_batch(broker.report(trial_key="study#6"), batch, 96)


def test_concurrent_syncs_of_one_session_never_double_insert(database_url: str, batch) -> None:
    clock = FakeClock()
    brokers = [make_broker(database_url, clock, clock="replay") for _ in range(4)]
    brokers[0].start_session(trial_key="study#7", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    barrier = threading.Barrier(len(brokers))
    outcomes: list[object] = [None] * len(brokers)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = brokers[index].sync(trial_key="study#7", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted on below
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(brokers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [getattr(o, "bars_processed", o) for o in outcomes] == [FORWARD_BARS] * len(brokers)
    _assert_prefix_of_batch(brokers[0].report(trial_key="study#7"), batch, FORWARD_BARS)


def test_stop_freezes_a_session(database_url: str) -> None:
    clock = FakeClock()
    broker = make_broker(database_url, clock, clock="wall")
    broker.start_session(trial_key="study#8", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    clock.advance(days=1)
    assert broker.sync(trial_key="study#8", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES).bars_processed == 24
    stopped = broker.stop(trial_key="study#8")
    assert stopped.status == "stopped" and stopped.bars_processed == 24
    clock.advance(days=5)
    assert broker.sync(trial_key="study#8", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES) == stopped
    assert broker.stop(trial_key="study#8") == stopped
    assert broker.report(trial_key="study#8").bars.height == 24


def test_sessions_filter_by_market_days_and_update_time(tmp_path: Path) -> None:
    clock = FakeClock()
    broker = make_broker(f"sqlite:///{tmp_path / 'gauntlet.db'}", clock, clock="wall")
    for key in ("study#10", "study#11"):
        broker.start_session(trial_key=key, strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    clock.advance(days=8)
    checkpoint = clock.now
    broker.sync(trial_key="study#11", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)
    assert [s.trial_key for s in broker.sessions()] == ["study#10", "study#11"]
    assert [s.trial_key for s in broker.sessions(min_days=7.0)] == ["study#11"]
    assert [s.trial_key for s in broker.sessions(updated_since=checkpoint)] == ["study#11"]
    assert broker.sessions(updated_since=checkpoint + dt.timedelta(seconds=1)) == []
    with pytest.raises(PaperTradingError, match="min_days"):
        broker.sessions(min_days=float("nan"))
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        broker.sessions(updated_since=dt.datetime(2026, 1, 1))


def test_unknown_sessions_and_bad_keys_raise_naming_the_trial(tmp_path: Path) -> None:
    broker = make_broker(f"sqlite:///{tmp_path / 'gauntlet.db'}", FakeClock())
    for call in (lambda **key: broker.sync(**key, windows=WINDOWS, strategies=BUILT_IN_STRATEGIES), broker.report, broker.stop):
        with pytest.raises(PaperTradingError, match=r"trial study#404.*start_session first"):
            call(trial_key="study#404")
    with pytest.raises(PaperTradingError, match="trial_key"):
        broker.sync(trial_key="  ", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES)


def test_market_data_that_changed_under_a_session_is_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    broker = make_broker(f"sqlite:///{tmp_path / 'gauntlet.db'}", clock, clock="wall")
    broker.start_session(trial_key="study#12", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
    clock.advance(days=1)
    assert broker.sync(trial_key="study#12", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES).bars_processed == 24
    other = small_market(seed=7).load_windows()
    with pytest.raises(PaperTradingError, match=r"first 24 forward bars .* are not the ones this session traded"):
        broker.sync(trial_key="study#12", windows=other, strategies=BUILT_IN_STRATEGIES)
    assert broker.report(trial_key="study#12").bars_processed == 24


def _bar_indexes(database_url: str, trial_key: str) -> list[int]:
    """The bar indexes the database holds for ``trial_key``, sorted (each once if no bar was traded twice)."""
    with sa.create_engine(database_url).connect() as conn:
        rows = conn.execute(sa.select(paper_bars.c.bar_index).where(paper_bars.c.trial_key == trial_key)).scalars()
        return sorted(rows)


def _csv_market(path: Path) -> FileMarketDataResource:
    return FileMarketDataResource(path=str(path), train_days=20, backtest_days=5, forward_days=10)


def test_bars_appended_between_syncs_are_traded_next_and_once(database_url: str, tmp_path: Path) -> None:
    """The forward window grows with the data; the windows stay where market_data pinned them."""
    bars = generate_synthetic_market(seed=11, n_days=40)
    path = tmp_path / "prices.csv"
    bars.head(36 * 24).write_csv(path)
    dates, before = _csv_market(path).load_dated_windows()
    broker = make_broker(database_url, FakeClock(), clock="replay")
    broker.start_session(trial_key="study#15", strategy_name=STRATEGY, params=PARAMS, windows=before, **VENUE, strategies=BUILT_IN_STRATEGIES)
    assert broker.sync(trial_key="study#15", windows=before, strategies=BUILT_IN_STRATEGIES).bars_processed == 10 * 24

    bars.write_csv(path)  # four more days arrive
    _, after = _csv_market(path).load_dated_windows(pinned=dates)
    assert (after.train.sha256, after.backtest.sha256) == (before.train.sha256, before.backtest.sha256)
    assert after.forward.head_sha256(before.forward.n_bars) == before.forward.sha256
    info = broker.sync(trial_key="study#15", windows=after, strategies=BUILT_IN_STRATEGIES)
    assert (info.status, info.bars_processed, info.n_forward_bars) == ("running", 14 * 24, 14 * 24)
    assert info.forward_sha256 == after.forward.sha256
    assert broker.sync(trial_key="study#15", windows=after, strategies=BUILT_IN_STRATEGIES) == info  # nothing new: nothing traded

    # Trading in two chunks equals trading the grown window at once: each bar once, in order.
    strategy, params = BUILT_IN_STRATEGIES.build(name=STRATEGY, params=PARAMS)
    at_once = advance_session(
        state=SessionState(),
        history_close=after.history_before(name="forward"),
        forward_close=after.forward.close,
        forward_timestamps=after.forward.timestamps,
        n_available=after.forward.n_bars,
        strategy=strategy,
        params=params,
        fee_bps=2.0,
        slippage_bps=1.0,
    )
    report = broker.report(trial_key="study#15")
    assert report.bars.equals(at_once.bars) and report.fills.equals(at_once.fills)
    assert _bar_indexes(database_url, "study#15") == list(range(14 * 24))
    # A caller holding the windows of an older build cannot rewind the session.
    with pytest.raises(PaperTradingError, match="that market_data is older than the session"):
        broker.sync(trial_key="study#15", windows=before, strategies=BUILT_IN_STRATEGIES)


def test_a_naive_clock_is_a_configuration_error(tmp_path: Path) -> None:
    broker = make_broker(f"sqlite:///{tmp_path / 'gauntlet.db'}", FakeClock(dt.datetime(2026, 3, 1)))
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        broker.start_session(trial_key="study#13", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)


def test_an_unreachable_database_is_a_transient_error() -> None:
    broker = make_broker("postgresql+psycopg2://postgres@127.0.0.1:1/none", FakeClock())
    with pytest.raises(StorageUnavailableError, match="unavailable") as caught:
        broker.sessions()
    assert caught.value.transient


def test_the_broker_works_as_a_dagster_resource(tmp_path: Path) -> None:
    @dg.asset
    def paper_session(paper_broker: PaperBrokerResource) -> float:
        paper_broker.start_session(trial_key="study#14", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE, strategies=BUILT_IN_STRATEGIES)
        return paper_broker.sync(trial_key="study#14", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES).days_elapsed

    broker = LocalPaperBrokerResource(database_url=f"sqlite:///{tmp_path / 'gauntlet.db'}", mode="holdout")
    result = dg.materialize([paper_session], resources={"paper_broker": broker})
    assert result.success and result.output_for_node("paper_session") == 15.0


def test_a_session_an_earlier_version_marked_completed_goes_on(tmp_path: Path) -> None:
    """Earlier versions ended a session when its fixed forward window ran out; now it trades what arrives."""
    url = f"sqlite:///{tmp_path / 'gauntlet.db'}"
    make_broker(f"sqlite:///{tmp_path / 'scratch.db'}", FakeClock()).start_session(
        trial_key="study#16", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE,
        strategies=BUILT_IN_STRATEGIES,
    )
    engine = sa.create_engine(url)
    PAPER_METADATA.create_all(engine)
    with sa.create_engine(f"sqlite:///{tmp_path / 'scratch.db'}").connect() as scratch:
        row = dict(scratch.execute(sa.select(paper_sessions)).mappings().one())
    with engine.begin() as conn:
        # The old schema allowed 'completed'; this one no longer does.
        conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        conn.execute(sa.insert(paper_sessions).values({**row, "status": "completed"}))
    broker = make_broker(url, FakeClock())
    assert [s.status for s in broker.sessions()] == ["running"]
    assert broker.sync(trial_key="study#16", windows=WINDOWS, strategies=BUILT_IN_STRATEGIES).bars_processed == FORWARD_BARS


def test_sessions_of_a_database_from_before_instruments_and_modes_are_holdouts_of_the_default_instrument(
    database_url,
):
    # The paper_sessions table as the first version created it: none of the columns added since.
    old = sa.MetaData()
    sa.Table(
        paper_sessions.name, old,
        *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
          for c in paper_sessions.columns if c.name not in FIRST_VERSION_LACKED),
    )
    sa.Table(paper_bars.name, old, *(sa.Column(c.name, c.type, primary_key=c.primary_key) for c in paper_bars.columns))
    stamps = [int(dt.datetime(2026, 1, 1, hour, tzinfo=dt.UTC).timestamp() * 1e6) for hour in (22, 23)]
    stamps.append(int(dt.datetime(2026, 1, 2, 0, tzinfo=dt.UTC).timestamp() * 1e6))
    engine = sa.create_engine(database_url)
    try:
        old.create_all(engine)
        row = {
            "trial_key": "old__t00000000", "strategy_name": STRATEGY, "params_json": "{}", "status": "running",
            "clock": "replay", "speed": 1.0, "fee_bps": 1.0, "slippage_bps": 1.0, "bar_seconds": 3600.0,
            "n_forward_bars": 3, "forward_sha256": "0" * 64, "started_at_us": 0, "updated_at_us": 0,
            "bars_processed": 3, "held": 0.0, "pending_target": 0.0, "equity": 1.0, "last_close": 1.0, "n_fills": 0,
        }
        bar = {"close": 1.0, "held": 0.0, "turnover": 0.0, "gross_return": 0.0, "cost": 0.0, "net_return": 0.0, "equity": 1.0}
        with engine.begin() as conn:
            conn.execute(old.tables[paper_sessions.name].insert().values(**row))
            conn.execute(
                old.tables[paper_bars.name].insert(),
                [{"trial_key": row["trial_key"], "bar_index": i, "timestamp_us": t, **bar} for i, t in enumerate(stamps)],
            )
    finally:
        engine.dispose()
    [session] = make_broker(database_url, FakeClock()).sessions()
    assert (session.trial_key, session.instrument, session.mode, session.origin) == (
        "old__t00000000", DEFAULT_INSTRUMENT, "holdout", 0
    )
    # Its bars give it a first and last bar, and its market days: bar 0 never trades, so 1 January
    # counts for its second bar and 2 January for its third.
    assert (session.first_bar, session.last_bar, session.market_days) == (
        dt.datetime(2026, 1, 1, 22, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, 0, tzinfo=dt.UTC), 2
    )


def _forward_at_once(windows, origin: int):
    """The pure engine over every forward bar from ``origin`` at once, warmed up on all bars before."""
    strategy, params = BUILT_IN_STRATEGIES.build(name=STRATEGY, params=PARAMS)
    history, close, timestamps = windows.forward_from(origin=origin)
    return advance_session(
        state=SessionState(), history_close=history, forward_close=close, forward_timestamps=timestamps,
        n_available=close.size, strategy=strategy, params=params, fee_bps=2.0, slippage_bps=1.0,
    )


def _four_days_arrive(tmp_path: Path):
    """A CSV market of 36 days, its windows pinned (``before``), and its windows once four more days
    have arrived (``after``): the bars, the file (holding all 40 days on return) and the dates."""
    bars = generate_synthetic_market(seed=11, n_days=40)
    path = tmp_path / "prices.csv"
    bars.head(36 * 24).write_csv(path)
    dates, before = _csv_market(path).load_dated_windows()
    bars.write_csv(path)
    _, after = _csv_market(path).load_dated_windows(pinned=dates)
    return bars, path, dates, before, after


def test_a_forward_session_starts_at_the_newest_bar_and_trades_only_bars_that_arrive(
    database_url: str, tmp_path: Path
) -> None:
    bars, _, _, before, after = _four_days_arrive(tmp_path)
    broker = make_broker(database_url, FakeClock(), mode="forward")
    started = broker.start_session(
        trial_key="study#20", strategy_name=STRATEGY, params=PARAMS, windows=before, **VENUE,
        strategies=BUILT_IN_STRATEGIES,
    )
    assert (started.mode, started.origin, started.origin_bar, started.first_bar) == (
        "forward", before.forward.n_bars, before.forward.end, None
    )
    # Every bar it was handed existed when it started: it trades none of them, however long it waits.
    waited = broker.sync(trial_key="study#20", windows=before, strategies=BUILT_IN_STRATEGIES)
    assert (waited.bars_processed, waited.days_elapsed, waited.market_days) == (0, 0.0, 0)

    info = broker.sync(trial_key="study#20", windows=after, strategies=BUILT_IN_STRATEGIES)  # four more days
    new = after.forward.timestamps[before.forward.n_bars :]
    assert (info.bars_processed, info.n_forward_bars, info.days_elapsed) == (4 * 24, 4 * 24, 4.0)
    assert (info.first_bar, info.last_bar) == (bars["timestamp"][36 * 24], bars["timestamp"][-1])
    assert info.market_days == 4  # bar 0 opens day 37 alone; days 37 to 40 have a traded bar after it
    assert info.forward_sha256 == after.forward.sha256

    # The session is the backtester's run over the new bars, warmed up on every bar before them.
    at_once = _forward_at_once(after, before.forward.n_bars)
    report = broker.report(trial_key="study#20")
    assert report.bars.equals(at_once.bars) and report.fills.equals(at_once.fills)
    assert report.bars["timestamp"].to_numpy().astype("datetime64[us]").tolist() == new.astype("datetime64[us]").tolist()

    # A restart (a new venue on the same database) trades nothing twice; the mode is the session's own.
    again = make_broker(database_url, FakeClock(), mode="holdout")
    assert again.sync(trial_key="study#20", windows=after, strategies=BUILT_IN_STRATEGIES) == info
    assert _bar_indexes(database_url, "study#20") == list(range(4 * 24))
    with pytest.raises(PaperTradingError, match="that market_data is older than the session"):
        again.sync(trial_key="study#20", windows=before, strategies=BUILT_IN_STRATEGIES)


def test_a_bar_inserted_before_a_forward_session_is_refused_naming_the_bar(tmp_path: Path) -> None:
    bars, path, dates, before, after = _four_days_arrive(tmp_path)
    broker = make_broker(f"sqlite:///{tmp_path / 'gauntlet.db'}", FakeClock(), mode="forward")
    broker.start_session(
        trial_key="study#21", strategy_name=STRATEGY, params=PARAMS, windows=before, **VENUE,
        strategies=BUILT_IN_STRATEGIES,
    )
    traded = broker.sync(trial_key="study#21", windows=after, strategies=BUILT_IN_STRATEGIES)

    # The feed drops a bar of the day before the session (within the gap tolerance): every bar
    # the session traded moves one place earlier in the forward window.
    bars.filter(pl.col("timestamp") != bars["timestamp"][35 * 24]).write_csv(path)
    _, edited = _csv_market(path).load_dated_windows(pinned=dates)
    first = re.escape(traded.first_bar.isoformat())
    with pytest.raises(PaperTradingError, match=rf"session's first bar was {first} but forward bar {traded.origin} .* "
                       "a bar was inserted or removed before it"):
        broker.sync(trial_key="study#21", windows=edited, strategies=BUILT_IN_STRATEGIES)
    assert broker.report(trial_key="study#21").info == traded


def test_sync_many_advances_every_session_in_one_go_as_sync_does_and_keeps_errors_to_their_session(
    database_url: str, tmp_path: Path
) -> None:
    _, _, _, before, after = _four_days_arrive(tmp_path)
    batched = make_broker(database_url, FakeClock(), mode="forward")
    alone = make_broker(f"sqlite:///{tmp_path / 'alone.db'}", FakeClock(), mode="forward")
    keys = [f"study#{n}" for n in range(30, 34)]
    for broker in (batched, alone):
        for n, key in enumerate(keys):
            broker.start_session(
                trial_key=key, strategy_name=STRATEGY, params={**PARAMS, "lookback": 12 + n}, windows=before,
                **VENUE, strategies=BUILT_IN_STRATEGIES,
            )
    other = small_market(seed=7).load_windows()  # another market: its bars before the origin differ
    windows_of = {**dict.fromkeys(keys, after), "study#99": after, keys[1]: other}
    results = batched.sync_many(windows_of=windows_of, strategies=BUILT_IN_STRATEGIES)
    # What a broker without a batched sync does: one sync per session, errors kept per session.
    one_by_one = PaperBrokerResource.sync_many(alone, windows_of=windows_of, strategies=BUILT_IN_STRATEGIES)
    for outcome in (results, one_by_one):
        assert isinstance(outcome["study#99"], PaperTradingError) and "no paper session" in str(outcome["study#99"])
        assert "not the ones this session traded" in str(outcome[keys[1]])
    for key in (keys[0], *keys[2:]):
        expected = one_by_one[key]
        assert results[key].bars_processed == expected.bars_processed == 4 * 24
        assert results[key].model_dump(exclude={"started_at", "updated_at"}) == expected.model_dump(
            exclude={"started_at", "updated_at"}
        )
        assert batched.report(trial_key=key).bars.equals(alone.report(trial_key=key).bars)
        assert batched.report(trial_key=key).fills.equals(alone.report(trial_key=key).fills)
        assert _bar_indexes(database_url, key) == list(range(4 * 24))
    assert batched.report(trial_key=keys[1]).bars_processed == 0  # refused, nothing recorded
    # Again: nothing new to trade, nothing written twice.
    again = batched.sync_many(windows_of=dict.fromkeys(keys, after), strategies=BUILT_IN_STRATEGIES)
    assert again[keys[0]] == results[keys[0]] and again[keys[1]].bars_processed == 4 * 24


def test_a_session_another_sync_advanced_during_sync_many_is_returned_as_that_sync_left_it(tmp_path: Path) -> None:
    # SQLite: on PostgreSQL the batch holds the session's row lock, so another sync waits for it
    # (test_concurrent_syncs_of_one_session_never_double_insert).
    database_url = f"sqlite:///{tmp_path / 'gauntlet.db'}"
    other = make_broker(database_url, FakeClock(), clock="replay")

    class Interrupted(LocalPaperBrokerResource):
        """Reads the session, then another process syncs it before this one writes."""

        def _advance(self, row, windows, strategies, now, key):
            advanced = super()._advance(row, windows, strategies, now, key)
            other.sync(trial_key=key, windows=windows, strategies=strategies)
            return advanced

    other.start_session(
        trial_key="study#40", strategy_name=STRATEGY, params=PARAMS, windows=WINDOWS, **VENUE,
        strategies=BUILT_IN_STRATEGIES,
    )
    [result] = Interrupted(database_url=database_url, mode="holdout").sync_many(
        windows_of={"study#40": WINDOWS}, strategies=BUILT_IN_STRATEGIES
    ).values()
    assert result.bars_processed == FORWARD_BARS
    assert _bar_indexes(database_url, "study#40") == list(range(FORWARD_BARS))
