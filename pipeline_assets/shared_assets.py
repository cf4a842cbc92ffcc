"""The inputs a trial shares with every other trial of its instrument, partitioned by instrument.

Each instrument (`resources.market_data.InstrumentsResource`) is a partition of
`market_source`, `market_data` and `cge_scenarios`; a trial reads its study's instrument's
partition and records that partition's data versions as its provenance, and `backtest_results`
names the instrument, so a trial shows which instrument, and which build of its data, it was
evaluated on. The
partitions are the configuration's instruments, so the assets are built by
`build_shared_assets` when the definitions load.
"""

import hashlib
import json
import warnings
from collections.abc import Sequence

import dagster as dg
import numpy as np
from pydantic import Field

from pipeline_assets.metadata import key_value_table, number, png_markdown, records_table
from pipeline_assets.plots import bars_png, price_windows_png
from resources.dagster_private import DATA_VERSION_TAG
from resources.market_data import InstrumentsResource, MarketDataResource
from simulations.cge.model import calibrate
from simulations.cge.sam import hosoe_sam, read_sam
from simulations import metrics
from simulations.cge.scenarios import ScenarioSet, draw_scenarios, solve_scenarios
from simulations.constants import CGE_PATH_SEED, CGE_SCENARIO_SEED, N_CGE_SCENARIOS, STRESS_WARMUP_BARS
from simulations.errors import PipelineError
from simulations.market import MarketWindows
from simulations.window_dates import WindowDates
from simulations.stress import StressScenarios, market_scenarios

SHARED_GROUP = "shared"
MARKET_DATA = dg.AssetKey("market_data")
#: Assets every trial run loads; they must be materialized before any trial runs.
SHARED_ASSET_KEYS = (dg.AssetKey("market_data"), dg.AssetKey("cge_scenarios"))
#: Metadata of each `market_data` materialization: the window dates it cut at, and the window
#: configuration they were pinned under. The instance is where a pin lives (DESIGN.md: one
#: source of truth); the next build reuses it while the configuration is unchanged.
WINDOW_DATES_KEY = "window_dates"
WINDOW_CONFIG_KEY = "window_config"


def missing_instruments(instance: dg.DagsterInstance, instruments: InstrumentsResource) -> list[str]:
    """Instruments whose shared assets are not all materialized."""
    built = [instance.get_materialized_partitions(key) for key in SHARED_ASSET_KEYS]
    return [name for name in instruments.names() if not all(name in partitions for partitions in built)]


def latest_source_version(
    instance: dg.DagsterInstance, instrument: str, *, before_storage_id: int | None = None
) -> str | None:
    """The data version of ``instrument``'s latest `market_source` observation (before the event
    ``before_storage_id``, when given), if it was ever observed."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(
            asset_key=MARKET_SOURCE, asset_partitions=[instrument], before_storage_id=before_storage_id
        ),
        limit=1,
    ).records
    return records[0].asset_observation.tags.get(DATA_VERSION_TAG) if records else None


def stale_instruments(
    instance: dg.DagsterInstance, instruments: InstrumentsResource, *, names: Sequence[str]
) -> list[str]:
    """The instruments of ``names`` whose source has changed since their latest `market_data`
    build: bars arrived that the automation has not built yet (the daemon is down, or its next
    tick is to come).

    The version a build was made from is the latest `market_source` observation before it (the
    shared job observes the source first; the market source sensor observes it before an
    automated rebuild). An instrument never built is not stale but missing.
    """
    stale = []
    for name in names:
        built = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=MARKET_DATA, asset_partitions=[name]), limit=1
        ).records
        if not built:
            continue
        observed = latest_source_version(instance, name, before_storage_id=built[0].storage_id)
        if observed != instruments.market(name).source_version():
            stale.append(name)
    return stale


def awaited_instrument(study: str, instruments: InstrumentsResource, missing: Sequence[str]) -> str | None:
    """The instrument of ``missing`` that ``study`` trades, if its trials wait for one (the trial
    sensor and `gauntlet run` build it first)."""
    try:
        name = instruments.instrument_of(study)
    except PipelineError:
        return None  # its trials go on, and fail in the trial step with the reason
    return name if name in missing else None


def recorded_window_dates(
    instance: dg.DagsterInstance, instrument: str
) -> tuple[WindowDates, dict[str, object]] | None:
    """The window dates of ``instrument``'s latest `market_data` build, and the configuration they were pinned under."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=MARKET_DATA, asset_partitions=[instrument]), limit=1
    ).records
    if not records:
        return None
    metadata = records[0].asset_materialization.metadata
    if WINDOW_DATES_KEY not in metadata or WINDOW_CONFIG_KEY not in metadata:
        return None
    return WindowDates.from_dict(metadata[WINDOW_DATES_KEY].value), metadata[WINDOW_CONFIG_KEY].value


