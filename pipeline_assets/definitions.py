"""Everything Gauntlet is, assembled: the only module that sees every package."""

from __future__ import annotations

from typing import Any

import dagster as dg

from gauntlet.config import GauntletConfig, load_config
from gauntlet.environment import build_resources
from pipeline_assets.calibration_assets import gate_calibration
from pipeline_assets.jobs import shared_job, trial_job
from pipeline_assets.reporting_assets import reporting_job, study_funnel, study_funnel_schedule
from pipeline_assets.shared_assets import build_shared_assets
from pipeline_assets.trial_assets import trial_gauntlet
from sensors.all_sensors import build_sensors


def build_definitions(
    config: GauntletConfig | None = None, resources: dict[str, Any] | None = None
) -> dg.Definitions:
    """Definitions for ``config`` (default: the environment's configuration), resources overridable."""
    config = config or load_config().config
    resources = resources if resources is not None else build_resources(config)
    return dg.Definitions(
        assets=[
            *build_shared_assets(resources["instruments"]),
            trial_gauntlet,
            study_funnel,
            gate_calibration,
        ],
        jobs=[trial_job, shared_job, reporting_job],
        schedules=[study_funnel_schedule],
        sensors=build_sensors(
            interval_seconds=config.sensor.interval_seconds, max_trials_per_run=config.sensor.max_trials_per_run
        ),
        resources=resources,
        # Every job's steps run in the run worker's process, the asset job of the UI's
        # materializations, backfills and automation included: the default executor would start a
        # second process per step, loading the definitions again, for jobs of one step.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Gauntlet's definitions for the environment's configuration, built when Dagster loads the
    code location (not when this module is imported), so importing it reads no configuration."""
    return build_definitions()
