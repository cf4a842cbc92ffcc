"""Every sensor of the code location, built for the trial sensor's settings.

The definitions assemble them; `gauntlet health` reads them from here too, without loading the
definitions module, which validates the whole configuration on import (strategy plug-ins
included) and whose health must not depend on user code.
"""

from __future__ import annotations

import dagster as dg

from pipeline_assets.jobs import shared_job, trial_job
from sensors.alert_sensors import gate_alert_sensor, run_failure_alert_sensor
from sensors.market_source_sensor import build_market_source_sensor, shared_assets_automation_sensor
from sensors.optuna_trial_sensor import build_optuna_trial_sensor
from sensors.paper_session_sensor import build_paper_session_sensor


def build_sensors(*, interval_seconds: int, max_trials_per_run: int) -> list[dg.SensorDefinition]:
    """Every sensor (trials, paper sessions, market source, shared-asset automation, alerts); the
    trial sensor looks every ``interval_seconds`` and batches up to ``max_trials_per_run``."""
    return [
        build_optuna_trial_sensor(
            job=trial_job,
            shared_job=shared_job,
            interval_seconds=interval_seconds,
            max_trials_per_run=max_trials_per_run,
        ),
        build_paper_session_sensor(job=trial_job),
        build_market_source_sensor(),
        shared_assets_automation_sensor,
        gate_alert_sensor,
        run_failure_alert_sensor,
    ]
