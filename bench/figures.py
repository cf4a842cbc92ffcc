"""The benchmark figures: name -> (measure, unit, target, "lower"|"higher" is better)."""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.studies import bulk_study


def _sensor_tick_ms(n_trials: int, n_new: int = 10, repeats: int = 5) -> float:
    """Median wall time of one `optuna_trial_sensor` tick that finds ``n_new`` new trials."""
    import dagster as dg

    from pipeline_assets.definitions import build_definitions
    from gauntlet.config import GauntletConfig
    from gauntlet.environment import build_resources
    from resources.optuna_study import OptunaStudyResource, StudyCursor
    from sensors.optuna_trial_sensor import SensorCursor, encode_cursor

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        watermark = bulk_study(url, "bench", n_trials) - n_new
        config = GauntletConfig(home=Path(tmp))
        resources = {**build_resources(config), "optuna_study": OptunaStudyResource(storage_url=url)}
        defs = build_definitions(config=config, resources=resources)
        sensor = defs.resolve_sensor_def("optuna_trial_sensor")
        cursor = encode_cursor(SensorCursor(studies={"bench": StudyCursor(watermark=watermark)}, owed={}))
        timings = []
        with dg.instance_for_test(temp_dir=tmp) as instance:
            assert defs.resolve_job_def("shared_job").execute_in_process(instance=instance, partition_key="default").success
            for i in range(repeats + 1):
                with dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
                ) as context:
                    started = time.perf_counter()
                    result = sensor(context)
                    elapsed = time.perf_counter() - started
                assert sum(int(r.tags["gauntlet/trials"]) for r in result.run_requests) == n_new
                if i:  # the first tick opens the storage: the daemon pays that once
                    timings.append(elapsed)
        return statistics.median(timings) * 1000


def _best_of(run: Callable[[], object], repeats: int = 5) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def _backtest_bar_steps_per_second() -> float:
    """Backtest throughput on 1,000,000 bars with fees and slippage, one core."""
    import numpy as np

    from simulations.backtest import run_backtest

    rng = np.random.default_rng(0)
    n = 1_000_000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    positions = np.clip(np.round(rng.normal(0.0, 1.0, n)), -1.0, 1.0) * 0.7
    return n / _best_of(lambda: run_backtest(close=close, positions=positions, fee_bps=2.0, slippage_bps=1.0))


def _cge_solve_200_seconds() -> float:
    """Calibrating STDCGE and solving the 200 scenario equilibria."""
    from simulations.cge.model import calibrate
    from simulations.cge.sam import hosoe_sam
    from simulations.cge.scenarios import draw_scenarios, solve_scenarios

    def solve() -> None:
        calibration = calibrate(hosoe_sam())
        solve_scenarios(calibration=calibration, scenarios=draw_scenarios(calibration=calibration))

    return _best_of(solve, repeats=3)


