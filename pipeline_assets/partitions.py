"""The `trials` dynamic partitions: one per Optuna trial, keyed as `pipeline_assets.trial_keys` says."""

from __future__ import annotations

import dagster as dg

from pipeline_assets.trial_keys import TRIALS_PARTITIONS_NAME

trials_partitions_def = dg.DynamicPartitionsDefinition(name=TRIALS_PARTITIONS_NAME)
