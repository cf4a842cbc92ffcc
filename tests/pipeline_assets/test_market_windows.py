"""Market windows in time: the market keys of gauntlet.yaml, and `market_data` pinning window dates in
the Dagster instance so that appended bars never move the train and backtest windows."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import optuna
import pytest

from gauntlet.config import MarketConfig, load_config
from gauntlet.environment import market_resource
from pipeline_assets.shared_assets import MARKET_DATA, recorded_window_dates
from simulations.constants import DEFAULT_INSTRUMENT, TRAIN_WINDOW_END_ATTR
from simulations.errors import ConfigurationError
from simulations.market import generate_synthetic_market
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, local_definitions, materialized, shared_assets, single_instrument


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)


def _problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "gauntlet.yaml").write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_config({"GAUNTLET_CONFIG": str(tmp_path / "gauntlet.yaml")})
    return caught.value.cause.splitlines()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("market:\n  gap_tolerance_bars: 0.5\n", "gauntlet.yaml: market.gap_tolerance_bars = 0.5: "),
        ("market:\n  calendar: NYSEE\n", "gauntlet.yaml: market.calendar = 'NYSEE': market.calendar = 'NYSEE' is not a "
         "calendar: use '24/7' (crypto), '24/5' (FX) or an exchange code such as 'XNYS'"),
        ("market:\n  windows: {train_start: 2024-01-01T00:00:00Z}\n",
         "gauntlet.yaml: market.windows: give all three window starts or none; missing ['backtest_start', "
         "'forward_start']"),
        ("market:\n  windows: {train_start: 2024-01-01T00:00:00Z, backtest_start: 2023-01-01T00:00:00Z, "
         "forward_start: 2024-06-01T00:00:00Z}\n", "gauntlet.yaml: market.windows: market.windows must start in order"),
    ],
)
def test_market_keys_are_validated_where_the_loader_would_refuse_them(tmp_path: Path, text: str, expected: str):
    problems = _problems(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_null_tolerance_an_exchange_calendar_and_dated_windows_are_accepted(tmp_path: Path):
    (tmp_path / "gauntlet.yaml").write_text(
        "market:\n  calendar: xnys\n  gap_tolerance_bars: null\n  windows:\n    train_start: 2024-01-01T00:00:00Z\n"
        "    backtest_start: 2024-06-01T00:00:00Z\n    forward_start: 2024-09-01T00:00:00Z\n"
    )
    market = market_resource(load_config({"GAUNTLET_CONFIG": str(tmp_path / "gauntlet.yaml")}).config.market)
    assert market.calendar == "XNYS" and market.forward_start == "2024-09-01T00:00:00+00:00"


def _market(path: Path, **windows: float) -> dict[str, object]:
    market = MarketConfig(file=str(path), windows=windows)
    return {**single_instrument(market_resource(market)), "shared_io_manager": dg.FilesystemIOManager(
        base_dir=str(path.parent / "shared"))}


def _build(instance: dg.DagsterInstance, resources: dict[str, object]) -> dict[str, str]:
    market_data = shared_assets(resources["instruments"].market(DEFAULT_INSTRUMENT))[1]
    assert dg.materialize(
        [market_data], instance=instance, resources=resources, partition_key=DEFAULT_INSTRUMENT
    ).success
    dates, _ = recorded_window_dates(instance, DEFAULT_INSTRUMENT)
    return dates.as_dict()


def _windows_metadata(instance: dg.DagsterInstance) -> dict[str, dict[str, object]]:
    event = instance.get_latest_materialization_event(MARKET_DATA)
    rows = event.asset_materialization.metadata["windows"].value.records
    return {row.data["window"]: row.data for row in rows}


def test_appended_bars_keep_the_pinned_train_and_backtest_windows_and_grow_forward(tmp_path: Path):
    bars = generate_synthetic_market(seed=3, n_days=120)
    path = tmp_path / "prices.csv"
    bars.head(100 * 24).write_csv(path)
    windows = {"train_days": 60.0, "backtest_days": 30.0, "forward_days": 10.0}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = _build(instance, _market(path, **windows))
        before = _windows_metadata(instance)
        bars.write_csv(path)  # 20 more days arrive
        assert _build(instance, _market(path, **windows)) == first
        after = _windows_metadata(instance)
        assert after["train"]["sha256"] == before["train"]["sha256"]
        assert after["backtest"]["sha256"] == before["backtest"]["sha256"]
        assert int(after["forward"]["bars"]) == int(before["forward"]["bars"]) + 20 * 24
        # Changing the windows in the configuration pins them anew, at the data's end now.
        moved = _build(instance, _market(path, **{**windows, "backtest_days": 40.0}))
        assert moved != first
        assert dt.datetime.fromisoformat(moved["forward_start"]) == bars["timestamp"][-1] + dt.timedelta(
            hours=1) - dt.timedelta(days=10)


def test_a_trial_tuned_into_the_backtest_window_is_stopped_with_a_typed_error(
    optuna_url: str, tmp_path: Path, shared_instance: dg.DagsterInstance
):
    add_complete_trials(optuna_url, "demo", [0.5])
    study = add_complete_trials(optuna_url, "demo", [0.4])
    overlapping = study.trials[1]
    study.add_trial(
        optuna.trial.create_trial(
            value=0.3,
            params=overlapping.params,
            distributions=overlapping.distributions,
            user_attrs={"strategy": "momentum", TRAIN_WINDOW_END_ATTR: "2099-01-01T00:00:00+00:00"},
        )
    )
    ticker = Ticker(local_definitions(optuna_url, tmp_path), shared_instance)
    ticker.tick_until_idle()
    assert materialized(shared_instance, "backtest_results") == {"demo__t00000000", "demo__t00000001"}
    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert not run.success
    failure = run.get_run_failure_event().message + str(
        [e.event_specific_data for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
    )
    assert "TrainWindowOverlapError" in failure or "inside the backtest window" in failure
    assert "demo__t00000002" in failure and TRAIN_WINDOW_END_ATTR in failure
