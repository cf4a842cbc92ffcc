"""Jobs. The trial job runs in process: its one step evaluates a whole batch of trials."""

import dagster as dg

from pipeline_assets.shared_assets import SHARED_GROUP
from pipeline_assets.trial_assets import trial_gauntlet

trial_job = dg.define_asset_job(
    name="trial_job",
    selection=dg.AssetSelection.assets(trial_gauntlet),
    executor_def=dg.in_process_executor,
    description="Takes a batch of trials through every gate.",
)

shared_job = dg.define_asset_job(
    name="shared_job",
    selection=dg.AssetSelection.groups(SHARED_GROUP),
    executor_def=dg.in_process_executor,
    description="Builds the inputs every trial shares: market data windows and CGE scenarios.",
)
