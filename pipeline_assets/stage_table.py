"""The stage table: every per-trial asset, in the order a trial meets it.

The trial step, ``gauntlet run``, ``gauntlet status``, the funnel, the alerts and the tests read
this table; nothing else lists the stages or their gates but the names it is built from. A new gate is its names in
:mod:`simulations.stage_names`, one pure stage in :mod:`simulations.gauntlet`, one module here
with its `TrialStage` row, and one entry below.
"""

from __future__ import annotations

import hashlib

import dagster as dg

from pipeline_assets.backtest_stage import BACKTEST
from pipeline_assets.deployment_stage import DEPLOYMENT
from pipeline_assets.optuna_trial_stage import OPTUNA_TRIAL_STAGE
from pipeline_assets.paper_stage import PAPER
from pipeline_assets.stages import TrialStage
from pipeline_assets.stress_stage import STRESS
from simulations.stage_names import TRIAL_STAGE_NAMES

_ROWS = {row.names: row for row in (OPTUNA_TRIAL_STAGE, BACKTEST, STRESS, PAPER, DEPLOYMENT)}
#: The rows in pipeline order, the order of `simulations.stage_names.TRIAL_STAGE_NAMES`.
TRIAL_STAGES: tuple[TrialStage, ...] = tuple(_ROWS[names] for names in TRIAL_STAGE_NAMES)
GATED_STAGES: tuple[TrialStage, ...] = tuple(row for row in TRIAL_STAGES if row.check is not None)
TRIAL_ASSET_KEYS: tuple[dg.AssetKey, ...] = tuple(row.key for row in TRIAL_STAGES)
GATE_CHECKS: tuple[dg.AssetCheckKey, ...] = tuple(row.check for row in GATED_STAGES if row.check is not None)

#: Every stage's code version in one: part of the sensor's run keys and of each deployment
#: record, so a change to any stage is a new pipeline version.
PIPELINE_CODE_VERSION = hashlib.sha256(
    "|".join(f"{row.name}={row.code_version}" for row in TRIAL_STAGES).encode()
).hexdigest()[:12]


def stage_of(key: dg.AssetKey) -> TrialStage:
    """The row of a trial asset."""
    for row in TRIAL_STAGES:
        if row.key == key:
            return row
    raise KeyError(f"{key.to_user_string()} is not a trial asset; trial assets: {[r.name for r in TRIAL_STAGES]}")


def later_stages(row: TrialStage) -> tuple[TrialStage, ...]:
    """The rows after ``row``."""
    return TRIAL_STAGES[TRIAL_STAGES.index(row) + 1 :]
