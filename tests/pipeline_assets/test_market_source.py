"""The market source observed, and market_data rebuilt by Dagster's automation when it or the
market's configuration changes: appended bars reach the paper session without moving train or
backtest (trials stay fresh); a forward session trades only the bars that arrive after its trial
passed gate 2; bad bars in the feed reach no session; changed windows are a new data version
(trials show as stale)."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from resources.dagster_private import DATA_VERSION_TAG
from gauntlet.config import GauntletConfig, location
from gauntlet.status import read_status
from gauntlet.run import _ensure_shared
from pipeline_assets.shared_assets import (
    MARKET_DATA,
    MARKET_SOURCE,
    SHARED_ASSET_KEYS,
    latest_source_version,
    recorded_window_dates,
    stale_instruments,
)
from resources.market_data import FileMarketDataResource
from simulations.constants import DEFAULT_INSTRUMENT
from resources.paper_broker import LocalPaperBrokerResource
from simulations.market import generate_synthetic_market
from tests.conftest import add_complete_trials
from tests.dagster_helpers import (
    Ticker,
    demo_gate_policy,
    execute_request,
    instance_tables,
    local_definitions,
    materialized,
)
from tests.graphql_support import graphql_workspace, write_code_location

GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
KEY = "demo__t00000000"
#: Longer than the 60-day forward window at first, so the session is still trading when bars arrive.
MIN_PAPER_DAYS = 62
DAYS, MORE_DAYS = 605, 4
PRICES = ("open", "high", "low", "close")

CODE_LOCATION = """
from pathlib import Path
from tests.pipeline_assets.test_market_source import market_definitions

defs = market_definitions({optuna_url!r}, Path({home!r}), backtest_days={backtest_days!r})
"""


def market_definitions(
    optuna_url: str, home: Path, *, backtest_days: float = 180, mode: str = "holdout", min_days: float = MIN_PAPER_DAYS
) -> dg.Definitions:
    """The local definitions on the CSV market under ``home``, with the windows, paper mode and
    minimum paper days given."""
    market = FileMarketDataResource(path=str(home / "prices.csv"), backtest_days=backtest_days)
    broker = LocalPaperBrokerResource(
        database_url=location(GauntletConfig(home=home), "deployment.database"), mode=mode
    )
    policy = demo_gate_policy({"paper": {"min_days": min_days}})
    return local_definitions(optuna_url, home, market=market, paper_broker=broker, gate_policy=policy)


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str) -> dg.SensorResult:
    """One tick of sensor ``name``; the asset events it reports are recorded, as the daemon does."""
    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
        result = sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def _paper_status(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict:
    """The trial's ``paper`` in `gauntlet status --json`, from the read model the command uses."""
    with instance_tables(instance) as tables:
        report = read_status(
            tables, registry=defs.resources["registry"], paper_sessions=defs.resources["paper_broker"],
            paper=defs.resources["gate_policy"].policy().paper, failed_runs=10,
        )
    [trial] = [t.to_json() for t in report.trials if t.partition_key == KEY]
    return trial["paper"]


def _automate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor) -> tuple[set[dg.AssetKey], object]:
    """One tick of the automation condition sensor; what it requests is built in one run, as the daemon would."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = {key for key in SHARED_ASSET_KEYS if result.get_num_requested(key)}
    for instrument in sorted({p for key in requested for p in result.get_requested_partitions(key)}):
        selection = [key for key in requested if instrument in result.get_requested_partitions(key)]
        run = defs.resolve_job_def("shared_job").execute_in_process(
            instance=instance, asset_selection=selection, partition_key=instrument
        )
        assert run.success
    return requested, result.cursor


def _built(instance: dg.DagsterInstance) -> tuple[str, dict[str, str], dict[str, dict]]:
    """market_data's latest data version, window dates and per-window metadata rows."""
    materialization = instance.get_latest_materialization_event(MARKET_DATA).asset_materialization
    dates, _ = recorded_window_dates(instance, DEFAULT_INSTRUMENT)
    rows = {row.data["window"]: row.data for row in materialization.metadata["windows"].value.records}
    return materialization.tags[DATA_VERSION_TAG], dates.as_dict(), rows


@pytest.fixture
def bars(tmp_path: Path):
    (tmp_path / "dagster").mkdir()
    return generate_synthetic_market(n_days=DAYS + MORE_DAYS)


