"""Two studies on two instruments in one instance: each trial is evaluated, paper traded and
recorded on its own study's instrument, and its lineage points at that instrument's data."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gauntlet.config import GauntletConfig, load_config
from gauntlet.config_check import config_main
from gauntlet.environment import build_resources, instruments_resource
from resources.dagster_private import DATA_VERSION_TAG, get_input_data_version_tag
from pipeline_assets.definitions import build_definitions
from pipeline_assets.shared_assets import CGE_SCENARIOS, MARKET_DATA
from resources.market_data import InstrumentsResource, SyntheticMarketDataResource
from simulations.constants import DEFAULT_INSTRUMENT
from resources.optuna_study import OptunaStudyResource
from simulations.errors import ConfigurationError
from simulations.market import generate_synthetic_market
from tests.conftest import add_complete_trials
from sensors.optuna_trial_sensor import decode_cursor, encode_cursor
from tests.dagster_helpers import Ticker
from tests.graphql_support import graphql_workspace, write_code_location

GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
ALT_FEE_BPS = 7.5
ALT_WINDOWS = {"train_days": 120.0, "backtest_days": 60.0, "forward_days": 30.0}
KEYS = {"demo__t00000000": DEFAULT_INSTRUMENT, "alt_fx__t00000000": "alt"}

CODE_LOCATION = """
from pathlib import Path
from tests.pipeline_assets.test_instruments import instrument_definitions

