"""Jobs. The trial job runs in process: its one step evaluates a whole batch of trials."""

from __future__ import annotations

import dagster as dg

from pipeline_assets.trial_assets import trial_gauntlet

trial_job = dg.define_asset_job(
    name="trial_job",
    selection=dg.AssetSelection.assets(trial_gauntlet),
    executor_def=dg.in_process_executor,
    description="Takes a batch of trials through every gate.",
)