def pinned_dates(instance: dg.DagsterInstance, instrument: str, market: MarketDataResource) -> WindowDates | None:
    """The dates pinned at an earlier build of ``instrument`` under the same window configuration, if any."""
    recorded = recorded_window_dates(instance, instrument)
    if recorded is None:
        return None
    dates, config = recorded
    # Through JSON, so that a recorded configuration compares equal to the resource's.
    return dates if json.loads(json.dumps(market.window_config())) == config else None


# Observable source assets are beta in Dagster 1.13; Gauntlet relies on them knowingly, so the
# warning would only repeat on every code-location load.
warnings.filterwarnings("ignore", message=".*observable_source_asset.*", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message=".*DataVersionsByPartition.*", category=dg.BetaWarning)

MARKET_SOURCE = dg.AssetKey("market_source")

#: When the shared assets are rebuilt by Dagster's automation (the automation condition sensor,
#: running by default): after something they depend on changed (a new version of the market
#: source, a rebuilt `market_data`) or their code version (the market's configuration) changed.
#: A missing one is left to the trial sensor, which builds the shared assets before any trial.
REBUILT_ON_CHANGE = (
    (dg.AutomationCondition.any_deps_updated() | dg.AutomationCondition.code_version_changed()).since_last_handled()
    & ~dg.AutomationCondition.missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("rebuilt when its source or configuration changes")


def instruments_partitions_def(instruments: InstrumentsResource) -> dg.StaticPartitionsDefinition:
    """One partition per configured instrument."""
    return dg.StaticPartitionsDefinition(list(instruments.names()))


def configuration_version(instruments: InstrumentsResource) -> str:
    """A digest of every instrument's whole configuration: `market_data`'s code version.

    The configuration is read when the definitions load, so this is where a change to it becomes
    a code version Dagster compares: `market_data` shows as stale and `REBUILT_ON_CHANGE` rebuilds
    it (a code version is the asset's, so every instrument is rebuilt; those whose data did not
    change keep their data version, and their trials stay fresh).
    """
    versions = {name: instruments.market(name).config_version() for name in instruments.names()}
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:24]


def observe_market_sources(instruments: InstrumentsResource, names: Sequence[str]) -> dg.DataVersionsByPartition:
    """The data version of the sources of instruments ``names`` as they are now."""
    return dg.DataVersionsByPartition({name: instruments.market(name).source_version() for name in names})


def _volatility(close: np.ndarray, periods_per_year: float) -> np.ndarray | float:
    """Realised annualised volatility of the log returns of ``close`` along its last axis."""
    return metrics.annualised_volatility(returns=np.diff(np.log(close), axis=-1), periods_per_year=periods_per_year)


def window_rows(windows: MarketWindows) -> list[dict[str, object]]:
    """One summary row per window (dates, bars, return, volatility, hash)."""
    rows = []
    for window in (windows.train, windows.backtest, windows.forward):
        rows.append(
            {
                "window": window.name,
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
                "bars": window.n_bars,
                "total_return": float(window.close[-1] / window.close[0] - 1),
                "annualised_vol": float(_volatility(window.close, window.periods_per_year)),
                "sha256": window.sha256[:16],
            }
        )
    return rows


