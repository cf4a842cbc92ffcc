"""The trial stages by name, in the order a trial meets them: each stage's asset, its gate, and
the words for where a trial stands.

No numpy, no Dagster: the stage table (`pipeline_assets.stage_table`) and the pure stages
(`simulations.gauntlet.STAGES`) take their names from here, and ``gauntlet status`` reads the
instance with these names alone. A new stage is a row here and its row in those two tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulations.gates import GateName


@dataclass(frozen=True, slots=True)
class StageNames:
    """A stage's names.

    Attributes
    ----------
    asset
        The trial asset it produces (a one-part asset key, partitioned by trial).
    reached
        What a trial that has this asset is said to be (``backtested``, ``graded``, ...).
    gate
        The gate (an asset check on ``asset``) that decides whether the trial goes on, if any.
    waiting
        What a trial whose result here is pending is said to be (``paper_pending``), if it can be.
    """

    asset: str
    reached: str
    gate: GateName | None = None
    waiting: str | None = None


OPTUNA_TRIAL_NAMES = StageNames(asset="optuna_trial", reached="snapshot")
BACKTEST_NAMES = StageNames(asset="backtest_results", reached="backtested", gate="backtest_gate")
STRESS_NAMES = StageNames(asset="cge_stress_report", reached="stressed", gate="cge_gate")
PAPER_NAMES = StageNames(
    asset="paper_trading_grade", reached="graded", gate="paper_trading_gate", waiting="paper_pending"
)
DEPLOYMENT_NAMES = StageNames(asset="deployment_record", reached="decided")

#: Every trial stage, in pipeline order.
TRIAL_STAGE_NAMES: tuple[StageNames, ...] = (
    OPTUNA_TRIAL_NAMES,
    BACKTEST_NAMES,
    STRESS_NAMES,
    PAPER_NAMES,
    DEPLOYMENT_NAMES,
)
#: The gates in the order a trial meets them.
GATE_ORDER: tuple[GateName, ...] = tuple(names.gate for names in TRIAL_STAGE_NAMES if names.gate is not None)

#: A failed gate evaluation's metadata entry holding each threshold it failed, with value, rule
#: and margin: read back by `gauntlet status` and the gate alerts.
FAILED_THRESHOLDS = "failed_thresholds"


def trial_stage_labels() -> tuple[str, ...]:
    """Where a trial can stand, in pipeline order: ``detected``, then each stage's labels."""
    labels = ["detected"]
    for names in TRIAL_STAGE_NAMES:
        labels += [label for label in (names.waiting, names.reached) if label]
    return tuple(labels)