defs = instrument_definitions({optuna_url!r}, Path({home!r}), alt_backtest_days={days!r})
"""


def _alt_file(home: Path) -> Path:
    """Hourly bars of another instrument ("ALT": another seed, another price level), as a CSV file."""
    frame = generate_synthetic_market(seed=11, n_days=215)
    frame = frame.with_columns(pl.lit("ALT").alias("symbol"), *(pl.col(c) * 40.0 for c in ("open", "high", "low", "close")))
    path = home / "alt.csv"
    home.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


def _config(home: Path, alt_backtest_days: float = ALT_WINDOWS["backtest_days"]) -> GauntletConfig:
    windows = {**ALT_WINDOWS, "backtest_days": alt_backtest_days}
    alt = {"file": str(_alt_file(home)), "fee_bps": ALT_FEE_BPS, "windows": windows, "studies": ["alt_*"]}
    # Gates 1 and 2 pass visibly, so that every trial reaches its instrument's paper venue.
    gates = {"backtest": {"enabled": False}, "cge": {"enabled": False}}
    return GauntletConfig(home=home, gates=gates, instruments={"alt": alt})


def _definitions(optuna_url: str, config: GauntletConfig) -> dg.Definitions:
    resources = build_resources(config)
    resources["optuna_study"] = OptunaStudyResource(storage_url=optuna_url)
    return build_definitions(config=config, resources=resources)


def instrument_definitions(optuna_url: str, home: Path, *, alt_backtest_days: float) -> dg.Definitions:
    """The two-instrument definitions under ``home`` (the code location the UI tests serve)."""
    return _definitions(optuna_url, _config(home, alt_backtest_days))


def _latest(instance: dg.DagsterInstance, asset: dg.AssetKey, partition: str) -> dg.EventLogRecord:
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[partition]), limit=1
    ).records
    return record


def test_two_studies_on_two_instruments_are_each_judged_on_their_own(optuna_url, tmp_path):
    config = _config(tmp_path)
    defs = _definitions(optuna_url, config)
    add_complete_trials(optuna_url, "demo", [0.1], params=[GOOD])
    add_complete_trials(optuna_url, "alt_fx", [0.1], params=[GOOD])
    with dg.instance_for_test() as instance:
        ticker = Ticker(defs, instance)
        first = ticker.tick()
        # Each instrument's data is built in its own run; no trial is read before its instrument's data exists.
        assert sorted((r.job_name, r.partition_key) for r in first.run_requests) == [
            ("shared_job", "alt"), ("shared_job", DEFAULT_INSTRUMENT)
        ]
        ticker.tick_until_idle()
        assert all(r.success for r in ticker.results)

        for key, instrument in KEYS.items():
            backtest = _latest(instance, dg.AssetKey("backtest_results"), key)
            market = _latest(instance, MARKET_DATA, instrument)
            metadata = backtest.asset_materialization.metadata
            assert metadata["instrument"].value == instrument
            # The lineage: the trial's provenance holds its instrument's build of market_data and cge_scenarios.
            tags = backtest.asset_materialization.tags
            assert tags[get_input_data_version_tag(MARKET_DATA)] == market.asset_materialization.tags[DATA_VERSION_TAG]
            stress = _latest(instance, dg.AssetKey("cge_stress_report"), key).asset_materialization.tags
            scenarios = _latest(instance, CGE_SCENARIOS, instrument).asset_materialization.tags
            assert stress[get_input_data_version_tag(CGE_SCENARIOS)] == scenarios[DATA_VERSION_TAG]
            # The windows the trial was backtested on are its instrument's.
            stored = json.loads((tmp_path / "artifacts" / "trials" / key / "backtest_results.json").read_text())
            hashes = {r.data["window"]: r.data["sha256"] for r in market.asset_materialization.metadata["hashes"].value.records}
            assert {k: v[:16] for k, v in stored["data_hashes"].items()} == {k: v[:16] for k, v in hashes.items()}

        sessions = {s.trial_key: s for s in defs.resources["paper_broker"].sessions()}
        assert sessions["alt_fx__t00000000"].instrument == "alt"
        assert sessions["alt_fx__t00000000"].fee_bps == ALT_FEE_BPS
        assert sessions["demo__t00000000"].instrument == DEFAULT_INSTRUMENT
        assert sessions["demo__t00000000"].fee_bps == config.market.fee_bps
        symbols = {
            name: _latest(instance, MARKET_DATA, name).asset_materialization.metadata["symbol"].value
            for name in ("alt", DEFAULT_INSTRUMENT)
        }
        assert symbols == {"alt": "ALT", DEFAULT_INSTRUMENT: "SYN"}


def test_trials_are_fresh_when_evaluated_and_stale_when_their_instruments_data_changes(optuna_url, tmp_path):
    add_complete_trials(optuna_url, "demo", [0.1], params=[GOOD])
    add_complete_trials(optuna_url, "alt_fx", [0.1], params=[GOOD])
    with dg.instance_for_test() as instance:
        Ticker(_definitions(optuna_url, _config(tmp_path)), instance).tick_until_idle()

        # The code location after alt's backtest window is shortened. Trials go stale through data
        # versions only (market_data's new code version is its own cause), so one server shows both.
        source = CODE_LOCATION.format(optuna_url=optuna_url, home=str(tmp_path), days=50.0)
        with graphql_workspace(instance, write_code_location(tmp_path / "location", source)) as ui:
            # Both instruments were built before either trial ran, in either order: both trials are fresh.
            before = ui.stale_by_partition("backtest_results", list(KEYS))
            assert {key: status for key, (status, _) in before.items()} == dict.fromkeys(KEYS, "FRESH")
            # alt's market_data is rebuilt with the new window: a new data version.
            changed = instrument_definitions(optuna_url, tmp_path, alt_backtest_days=50.0)
            assert changed.resolve_job_def("shared_job").execute_in_process(instance=instance, partition_key="alt").success
            status, causes = ui.stale_by_partition("backtest_results", list(KEYS))["alt_fx__t00000000"]
        assert status == "STALE"
        assert [c["reason"] for c in causes if c["key"]["path"] == MARKET_DATA.path] == ["has a new data version"]


def test_a_study_whose_instrument_cannot_be_built_waits_and_the_others_go_on(optuna_url, tmp_path):
    config = _config(tmp_path)
    (tmp_path / "alt.csv").write_text("timestamp,open\n")  # the file is broken after the configuration was read
    defs = _definitions(optuna_url, config)
    add_complete_trials(optuna_url, "demo", [0.1], params=[GOOD])
    add_complete_trials(optuna_url, "alt_fx", [0.1], params=[GOOD])
    with dg.instance_for_test() as instance:
        ticker = Ticker(defs, instance)
        ticker.tick()
        second = ticker.tick()
        # alt's build failed: it is asked for again, and only the demo study's trial runs.
        assert ("shared_job", "alt") in [(r.job_name, r.partition_key) for r in second.run_requests]
        assert [r.partition_key for r in second.run_requests if r.job_name != "shared_job"] == ["demo__t00000000"]
        assert "alt_fx__t00000000" not in instance.get_dynamic_partitions("trials")


def test_overlapping_study_patterns_are_a_typed_error_naming_both_instruments():
    instruments = InstrumentsResource(
        synthetic={DEFAULT_INSTRUMENT: SyntheticMarketDataResource(), "a": SyntheticMarketDataResource(seed=1),
                   "b": SyntheticMarketDataResource(seed=2)},
        studies={"a": ["btc_*"], "b": ["*_hourly"]},
    )
    assert instruments.instrument_of("btc_daily") == "a"
    assert instruments.instrument_of("eth_hourly") == "b"
    assert instruments.instrument_of("spy") == DEFAULT_INSTRUMENT
    with pytest.raises(ConfigurationError, match=r"'btc_hourly' matches the study patterns of instruments \['a', 'b'\]"):
        instruments.instrument_of("btc_hourly")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("instruments:\n  default: {studies: [x]}\n", "instruments.default: that name is the instrument `market`"),
        ("instruments:\n  'b t c': {studies: [x]}\n", "instruments.b t c"),
        ("instruments:\n  btc: {file: prices.csv}\n", "instruments.btc.studies"),
        ("instruments:\n  btc: {studies: [x], fee: 3}\n", "instruments.btc.fee"),
    ],
)
def test_instrument_sections_are_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str):
    for name in [n for n in __import__("os").environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    (tmp_path / "gauntlet.yaml").write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_config({"GAUNTLET_CONFIG": str(tmp_path / "gauntlet.yaml")})
    assert expected in caught.value.cause


def test_config_check_shows_each_study_its_own_instruments_windows(tmp_path, monkeypatch, capsys):
    for name in [n for n in __import__("os").environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    _alt_file(tmp_path)
    (tmp_path / "gauntlet.yaml").write_text(
        "optuna: {studies: [demo, alt_fx]}\n"
        "instruments:\n  alt:\n    file: alt.csv\n    studies: ['alt_*']\n"
        "    windows: {train_days: 120, backtest_days: 60, forward_days: 30}\n"
    )
    monkeypatch.setenv("GAUNTLET_CONFIG", str(tmp_path / "gauntlet.yaml"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert config_main(["check", "--json"]) == 0
    studies = {s["study"]: s for s in json.loads(capsys.readouterr().out)["windows"]["studies"]}
    assert {s: (row["instrument"], row["symbol"]) for s, row in studies.items()} == {
        "demo": (DEFAULT_INSTRUMENT, "SYN"), "alt_fx": ("alt", "ALT")
    }
    assert studies["alt_fx"]["windows"]["backtest"]["bars"] == 60 * 24
    assert studies["demo"]["windows"]["backtest"]["bars"] == 180 * 24
    # A broken file is named by its instrument's key.
    (tmp_path / "alt.csv").write_text("timestamp,open\n")
    assert config_main(["check", "--json"]) == 1
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert problem.startswith("market data: instruments.alt: market file ")


def test_every_instrument_is_a_partition_of_the_shared_assets(tmp_path):
    resources = instruments_resource(_config(tmp_path))
    assert resources.names() == (DEFAULT_INSTRUMENT, "alt")
    defs = _definitions("sqlite:///unused.db", _config(tmp_path))
    graph = defs.resolve_asset_graph()
    for key in (MARKET_DATA, CGE_SCENARIOS, dg.AssetKey("market_source")):
        assert graph.get(key).partitions_def.get_partition_keys() == [DEFAULT_INSTRUMENT, "alt"]


def test_owed_trials_of_a_study_moved_to_an_unbuilt_instrument_wait_for_its_data(optuna_url, tmp_path):
    """A trial owed from an earlier tick is held back, like a new one, while its instrument's data is missing."""
    add_complete_trials(optuna_url, "alt_fx", [0.1], params=[GOOD])
    before = GauntletConfig(home=tmp_path, gates={"backtest": {"enabled": False}, "cge": {"enabled": False}})
    with dg.instance_for_test() as instance:
        ticker = Ticker(_definitions(optuna_url, before), instance)
        ticker.tick()  # the default instrument's shared assets
        first = ticker.tick(execute=False)  # the trial is requested, on the default instrument, but never runs
        assert [r.partition_key for r in first.run_requests] == ["alt_fx__t00000000"]
        # Its backoff has passed when the study moves to instrument alt, whose data is not built yet.
        cursor = decode_cursor(ticker.cursor)
        for entry in cursor.owed.values():
            entry.not_before = 0.0
        ticker.cursor = encode_cursor(cursor)
        ticker.defs = _definitions(optuna_url, _config(tmp_path))
        held = ticker.tick(execute=False)
        assert [(r.job_name, r.partition_key) for r in held.run_requests] == [("shared_job", "alt")]
        assert "alt_fx__t00000000" in decode_cursor(held.cursor).owed  # still owed, not dropped