def test_appended_bars_rebuild_market_data_and_the_session_trades_them_with_trials_fresh(
    optuna_url: str, tmp_path: Path, bars
):
    bars.head(DAYS * 24).write_csv(tmp_path / "prices.csv")
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    defs = market_definitions(optuna_url, tmp_path)
    broker = defs.resources["paper_broker"]
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        Ticker(defs, instance).tick_until_idle()
        [session] = broker.sessions()
        assert (session.trial_key, session.bars_processed) == (KEY, 60 * 24)  # pending: 60 of 62 days
        version, dates, rows = _built(instance)

        # The shared run observed the instrument's source, as it is, before building market_data from it.
        [observed] = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=MARKET_SOURCE, asset_partitions=[DEFAULT_INSTRUMENT]), limit=1
        ).records
        [built] = instance.fetch_materializations(MARKET_DATA, limit=1).records
        assert observed.storage_id < built.storage_id and observed.run_id == built.run_id
        assert latest_source_version(instance, DEFAULT_INSTRUMENT) == defs.resources["instruments"].market(
            DEFAULT_INSTRUMENT
        ).source_version()
        assert _tick(defs, instance, "market_source_sensor").asset_events == []  # the same bars: nothing new
        requests, cursor = _automate(defs, instance, None)
        assert requests == set()  # the shared assets were just built for the trial

        bars.write_csv(tmp_path / "prices.csv")  # four more days arrive
        before = latest_source_version(instance, DEFAULT_INSTRUMENT)
        observed = _tick(defs, instance, "market_source_sensor")
        assert [e.asset_key for e in observed.asset_events] == [MARKET_SOURCE]
        assert latest_source_version(instance, DEFAULT_INSTRUMENT) != before
        requested, cursor = _automate(defs, instance, cursor)
        assert requested == set(SHARED_ASSET_KEYS)
        again, cursor = _automate(defs, instance, cursor)
        assert again == set()  # rebuilt once, not again

        new_version, new_dates, new_rows = _built(instance)
        assert (new_version, new_dates) == (version, dates)  # train and backtest did not move
        assert all(new_rows[w]["sha256"] == rows[w]["sha256"] for w in ("train", "backtest"))
        assert int(new_rows["forward"]["bars"]) == int(rows["forward"]["bars"]) + MORE_DAYS * 24

        [grade] = _tick(defs, instance, "paper_session_sensor").run_requests
        assert broker.report(trial_key=KEY).bars["bar_index"].to_list() == list(range((60 + MORE_DAYS) * 24))
        assert execute_request(defs, instance, grade).success
        assert materialized(instance, "paper_trading_grade") == {KEY}
        assert materialized(instance, "backtest_results") == {KEY}  # never re-evaluated, never stale

        # A bar inside the backtest window corrected: the data trials were judged on changed.
        row = pl.int_range(pl.len()) == 400 * 24
        bars.with_columns(pl.when(row).then(pl.col(c) * 1.01).otherwise(pl.col(c)) for c in PRICES).write_csv(
            tmp_path / "prices.csv"
        )
        assert _tick(defs, instance, "market_source_sensor").asset_events
        assert _automate(defs, instance, cursor)[0] == set(SHARED_ASSET_KEYS)
        corrected, corrected_dates, _ = _built(instance)
        assert corrected != version and corrected_dates == dates


def test_a_forward_session_trades_only_bars_that_arrive_after_gate_two_and_bad_bars_reach_no_session(
    optuna_url: str, tmp_path: Path, bars
):
    bars.head(DAYS * 24).write_csv(tmp_path / "prices.csv")
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    defs = market_definitions(optuna_url, tmp_path, mode="forward", min_days=3)
    broker = defs.resources["paper_broker"]
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        Ticker(defs, instance).tick_until_idle()
        # Gate 2 passed: the session starts after the newest bar, and has nothing to trade yet.
        [session] = broker.sessions()
        newest = bars["timestamp"][DAYS * 24 - 1]
        assert (session.mode, session.origin_bar, session.bars_processed) == ("forward", newest, 0)
        assert materialized(instance, "paper_trading_grade") == set()
        assert _tick(defs, instance, "paper_session_sensor").run_requests == []
        assert _paper_status(defs, instance) == {
            "mode": "forward", "started_after": newest.isoformat(), "first_bar": None, "last_bar": None,
            "market_days": 0, "bars": 0, "state": "awaiting_bars",
        }
        cursor = _automate(defs, instance, None)[1]

        # The feed delivers a day with a duplicated bar: market_data cannot be built, naming the bar,
        # and the session trades none of it.
        day = bars.slice(DAYS * 24, 24)
        pl.concat([bars.head(DAYS * 24), day, day.tail(1)]).write_csv(tmp_path / "prices.csv")
        assert _tick(defs, instance, "market_source_sensor").asset_events
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        failed = defs.resolve_job_def("shared_job").execute_in_process(
            instance=instance, asset_selection=[MARKET_DATA], partition_key=DEFAULT_INSTRUMENT, raise_on_error=False
        )
        assert evaluation.get_num_requested(MARKET_DATA) == 1 and not failed.success
        [failure] = [e for e in failed.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.to_string()
        assert f"prices.csv: row {DAYS * 24 + 25}: rule duplicate_timestamp" in message
        assert str(day["timestamp"][-1]) in message
        assert _tick(defs, instance, "paper_session_sensor").run_requests == []
        assert broker.sessions() == [session]
        # The daemon's next look: a deterministic failure is not retried until the feed changes.
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
        assert again.total_requested == 0
        cursor = again.cursor

        # The feed is mended and four days arrive: the session trades exactly them, and is graded.
        bars.write_csv(tmp_path / "prices.csv")
        assert _tick(defs, instance, "market_source_sensor").asset_events
        assert _automate(defs, instance, cursor)[0] == set(SHARED_ASSET_KEYS)
        [grade] = _tick(defs, instance, "paper_session_sensor").run_requests
        traded = broker.report(trial_key=KEY).bars
        assert traded["timestamp"].to_list() == bars["timestamp"].tail(MORE_DAYS * 24).to_list()
        trading = _paper_status(defs, instance)
        assert (trading["state"], trading["bars"], trading["market_days"]) == ("trading", MORE_DAYS * 24, MORE_DAYS)
        assert trading["first_bar"] == bars["timestamp"][DAYS * 24].isoformat()
        assert trading["last_bar"] == bars["timestamp"][-1].isoformat()
        assert execute_request(defs, instance, grade).success
        assert _paper_status(defs, instance)["state"] == "graded"
        broker.stop(trial_key=KEY)
        assert _paper_status(defs, instance)["state"] == "stopped"
        [event] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("paper_trading_grade"), asset_partitions=[KEY]), limit=1
        ).records
        metadata = event.asset_materialization.metadata
        assert metadata["paper_mode"].value == "forward"
        assert metadata["started_after_bar"].value == newest.isoformat()
        assert metadata["first_bar"].value == bars["timestamp"][DAYS * 24].isoformat()
        assert metadata["market_days"].value == MORE_DAYS
        # Four days are too few for this grade's own 14-day check: gate 3 rejects it, on forward bars.
        assert event.asset_materialization.description.startswith("demo#0: grade D (forward paper trading)")
        assert defs.resources["registry"].decisions(partition_key=KEY) == []