def market_data_output(
    context: dg.AssetExecutionContext, instruments: InstrumentsResource
) -> dg.Output[MarketWindows]:
    """`market_data` of the run's instrument (partition)."""
    instrument = context.partition_key
    market = instruments.market(instrument)
    pinned = pinned_dates(context.instance, instrument, market)
    dates, windows = market.load_dated_windows(pinned=pinned)
    how = "as configured" if market.configured_dates() else ("as pinned before" if pinned else "pinned now")
    context.log.info(
        f"{instrument}: loaded {market.describe()}: windows {how} {dates.as_dict()}, hashes {windows.hashes}"
    )
    rows = window_rows(windows)
    chart = price_windows_png([(w.name, w.close) for w in (windows.train, windows.backtest, windows.forward)])
    columns = [
        ("window", "train / backtest / forward"),
        ("start", "UTC"),
        ("end", "UTC"),
        ("bars", "count"),
        ("total_return", "fraction"),
        ("annualised_vol", "fraction per year"),
        ("sha256", "first 16 hex digits"),
    ]
    # What a trial's verdict depends on: the train and backtest bars, the window dates and the
    # configuration they were pinned under, and the costs. Not the forward bars: they grow as bars
    # arrive, and the paper venue verifies each session against the bars it has traded.
    judged_on = {
        "train": windows.hashes["train"],
        "backtest": windows.hashes["backtest"],
        WINDOW_DATES_KEY: dates.as_dict(),
        WINDOW_CONFIG_KEY: market.window_config(),
        "costs_bps": [market.fee_bps, market.slippage_bps],
    }
    return dg.Output(
        windows,
        data_version=dg.DataVersion(hashlib.sha256(json.dumps(judged_on, sort_keys=True).encode()).hexdigest()[:24]),
        metadata={
            "instrument": instrument,
            "source": market.describe(),
            "symbol": windows.backtest.symbol,
            WINDOW_DATES_KEY: dg.MetadataValue.json(dates.as_dict()),
            WINDOW_CONFIG_KEY: dg.MetadataValue.json(market.window_config()),
            "bar_seconds": windows.backtest.bar_seconds,
            "windows": records_table(rows, columns),
            "hashes": key_value_table(windows.hashes, key="window", value="sha256"),
            "prices": png_markdown(chart, alt="close prices by window"),
        },
    )


CGE_SCENARIOS = dg.AssetKey("cge_scenarios")


class CgeScenarioConfig(dg.Config):
    """How the stress scenarios are drawn (set in the launchpad to try another set)."""

    sam_path: str | None = Field(default=None, description="SAM CSV; default: the shipped Hosoe 2x2 SAM.")
    n_scenarios: int = Field(default=N_CGE_SCENARIOS, ge=1, description="Number of scenarios.")
    scenario_seed: int = Field(default=CGE_SCENARIO_SEED, ge=0, description="Sobol scrambling seed.")
    path_seed: int = Field(default=CGE_PATH_SEED, ge=0, description="Price path seed.")
    warmup_bars: int = Field(default=STRESS_WARMUP_BARS, ge=0, description="Indicator warm-up bars.")


def solve_stress_scenarios(*, config: CgeScenarioConfig) -> tuple[ScenarioSet, str]:
    """The solved CGE equilibria of ``config``, and the SHA-256 of the SAM they come from."""
    sam = read_sam(config.sam_path) if config.sam_path else hosoe_sam()
    calibration = calibrate(sam)
    shocks = draw_scenarios(calibration=calibration, n=config.n_scenarios, seed=config.scenario_seed)
    digest = hashlib.sha256(np.ascontiguousarray(sam.values).tobytes()).hexdigest()
    return solve_scenarios(calibration=calibration, scenarios=shocks), digest


def stress_scenarios_on(
    *, scenario_set: ScenarioSet, sam_sha256: str, config: CgeScenarioConfig, market_data: MarketWindows
) -> StressScenarios:
    """The scenarios' paths on ``market_data``'s instrument, as ``config`` asks."""
    return market_scenarios(
        scenario_set=scenario_set,
        windows=market_data,
        seeds=(config.scenario_seed, config.path_seed),
        sam_sha256=sam_sha256,
        warmup_bars=config.warmup_bars,
    )


def build_stress_scenarios(
    *, config: CgeScenarioConfig, market_data: MarketWindows
) -> tuple[StressScenarios, ScenarioSet]:
    """The scenarios ``cge_scenarios`` stores, and the solved equilibria behind them."""
    scenario_set, digest = solve_stress_scenarios(config=config)
    bundle = stress_scenarios_on(scenario_set=scenario_set, sam_sha256=digest, config=config, market_data=market_data)
    return bundle, scenario_set