@functools.cache
def _reference_trial() -> tuple:
    """The default market's windows, 200 stress scenarios over its backtest window, and the reference momentum trial."""
    from pipeline_assets.shared_assets import CgeScenarioConfig, build_stress_scenarios
    from simulations.gauntlet import StudyContext, TrialCase
    from simulations.market import generate_synthetic_market, split_windows
    from simulations.trial import TrialSnapshot

    windows = split_windows(frame=generate_synthetic_market())
    scenarios = build_stress_scenarios(config=CgeScenarioConfig(), market_data=windows)[0]
    snapshot = TrialSnapshot.build(
        study_name="bench", number=0, trial_id=0, state="COMPLETE",
        params={"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003}, values=(1.0,),
        user_attrs={"strategy": "momentum"},
    )
    trial = TrialCase(key="k", snapshot=snapshot, context=StudyContext(n_trials=1, sharpe_variance_annual=0.0))
    return windows, scenarios, trial


def _reference_inputs():
    """Fresh inputs for the reference trial: a new replay venue, so its paper session is traded again."""
    from simulations.gates import GatePolicy
    from simulations.gauntlet import GauntletInputs, ReplayVenue
    from simulations.strategies import BUILT_IN_STRATEGIES

    windows, scenarios, _ = _reference_trial()
    return GauntletInputs(
        windows=windows, scenarios=scenarios, policy=GatePolicy(), fee_bps=2.0, slippage_bps=1.0,
        paper=ReplayVenue(windows=windows, fee_bps=2.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES),
        strategies=BUILT_IN_STRATEGIES,
    )


def _stress_one_trial_seconds() -> float:
    """One trial's positions and stress report over 200 scenario paths (backtest window length)."""
    from simulations.gauntlet import evaluate_stress

    inputs, trial = _reference_inputs(), _reference_trial()[2]
    return _best_of(lambda: evaluate_stress(trial, inputs))


def _look_ahead_check_share() -> float:
    """The look-ahead check's time over one trial's evaluation by every gate (which includes the check).

    The reference momentum trial on the default market: the check on the backtest window with
    its history; the evaluation is :func:`simulations.gauntlet.evaluate_trial` with every gate
    judged (backtest, 200 stress paths, a replayed paper session), each timing the best of five.
    """
    from simulations.causality import check_causality
    from simulations.gauntlet import evaluate_trial
    from simulations.strategies import BUILT_IN_STRATEGIES

    windows, _, trial = _reference_trial()
    strategy, params = BUILT_IN_STRATEGIES.build(name=trial.strategy_name, params=trial.snapshot.params)
    history = windows.history_before(name="backtest")
    check = _best_of(lambda: check_causality(strategy=strategy, params=params, close=windows.backtest.close, history=history))
    evaluation = _best_of(lambda: evaluate_trial(trial, _reference_inputs(), every_gate=True))
    return check / evaluation


E2E_TRIALS = 1_000
E2E_SAMPLE_ONE_PER_RUN = 12


@functools.cache
def _e2e_batched() -> dict[str, float]:
    from bench.e2e import run_daemon_until_done

    return run_daemon_until_done(E2E_TRIALS)


@functools.cache
def _e2e_one_per_run() -> dict[str, float]:
    from bench.e2e import run_daemon_until_done

    return run_daemon_until_done(E2E_SAMPLE_ONE_PER_RUN, max_trials_per_run=1)


def _speedup() -> float:
    """Seconds per trial one-trial-per-run over seconds per trial batched."""
    single = _e2e_one_per_run()["seconds"] / E2E_SAMPLE_ONE_PER_RUN
    return single / (_e2e_batched()["seconds"] / E2E_TRIALS)


def _tick_ratio() -> float:
    return _sensor_tick_ms(10_000) / _sensor_tick_ms(100)


def _gauntlet_help_seconds(repeats: int = 5) -> float:
    """Best of ``repeats`` cold runs of `gauntlet --help` (a new process each: what a person waits)."""
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / "gauntlet"), "--help"]
    return _best_of(lambda: subprocess.run(command, check=True, capture_output=True, timeout=60), repeats=repeats)


def _gauntlet_stop_seconds(repeats: int = 5) -> float:
    """Best of ``repeats`` cold runs of `gauntlet stop` on an existing registry (the demo
    configuration's local database): how long the emergency stop takes to type into effect."""
    import os
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / "gauntlet"), "stop", "--reason", "bench", "--by", "cli"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {name: value for name, value in os.environ.items() if not name.startswith("GAUNTLET_")}
        env |= {"GAUNTLET_HOME": tmp, "GAUNTLET_ENV": "local"}
        subprocess.run(command, check=True, capture_output=True, timeout=60, env=env)  # creates the registry
        return _best_of(
            lambda: subprocess.run(command, check=True, capture_output=True, timeout=60, env=env), repeats=repeats
        )


