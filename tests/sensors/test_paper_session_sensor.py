"""Wall-clock paper sessions: pending until mature, then graded by paper_session_sensor."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from resources.market_data import SyntheticMarketDataResource
from resources.paper_broker import LocalPaperBrokerResource
from simulations.strategies import BUILT_IN_STRATEGIES
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, demo_gate_policy, execute_request, local_definitions, materialized

GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
KEY = "demo__t00000000"
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


class ClockedBroker(LocalPaperBrokerResource):
    """The venue with its clock read from a file, so the test moves time between runs."""

    clock_file: str

    def now(self) -> dt.datetime:
        with open(self.clock_file) as handle:
            return dt.datetime.fromisoformat(json.load(handle))


def _paper_tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    """One tick of the paper session sensor."""
    sensor = defs.resolve_sensor_def("paper_session_sensor")
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
        return sensor(context)


def _set_clock(path, moment: dt.datetime) -> None:
    path.write_text(json.dumps(moment.isoformat()))


def wall_clock_broker(tmp_path) -> tuple[ClockedBroker, Path]:
    """A paper broker on the wall clock at an hour of market time per second, and its clock file (at START)."""
    clock = tmp_path / "clock.json"
    _set_clock(clock, START)
    broker = ClockedBroker(
        database_url=f"sqlite:///{tmp_path / 'gauntlet.db'}",
        mode="holdout",
        clock="wall",
        speed=3600.0,
        clock_file=str(clock),
    )
    return broker, clock


def test_pending_sessions_are_neither_failed_nor_graded_until_mature(optuna_url, tmp_path, shared_instance):
    broker, clock = wall_clock_broker(tmp_path)
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    defs = local_definitions(optuna_url, tmp_path, paper_broker=broker)
    ticker = Ticker(defs, shared_instance)
    ticker.tick_until_idle()
    assert all(r.success for r in ticker.results)
    assert KEY in materialized(shared_instance, "cge_stress_report")
    assert materialized(shared_instance, "paper_trading_grade") == set()
    gate = dg.AssetCheckKey(dg.AssetKey("paper_trading_grade"), "paper_trading_gate")
    statuses = {i.latest_execution_status.value for i in shared_instance.event_log_storage.get_asset_check_partition_info([gate])}
    assert "FAILED" not in statuses and "SUCCEEDED" not in statuses
    observed = shared_instance.fetch_observations(dg.AssetKey("paper_trading_grade"), limit=1).records
    assert observed[0].asset_observation.metadata["status"].value == "pending"

    _set_clock(clock, START + dt.timedelta(seconds=6 * 24))  # 6 days of market time
    assert _paper_tick(defs, shared_instance).run_requests in (None, [])

    _set_clock(clock, START + dt.timedelta(seconds=7 * 24 + 1))  # a little over 7 days
    result = _paper_tick(defs, shared_instance)
    [request] = result.run_requests
    assert request.partition_key == KEY
    graded = execute_request(defs, shared_instance, request)
    assert graded.success
    assert materialized(shared_instance, "paper_trading_grade") == {KEY}
    [mat] = [m for m in graded.asset_materializations_for_node("trial_gauntlet") if m.asset_key.path == ["paper_trading_grade"]]
    assert 7.0 <= mat.metadata["days"].value < 7.1
    assert _paper_tick(defs, shared_instance).run_requests in (None, [])  # graded once


def test_trials_with_a_run_in_flight_are_not_asked_for_again(instance):
    from sensors.paper_session_sensor import in_flight_partitions

    instance.add_dynamic_partitions("trials", ["demo__t00000000", "demo__t00000001", "demo__t00000002", "other__t00000000"])
    for run_id, tags in (
        ("a" * 8 + "-0000-0000-0000-" + "0" * 12, {"dagster/partition": "other__t00000000"}),
        (
            "b" * 8 + "-0000-0000-0000-" + "0" * 12,
            {
                "dagster/asset_partition_range_start": "demo__t00000000",
                "dagster/asset_partition_range_end": "demo__t00000001",
            },
        ),
    ):
        instance.add_run(dg.DagsterRun(job_name="trial_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    assert in_flight_partitions(instance, "trial_job") == {"other__t00000000", "demo__t00000000", "demo__t00000001"}


def test_an_undecided_sequential_test_keeps_the_session_trading_until_its_window_ends(optuna_url, tmp_path, shared_instance):
    broker, clock = wall_clock_broker(tmp_path)
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    policy = demo_gate_policy({"paper": {"sequential": {"enabled": True}}})
    defs = local_definitions(optuna_url, tmp_path, paper_broker=broker, gate_policy=policy)
    Ticker(defs, shared_instance).tick_until_idle()

    def grade_at(market_days: float) -> dg.ExecuteInProcessResult:
        _set_clock(clock, START + dt.timedelta(seconds=market_days * 24))
        [request] = _paper_tick(defs, shared_instance).run_requests
        # Keyed by market day, not by bar: a session the test keeps open is graded once a day.
        [session] = [s for s in broker.sessions() if s.trial_key == KEY]
        assert request.run_key == f"paper-grade:{KEY}:{session.market_days}"
        assert [r.run_key for r in _paper_tick(defs, shared_instance).run_requests] == [request.run_key]
        result = execute_request(defs, shared_instance, request)
        assert result.success
        return result

    # Mature but undecided (the demo market holds no edge), with bars still to come: pending.
    grade_at(10)
    assert materialized(shared_instance, "paper_trading_grade") == set()
    [observed] = shared_instance.fetch_observations(dg.AssetKey("paper_trading_grade"), limit=1).records
    assert "sequential test undecided after 10 market days" in observed.asset_observation.description

    # The whole 60-day forward window traded and still undecided: rejected by the test itself.
    graded = grade_at(61)
    assert materialized(shared_instance, "paper_trading_grade") == {KEY}
    [evaluation] = [
        e for e in graded.get_asset_check_evaluations() if e.check_name == "paper_trading_gate"
    ]
    assert not evaluation.passed and "sequential_e_value" in evaluation.description
    [mat] = [m for m in graded.asset_materializations_for_node("trial_gauntlet") if m.asset_key.path == ["paper_trading_grade"]]
    assert mat.metadata["market_days"].value == 60
    assert mat.metadata["sequential_test"].value.startswith("required: Sharpe > 0 at 95%, undecided over 60 market days, largest e-value")


def test_a_session_on_an_instrument_without_data_waits_and_the_others_are_graded(optuna_url, tmp_path, shared_instance):
    broker, clock = wall_clock_broker(tmp_path)
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    defs = local_definitions(optuna_url, tmp_path, paper_broker=broker)
    Ticker(defs, shared_instance).tick_until_idle()
    # A session left from an instrument that was removed from the configuration since.
    market = SyntheticMarketDataResource()
    broker.start_session(
        trial_key="gone__t00000000", strategy_name="momentum", params=GOOD, instrument="gone",
        windows=market.load_windows(), costs_bps=(market.fee_bps, market.slippage_bps), strategies=BUILT_IN_STRATEGIES,
    )
    _set_clock(clock, START + dt.timedelta(seconds=7 * 24 + 1))
    assert [r.partition_key for r in _paper_tick(defs, shared_instance).run_requests] == [KEY]
    sessions = {s.trial_key: s for s in broker.sessions()}
    assert sessions["gone__t00000000"].bars_processed == 0 and sessions[KEY].days_elapsed > 7


def test_a_session_whose_market_changed_under_it_is_refused_and_the_others_are_graded(
    optuna_url, tmp_path, shared_instance
):
    broker, clock = wall_clock_broker(tmp_path)
    add_complete_trials(optuna_url, "demo", [0.5], params=[GOOD])
    defs = local_definitions(optuna_url, tmp_path, paper_broker=broker)
    Ticker(defs, shared_instance).tick_until_idle()
    # A session that traded a day of other bars on the same instrument: its market is not this one.
    other = SyntheticMarketDataResource(seed=7)
    broker.start_session(
        trial_key="other__t00000000", strategy_name="momentum", params=GOOD, instrument="default",
        windows=other.load_windows(), costs_bps=(other.fee_bps, other.slippage_bps), strategies=BUILT_IN_STRATEGIES,
    )
    _set_clock(clock, START + dt.timedelta(seconds=24))
    traded = broker.sync(trial_key="other__t00000000", windows=other.load_windows(), strategies=BUILT_IN_STRATEGIES)
    assert traded.bars_processed == 24

    _set_clock(clock, START + dt.timedelta(seconds=7 * 24 + 1))
    assert [r.partition_key for r in _paper_tick(defs, shared_instance).run_requests] == [KEY]
    sessions = {s.trial_key: s for s in broker.sessions()}
    assert sessions["other__t00000000"] == traded and sessions[KEY].days_elapsed > 7
