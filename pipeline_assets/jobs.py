"""Jobs. They run in process (the definitions' default executor): the trial job's one step evaluates a
whole batch of trials."""

import dagster as dg

from pipeline_assets.shared_assets import MARKET_SOURCE, SHARED_ASSET_KEYS
from pipeline_assets.trial_assets import trial_gauntlet

trial_job = dg.define_asset_job(
    name="trial_job",
    selection=dg.AssetSelection.assets(trial_gauntlet),
    description="Takes a batch of trials through every gate.",
)

shared_job = dg.define_asset_job(
    name="shared_job",
    # The market source is observed in the same run, so market_data records the source version it was built from.
    selection=dg.AssetSelection.assets(MARKET_SOURCE, *SHARED_ASSET_KEYS),
    description="Builds the inputs every trial shares: market data windows and CGE scenarios.",
)