@functools.cache
def _gauntlet_status_seconds(n_trials: int = 10_000, repeats: int = 5) -> dict[str, float]:
    """`gauntlet status` on ``n_trials`` trials: the median of ``repeats`` in-process calls with
    ``--json`` (``in_process``: every trial's rejection read too), and of ``repeats`` new processes
    of the plain command (``cold``: what a person at a terminal waits, imports included).

    The instance uses the project's dagster.yaml (SQLite) and is filled by real runs of a
    stand-in for `trial_gauntlet` (same asset and check keys and partitions, no numerics) over
    batches of MAX_TRIALS_PER_RUN trials, so it holds what production holds: planned and
    evaluated checks per partition, materializations, run records with partition ranges, paper
    sessions and registry decisions. Funnel: 30 % pass gate 1, a third of those gate 2, 5 % of
    those still paper trading, a quarter of the graded ones decided; one run in four fails one
    trial as `fail_for` does, two runs fail as a whole before any trial, the last four batches
    are in flight. Each run's event-log writes are committed in one transaction per SQLite shard:
    the same rows as usual, without a connection and an fsync per event (~10 ms each).
    """
    import contextlib
    import io
    import json
    import os
    import shutil
    import subprocess
    import sys
    from unittest import mock

    import dagster as dg
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from pipeline_assets.stage_table import GATE_CHECKS, TRIAL_ASSET_KEYS
    from gauntlet.cli import main
    from resources.dagster_private import create_run_for_test
    from gauntlet.config import load_config
    from gauntlet.environment import REPO_ROOT, build_resources
    from pipeline_assets.errors import fail_for
    from pipeline_assets.partitions import trials_partitions_def
    from pipeline_assets.trial_keys import MAX_TRIALS_PER_RUN, parse_trial_partition_key
    from simulations.strategies import BUILT_IN_STRATEGIES

    BACKTEST_GATE, CGE_GATE, PAPER_GATE = GATE_CHECKS
    from pipeline_assets.trial_assets import trial_gauntlet
    from resources.deployment_policy import DeploymentPolicyResource
    from resources.market_data import SyntheticMarketDataResource
    from simulations.constants import DEFAULT_INSTRUMENT
    from simulations.deployment import Candidate
    from simulations.errors import MarketDataError, TrialDataError
    from simulations.gates import GatePolicy, GateVerdict, evaluate_paper_gate

    @contextlib.contextmanager
    def one_transaction_per_shard(storage):
        original = storage._connect  # noqa: SLF001 - bench-only batching of the storage's own writes
        open_shards: dict[str, tuple[sa.Engine, sa.Connection]] = {}

        @contextlib.contextmanager
        def connect(shard):
            if shard not in open_shards:
                with original(shard):  # creates the shard's schema on first use
                    pass
                engine = sa.create_engine(storage.conn_string_for_shard(shard), poolclass=NullPool)
                connection = engine.connect()
                connection.begin()
                open_shards[shard] = (engine, connection)
            yield open_shards[shard][1]

        storage._connect = connect  # noqa: SLF001
        try:
            yield
            for _, connection in open_shards.values():
                connection.commit()
        finally:
            for engine, connection in open_shards.values():
                connection.close()
                engine.dispose()
            del storage._connect  # noqa: SLF001

    policy = GatePolicy()
    passed = GateVerdict(gate="backtest_gate", passed=True, reason="all thresholds met")
    paper_passed = evaluate_paper_gate(
        days=20.0, n_trades=60, win_rate=0.6, alpha=0.03, sharpe=2.0, max_drawdown=0.04, total_return=0.05,
        e_value=policy.paper.sequential.threshold, policy=policy,
    )
    assert paper_passed.passed
    params = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
    # The demo's market_data, as a trial run would hand it to the paper venue.
    market = SyntheticMarketDataResource()
    windows = market.load_windows()

    @dg.multi_asset(
        name=trial_gauntlet.node_def.name,
        specs=list(trial_gauntlet.specs),
        check_specs=list(trial_gauntlet.check_specs),
        can_subset=True,
        required_resource_keys={"registry", "paper_broker"},
    )
    def stand_in(context):
        # Resources by key: this module's string annotations cannot name the local types.
        registry, paper_broker = context.resources.registry, context.resources.paper_broker
        keys = list(context.partition_keys)
        if parse_trial_partition_key(keys[0])[1] // MAX_TRIALS_PER_RUN in (37, 113):
            raise MarketDataError("market data file prices.csv is missing")
        settings = DeploymentPolicyResource().settings(policy=policy, live_capacity=registry.live_capacity)
        errors = []
        for key in keys:
            i = parse_trial_partition_key(key)[1]
            yield dg.AssetMaterialization(TRIAL_ASSET_KEYS[0], partition=key, metadata={"trial_number": i})
            if i % 200 == 7:
                errors.append(TrialDataError("params do not validate", trial=key, stage="backtest_results"))
                continue
            for check, asset, ok in ((BACKTEST_GATE, TRIAL_ASSET_KEYS[1], i % 10 < 3), (CGE_GATE, TRIAL_ASSET_KEYS[2], i % 10 == 0)):
                yield dg.AssetMaterialization(asset, partition=key, metadata={"trial_number": i})
                yield dg.AssetCheckEvaluation(asset_key=asset, check_name=check.name, passed=ok, partition=key)
                if not ok:
                    break
            else:
                paper_broker.start_session(
                    trial_key=key, strategy_name="momentum", params=params, instrument=DEFAULT_INSTRUMENT,
                    windows=windows, costs_bps=(market.fee_bps, market.slippage_bps), strategies=BUILT_IN_STRATEGIES,
                )
                if i % 200 == 100:
                    continue  # still paper trading
                yield dg.AssetMaterialization(TRIAL_ASSET_KEYS[3], partition=key, metadata={"grade": "A"})
                yield dg.AssetCheckEvaluation(
                    asset_key=TRIAL_ASSET_KEYS[3], check_name=PAPER_GATE.name, passed=i % 40 == 0, partition=key
                )
                if i % 40 == 0:
                    verdicts = {
                        "backtest_gate": passed,
                        "cge_gate": passed.model_copy(update={"gate": "cge_gate"}),
                        "paper_trading_gate": paper_passed,
                    }
                    candidate = Candidate(
                        study="bench", number=i, partition_key=key, params_hash="bench", code_version="bench",
                        data_hashes={}, verdicts=verdicts, paper_mode="forward",
                    )
                    record = registry.decide_and_record(candidate=candidate, settings=settings, decided_by="pipeline")
                    yield dg.AssetMaterialization(TRIAL_ASSET_KEYS[4], partition=key, metadata={"decision": record.decision})
        fail_for(errors)

    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "gauntlet"
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True)
        shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {"DAGSTER_HOME": str(dagster_home), "GAUNTLET_HOME": str(home), "GAUNTLET_ENV": "local"}
        with mock.patch.dict(os.environ, env):
            resources = build_resources(load_config().config)
            defs = dg.Definitions(
                assets=[stand_in],
                jobs=[dg.define_asset_job("trial_job", selection=[stand_in], executor_def=dg.in_process_executor)],
                resources={"registry": resources["registry"], "paper_broker": resources["paper_broker"]},
            )
            job = defs.resolve_job_def("trial_job")
            keys = [f"bench__t{i:08d}" for i in range(n_trials)]
            batches = [keys[i : i + MAX_TRIALS_PER_RUN] for i in range(0, n_trials, MAX_TRIALS_PER_RUN)]
            with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                instance.add_dynamic_partitions(trials_partitions_def.name, keys)
                for n, batch in enumerate(batches):
                    tags = {
                        "dagster/asset_partition_range_start": batch[0],
                        "dagster/asset_partition_range_end": batch[-1],
                        "gauntlet/study": "bench",
                    }
                    if n >= len(batches) - 4:
                        create_run_for_test(instance, job_name="trial_job", status=dg.DagsterRunStatus.STARTED, tags=tags)
                        continue
                    with one_transaction_per_shard(instance.event_log_storage):
                        job.execute_in_process(instance=instance, tags=tags, raise_on_error=False, run_config=quiet)

            timings = []
            for _ in range(repeats):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    started = time.perf_counter()
                    code = main(["status", "--json"])
                    timings.append(time.perf_counter() - started)
                report = json.loads(out.getvalue())
                assert code == 0 and report["summary"]["trials"] == n_trials, report["summary"]
            command = [str(Path(sys.executable).parent / "gauntlet"), "status"]
            cold = []
            for _ in range(repeats):
                started = time.perf_counter()
                done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300, env=dict(os.environ))
                cold.append(time.perf_counter() - started)
                assert done.stdout.splitlines()[-1].startswith(f"{n_trials} trial(s)"), done.stdout[-300:]
        return {"in_process": statistics.median(timings), "cold": statistics.median(cold)}