def test_changed_windows_rebuild_market_data_as_a_new_version_and_trials_show_stale(
    optuna_url: str, tmp_path: Path, bars
):
    bars.head(DAYS * 24).write_csv(tmp_path / "prices.csv")
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    defs = market_definitions(optuna_url, tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        Ticker(defs, instance).tick_until_idle()
        version, dates, _ = _built(instance)
        requests, cursor = _automate(defs, instance, None)
        assert requests == set()

        # The operator shortens the backtest window: the code location reloads with a new configuration.
        changed = market_definitions(optuna_url, tmp_path, backtest_days=170)
        requested, cursor = _automate(changed, instance, cursor)
        assert requested == set(SHARED_ASSET_KEYS)
        assert _automate(changed, instance, cursor)[0] == set()
        new_version, new_dates, _ = _built(instance)
        assert new_version != version and new_dates["backtest_start"] > dates["backtest_start"]

        location = write_code_location(
            tmp_path / "location", CODE_LOCATION.format(optuna_url=optuna_url, home=str(tmp_path), backtest_days=170)
        )
        with graphql_workspace(instance, location) as ui:
            status, causes = ui.stale_by_partition("backtest_results", [KEY])[KEY]
            assert status == "STALE"
            assert [c["reason"] for c in causes if c["key"]["path"] == MARKET_DATA.path] == ["has a new data version"]


def test_gauntlet_run_builds_bars_that_arrived_without_the_daemon_and_keeps_the_last_good_build_on_a_bad_feed(
    optuna_url: str, tmp_path: Path, bars
):
    """`gauntlet run` on a trial with an open session: the bars its instrument's source gained since
    the latest market_data build are built first (no daemon runs the automation), so the trial's
    session trades them; a feed with a bad bar fails that build and the run goes on with the last
    good one."""
    bars.head(DAYS * 24).write_csv(tmp_path / "prices.csv")
    defs = market_definitions(optuna_url, tmp_path)
    instruments = defs.resources["instruments"]
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        out = io.StringIO()
        assert _ensure_shared(defs, instance, instruments, {"demo"}, out) and "instrument default" in out.getvalue()
        _, _, rows = _built(instance)
        assert stale_instruments(instance, instruments, names=[DEFAULT_INSTRUMENT]) == []
        out = io.StringIO()
        assert _ensure_shared(defs, instance, instruments, {"demo"}, out) and out.getvalue() == ""  # nothing new

        bars.write_csv(tmp_path / "prices.csv")  # four more days; no sensor, no automation
        assert stale_instruments(instance, instruments, names=[DEFAULT_INSTRUMENT]) == [DEFAULT_INSTRUMENT]
        assert _ensure_shared(defs, instance, instruments, {"demo"}, io.StringIO())
        _, _, grown = _built(instance)
        assert int(grown["forward"]["bars"]) == int(rows["forward"]["bars"]) + MORE_DAYS * 24
        assert stale_instruments(instance, instruments, names=[DEFAULT_INSTRUMENT]) == []

        day = bars.slice(DAYS * 24, 24)
        pl.concat([bars, day.tail(1)]).write_csv(tmp_path / "prices.csv")  # a duplicated bar
        assert stale_instruments(instance, instruments, names=[DEFAULT_INSTRUMENT]) == [DEFAULT_INSTRUMENT]
        out = io.StringIO()
        assert _ensure_shared(defs, instance, instruments, {"demo"}, out)
        assert "prices.csv" in out.getvalue() and "go on with the last good build" in out.getvalue(), out.getvalue()
        assert _built(instance)[2] == grown
