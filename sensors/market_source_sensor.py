"""`market_source_sensor`: record a new observation of an instrument's `market_source` whenever its bars change.

Why a sensor and not observation runs: Dagster 1.13 counts every observation as an update of the
source, whatever its data version, so observing the same bars again would rebuild `market_data`
each time; and a run per look costs a process. Each tick reads every instrument's
`MarketDataResource.source_version` (a digest of its file) and records an observation of that
instrument's partition only when it differs from the latest one in the instance; the automation
condition sensor then rebuilds that partition of `market_data` (`REBUILT_ON_CHANGE`).
"""

import dagster as dg

from pipeline_assets.shared_assets import MARKET_SOURCE, SHARED_ASSET_KEYS, latest_source_version
from resources.dagster_private import DATA_VERSION_TAG
from resources.market_data import InstrumentsResource

DEFAULT_MARKET_SOURCE_INTERVAL_SECONDS = 30

#: Dagster's automation condition sensor for the shared assets, running by default (DESIGN.md: it
#: must be): it evaluates their `REBUILT_ON_CHANGE` and requests the rebuilds.
shared_assets_automation_sensor = dg.AutomationConditionSensorDefinition(
    name="shared_assets_automation_sensor",
    target=dg.AssetSelection.assets(*SHARED_ASSET_KEYS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds an instrument's market_data and cge_scenarios when its source or the instruments' "
    "configuration changes.",
)


def build_market_source_sensor(
    *, interval_seconds: int = DEFAULT_MARKET_SOURCE_INTERVAL_SECONDS
) -> dg.SensorDefinition:
    """The sensor that observes the market source every ``interval_seconds``."""

    @dg.sensor(
        name="market_source_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes every instrument's market source and records its new data version when its bars change.",
    )
    def market_source_sensor(
        context: dg.SensorEvaluationContext, instruments: InstrumentsResource
    ) -> dg.SensorResult:
        observations = []
        for name in instruments.names():
            market = instruments.market(name)
            version = market.source_version()
            if version == latest_source_version(context.instance, name):
                continue
            context.log.info(f"{name}: {market.describe()}: new data version {version}")
            observations.append(
                dg.AssetObservation(
                    asset_key=MARKET_SOURCE,
                    partition=name,
                    tags={DATA_VERSION_TAG: version},
                    metadata={"source": market.describe()},
                )
            )
        if not observations:
            return dg.SensorResult(skip_reason=f"every instrument's source unchanged ({', '.join(instruments.names())})")
        return dg.SensorResult(asset_events=observations)

    return market_source_sensor
