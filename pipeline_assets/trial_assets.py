"""Per-trial assets: one multi-asset step, built from the stage table, that evaluates a batch of trials.

Why one step: a run over many trials must record each trial's gate result for its own
partition and carry only the passing trials downstream (DESIGN.md: blocking checks are not
per partition in multi-partition runs). Dagster materializes every partition of a run when an
asset returns an output, so each stage here yields one `AssetMaterialization` and one
`AssetCheckEvaluation` per trial instead, and the next stage sees only the trials that passed.
`can_subset=True` lets a user rematerialize any stage alone from the UI; earlier stages are
then read back from the artifact store, and the gates before it from the instance.
"""

import warnings
from collections.abc import Iterator

import dagster as dg

from pipeline_assets import deployment_stage
from pipeline_assets.deflation import set_study_contexts
from pipeline_assets.errors import TRANSIENT_RETRY_POLICY, fail_for, no_retry_for_deterministic_errors
from pipeline_assets.optuna_trial_stage import OPTUNA_TRIAL, snapshots_from_artifacts, snapshots_from_optuna
from pipeline_assets.paper_stage import BrokerVenue
from pipeline_assets.partitions import MAX_TRIALS_PER_RUN, trials_partitions_def
from pipeline_assets.shared_assets import CGE_SCENARIOS, MARKET_DATA
from pipeline_assets.stage_table import (
    GATED_STAGES,
    PIPELINE_CODE_VERSION,
    TRIAL_ASSET_KEYS,
    TRIAL_STAGES,
    later_stages,
)
from pipeline_assets.stages import StageRun
from resources.artifacts import ArtifactStoreResource
from resources.deployment_policy import DeploymentPolicyResource
from resources.gate_policy import GatePolicyResource
from resources.market_data import MarketDataResource
from resources.optuna_study import StudySourceResource
from resources.paper_broker import PaperBrokerResource
from resources.registry import DeploymentRegistryResource
from resources.strategy_plugins import StrategyPluginsResource
from simulations.gauntlet import GauntletInputs
from simulations.market import MarketWindows
from simulations.stress import StressScenarios

# Partitioned asset checks are preview in Dagster 1.13; DESIGN.md relies on them knowingly, so
# the warning would only repeat on every code-location load.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

STUDY_TAG = "gauntlet/study"
#: On a run whose deployment decision is a dry run (`gauntlet run --dry-run`): the trial
#: sensor still owes such a trial its real decision.
DRY_RUN_TAG = "gauntlet/dry_run"


@dg.multi_asset(
    name="trial_gauntlet",
    specs=[row.spec(trials_partitions_def) for row in TRIAL_STAGES],
    check_specs=[row.check_spec(trials_partitions_def) for row in GATED_STAGES],
    ins={"market_data": dg.AssetIn(MARKET_DATA), "cge_scenarios": dg.AssetIn(CGE_SCENARIOS)},
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_TRIALS_PER_RUN),
    retry_policy=TRANSIENT_RETRY_POLICY,
)
def trial_gauntlet(
    context: dg.AssetExecutionContext,
    market_data: MarketWindows,
    cge_scenarios: StressScenarios,
    optuna_study: StudySourceResource,
    artifacts: ArtifactStoreResource,
    market: MarketDataResource,
    gate_policy: GatePolicyResource,
    paper_broker: PaperBrokerResource,
    registry: DeploymentRegistryResource,
    deployment_policy: DeploymentPolicyResource,
    strategy_plugins: StrategyPluginsResource,
) -> Iterator[dg.Output | dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation]:
    """Evaluate a batch of trials through every selected stage of the stage table, one partition per trial."""
    with no_retry_for_deterministic_errors():
        selected = frozenset(context.selected_asset_keys)
        run = StageRun(
            instance=context.instance,
            run_id=context.run.run_id,
            keys=list(context.partition_keys),
            policy=gate_policy.policy(),
            artifacts=artifacts,
            selected=selected,
            trial_assets=frozenset(TRIAL_ASSET_KEYS),
        )
        context.log.info(f"evaluating {len(run.keys)} trial(s): {run.keys[0]} … {run.keys[-1]}")

        first = TRIAL_STAGES[0]
        if OPTUNA_TRIAL in selected:
            snapshots_from_optuna(run, optuna_study)
            yield from run.materializations(first, run.snapshots)
            run.remember(OPTUNA_TRIAL, list(run.snapshots))
        else:
            snapshots_from_artifacts(run)
        strategies = strategy_plugins.registry()
        run.inputs = GauntletInputs(
            windows=market_data,
            scenarios=cge_scenarios,
            policy=run.policy,
            fee_bps=market.fee_bps,
            slippage_bps=market.slippage_bps,
            paper=BrokerVenue(paper_broker, market_data, strategies),
            strategies=strategies,
        )
        if GATED_STAGES[0].key in selected:
            set_study_contexts(run, optuna_study)
        run.alive = [k for k in run.keys if k in run.snapshots]
        for row in GATED_STAGES:
            assert row.stage is not None
            evaluate = row.stage.evaluate
            yield from run.gate(row, run.alive, lambda key: evaluate(run.case(key), run.inputs), later_stages(row))
        run.outcomes["passed"] = len(run.alive)
        context.log.info(f"{len(run.alive)} of {len(run.keys)} trial(s) passed every gate evaluated")

        deployment = TRIAL_STAGES[-1]
        if deployment.key in selected and run.alive:
            records = deployment_stage.decide_batch(
                run, run.alive, registry=registry, policy=deployment_policy, code_version=PIPELINE_CODE_VERSION
            )
            yield from run.materializations(deployment, deployment_stage.decisions(records, registry))
        # Dagster expects an output for every selected check; the evaluations above are the results.
        for check_key in context.selected_asset_check_keys:
            yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))
        context.instance.add_run_tags(context.run.run_id, run.count_tags())
        fail_for(run.errors)