def _calibration_seconds_per_study(n_studies: int = 25) -> float:
    """Wall seconds per simulated study of `gauntlet calibrate` with its defaults, ``n_studies`` per market.

    Defaults: 50 Optuna trials per study on the production train window, the best 5 of 20
    and of 50 trials through every gate, null and planted-Sharpe-2 markets, one worker
    process per core. The shared scenarios and the planted edge are built once per run and
    counted too, so this slightly overstates the per-study cost of a 1,000-study run.
    """
    import os

    from pipeline_assets.calibration_assets import run_calibration
    from simulations.calibration import CalibrationSettings
    from simulations.gates import GatePolicy

    settings = CalibrationSettings(n_studies=n_studies)
    return run_calibration(settings=settings, policy=GatePolicy(), workers=os.cpu_count() or 1).seconds_per_study


def _paper_advance_seconds(n_sessions: int = 1_000) -> float:
    """Wall time to advance ``n_sessions`` open forward paper sessions by one new bar each, as the
    paper sensor does (one `sync_many` of them all, SQLite), on the demo market.

    The sessions start at the newest bar of the market less two bars; each then trades the next
    bar as it arrives (a rebuilt `market_data` one bar longer), and the second arrival is timed.
    """
    from resources.market_data import SyntheticMarketDataResource
    from simulations.constants import DEFAULT_INSTRUMENT
    from resources.paper_broker import LocalPaperBrokerResource
    from simulations.market import cut_windows
    from simulations.strategies import BUILT_IN_STRATEGIES

    market = SyntheticMarketDataResource()
    dates, _ = market.load_dated_windows()
    frame = market.load_frame()
    arrivals = [cut_windows(frame=frame.head(frame.height - late), dates=dates) for late in (2, 1, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalPaperBrokerResource(database_url=f"sqlite:///{tmp}/gauntlet.db", mode="forward")
        for i in range(n_sessions):
            params = {"lookback": 24 + i % 400, "vol_lookback": 72, "target_bar_vol": 0.003}
            broker.start_session(
                trial_key=f"bench__t{i:08d}", strategy_name="momentum", params=params, instrument=DEFAULT_INSTRUMENT,
                windows=arrivals[0], costs_bps=(market.fee_bps, market.slippage_bps), strategies=BUILT_IN_STRATEGIES,
            )

        def advance(windows) -> float:
            started = time.perf_counter()
            keys = [session.trial_key for session in broker.sessions()]
            broker.sync_many(windows_of=dict.fromkeys(keys, windows), strategies=BUILT_IN_STRATEGIES)
            return time.perf_counter() - started

        advance(arrivals[1])
        return advance(arrivals[2])


def _load_1m_hourly_bars_with_calendar_seconds() -> float:
    """Loading and validating a CSV of 1,000,000 hourly FX bars (8 pairs, 2006-2026) on the 24/5 calendar.

    The bars are every hour the calendar is open (weekends, Christmas and New Year closed),
    so every rule runs over every row, the calendar's gap check included.
    """
    import numpy as np
    import polars as pl

    from simulations.calendars import market_calendar
    from simulations.constants import CALENDAR_24_5
    from simulations.market import load_market_file

    pairs, per_pair, hour_us = 8, 125_000, 3_600_000_000
    start_us = 1_136_073_600_000_000  # 2006-01-01 UTC
    sessions = market_calendar(code=CALENDAR_24_5).sessions(start_us=start_us, end_us=start_us + 22 * 365 * 86_400 * 10**6)
    hours = np.concatenate([np.arange(o, c, hour_us) for o, c in zip(sessions.opens, sessions.closes, strict=True)])
    hours = hours[hours >= start_us][:per_pair]
    rng = np.random.default_rng(17)
    frames = []
    for pair in range(pairs):
        close = np.exp(np.cumsum(rng.normal(0.0, 1e-3, per_pair)))
        frames.append(
            pl.DataFrame(
                {
                    "timestamp": pl.Series(hours).cast(pl.Datetime("us", "UTC")),
                    "symbol": f"PAIR{pair}",
                    "open": close,
                    "high": close * 1.0005,
                    "low": close * 0.9995,
                    "close": close,
                    "volume": np.ones(per_pair),
                }
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fx_hourly.csv"
        pl.concat(frames).write_csv(path)
        return _best_of(lambda: load_market_file(path=path, calendar=CALENDAR_24_5), repeats=3)


FIGURES: dict[str, tuple[Callable[[], float], str, float | None, str]] = {
    "sensor_tick_100_trials_10_new_ms": (lambda: _sensor_tick_ms(100), "ms", None, "lower"),
    "sensor_tick_10000_trials_10_new_ms": (lambda: _sensor_tick_ms(10_000), "ms", None, "lower"),
    "sensor_tick_ratio_10000_vs_100": (_tick_ratio, "ratio", 2.0, "lower"),
    "backtest_bar_steps_per_second": (_backtest_bar_steps_per_second, "bar-steps/s", 20e6, "higher"),
    "cge_solve_200_equilibria_seconds": (_cge_solve_200_seconds, "s", 5.0, "lower"),
    "cge_stress_one_trial_seconds": (_stress_one_trial_seconds, "s", 0.25, "lower"),
    "look_ahead_check_share_of_trial_evaluation": (_look_ahead_check_share, "ratio", 0.10, "lower"),
    "gauntlet_help_seconds": (_gauntlet_help_seconds, "s", 0.5, "lower"),
    "gauntlet_stop_seconds": (_gauntlet_stop_seconds, "s", 1.0, "lower"),
    "gauntlet_status_10000_trials_seconds": (lambda: _gauntlet_status_seconds(10_000)["in_process"], "s", 2.0, "lower"),
    "gauntlet_status_10000_trials_cold_seconds": (lambda: _gauntlet_status_seconds(10_000)["cold"], "s", 1.0, "lower"),
    "end_to_end_1000_trials_seconds": (lambda: _e2e_batched()["seconds"], "s", 300.0, "lower"),
    "end_to_end_1000_trials_peak_rss_mib": (lambda: _e2e_batched()["peak_rss_mib"], "MiB", 1536.0, "lower"),
    "end_to_end_speedup_vs_one_trial_per_run": (_speedup, "ratio", 10.0, "higher"),
    "paper_advance_1000_sessions_one_bar_seconds": (_paper_advance_seconds, "s", 1.0, "lower"),
    "market_load_1m_hourly_bars_with_calendar_seconds": (_load_1m_hourly_bars_with_calendar_seconds, "s", 2.0, "lower"),
    # 1,000 studies in 30 minutes.
    "calibration_seconds_per_study": (_calibration_seconds_per_study, "s", 1.8, "lower"),
}