def cge_scenarios_output(
    context: dg.AssetExecutionContext, config: CgeScenarioConfig, market_data: MarketWindows
) -> dg.Output[StressScenarios]:
    """`cge_scenarios` of the run's instrument (partition)."""
    bundle, scenario_set = build_stress_scenarios(config=config, market_data=market_data)
    paths, table, window = bundle.paths, scenario_set.table, market_data.backtest
    context.log.info(f"solved {len(table)} equilibria in {scenario_set.solve_seconds:.2f}s")
    shown = ["scenario", "shock_size", "real_gdp_change", "capital_return_change", "drift", "volatility", "jump_intensity"]
    returns = paths[:, -1] / paths[:, 0] - 1.0
    version = hashlib.sha256(
        table.select(shown).write_csv().encode() + np.ascontiguousarray(paths).tobytes()
    ).hexdigest()
    return dg.Output(
        bundle,
        data_version=dg.DataVersion(version[:24]),
        metadata={
            "scenarios": len(table),
            "solve_seconds": number(scenario_set.solve_seconds, digits=3),
            "max_walras_residual": float(table["walras_residual"].abs().max()),
            "sam_sha256": bundle.sam_sha256,
            "seeds": f"scenarios {config.scenario_seed}, paths {config.path_seed}",
            "path_bars": window.n_bars,
            "instrument_volatility": number(float(_volatility(window.close, window.periods_per_year)), digits=4),
            "median_path_volatility": number(float(np.median(_volatility(paths, window.periods_per_year))), digits=4),
            "regimes_first_20": records_table(
                table.select(shown).head(20).to_dicts(),
                [
                    ("scenario", "index"),
                    ("shock_size", "historical std units"),
                    ("real_gdp_change", "log change"),
                    ("capital_return_change", "log change"),
                    ("drift", "per year"),
                    ("volatility", "per year"),
                    ("jump_intensity", "jumps per year"),
                ],
            ),
            "path_returns": png_markdown(
                bars_png(returns, label="scenario path total return (buy and hold)", threshold=0.0),
                alt="distribution of scenario path returns",
            ),
        },
    )


def build_shared_assets(instruments: InstrumentsResource) -> list[dg.AssetsDefinition | dg.SourceAsset]:
    """`market_source`, `market_data` and `cge_scenarios`, one partition per instrument of ``instruments``."""
    partitions_def = instruments_partitions_def(instruments)

    @dg.observable_source_asset(
        key=MARKET_SOURCE,
        group_name=SHARED_GROUP,
        partitions_def=partitions_def,
        description="Where each instrument's bars come from (a market file, or the seeded synthetic generator); "
        "its data version is a digest of the bars there now, recorded by market_source_sensor when it changes.",
    )
    def market_source(context: dg.OpExecutionContext, instruments: InstrumentsResource) -> dg.DataVersionsByPartition:
        # A run for some instruments observes theirs; an observation of the asset, every one.
        names = context.partition_keys if context.has_partition_key_range or context.has_partition_key else None
        return observe_market_sources(instruments, names or instruments.names())

    @dg.asset(
        key=MARKET_DATA,
        deps=[MARKET_SOURCE],
        partitions_def=partitions_def,
        code_version=configuration_version(instruments),
        group_name=SHARED_GROUP,
        io_manager_key="shared_io_manager",
        automation_condition=REBUILT_ON_CHANGE,
        kinds={"polars"},
        owners=["team:quant-research"],
        description="Each instrument's market, cut into train, backtest and forward windows at fixed dates.",
    )
    def market_data(context: dg.AssetExecutionContext, instruments: InstrumentsResource) -> dg.Output[MarketWindows]:
        return market_data_output(context, instruments)

    @dg.asset(
        key=CGE_SCENARIOS,
        ins={"market_data": dg.AssetIn(MARKET_DATA)},
        partitions_def=partitions_def,
        group_name=SHARED_GROUP,
        io_manager_key="shared_io_manager",
        automation_condition=REBUILT_ON_CHANGE,
        kinds={"scipy"},
        owners=["team:quant-research"],
        description="200 CGE equilibria under macro shocks, each mapped to a regime and a path of the "
        "instrument's own resampled history.",
    )
    def cge_scenarios(
        context: dg.AssetExecutionContext, config: CgeScenarioConfig, market_data: MarketWindows
    ) -> dg.Output[StressScenarios]:
        return cge_scenarios_output(context, config, market_data)

    return [market_source, market_data, cge_scenarios]
