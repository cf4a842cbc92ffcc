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
from collections.abc import Iterator, Mapping

import dagster as dg

from pipeline_assets import deployment_stage
from pipeline_assets.deflation import set_study_contexts
from pipeline_assets.errors import TRANSIENT_RETRY_POLICY, fail_for, no_retry_for_deterministic_errors
from pipeline_assets.optuna_trial_stage import OPTUNA_TRIAL, snapshots_from_artifacts, snapshots_from_optuna
from pipeline_assets.paper_stage import BrokerVenue
from pipeline_assets.partitions import trials_partitions_def
from pipeline_assets.trial_keys import MAX_TRIALS_PER_RUN
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
from resources.io_manager import PartitionValues
from resources.market_data import InstrumentsResource
from resources.optuna_study import StudySourceResource
from resources.paper_broker import PaperBrokerResource
from resources.registry import DeploymentRegistryResource
from resources.strategy_plugins import StrategyPluginsResource
from simulations.errors import ArtifactError, ConfigurationError, MarketDataError, PipelineError
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


def instruments_of(
    run: StageRun,
    instruments: InstrumentsResource,
    market_data: Mapping[str, MarketWindows],
    cge_scenarios: Mapping[str, StressScenarios],
) -> dict[str, str]:
    """Each trial's instrument, for the trials whose instrument's shared assets are built; the
    others fail with an error that says which instrument and how to build it."""
    found: dict[str, str] = {}
    for key, snapshot in run.snapshots.items():
        try:
            name = instruments.instrument_of(snapshot.study_name)
        except PipelineError as exc:
            run.fail(key, "instrument", exc)
            continue
        try:
            # Read here: an instrument whose data is missing or damaged fails its own trials only.
            market_data[name], cge_scenarios[name]
        except KeyError:
            run.fail(key, "instrument", ConfigurationError(
                f"instrument {name!r} (of study {snapshot.study_name!r}) is not a partition of the shared assets "
                "of this code location: reload the code location after changing instruments"
            ))
        except ArtifactError as exc:
            run.fail(key, "instrument", MarketDataError(
                f"instrument {name!r} (of study {snapshot.study_name!r}): {exc.cause}; materialize shared_job for "
                f"partition {name!r} (the UI, or `gauntlet run`) and run the trial again"
            ))
        else:
            found[key] = name
    return found


@dg.multi_asset(
    name="trial_gauntlet",
    specs=[row.spec(trials_partitions_def) for row in TRIAL_STAGES],
    check_specs=[row.check_spec(trials_partitions_def) for row in GATED_STAGES],
    # Every instrument's partition (the specs map them all), loaded as `PartitionValues`: read only
    # for the instruments the run's trials trade, so one whose data failed to build stops its own trials only.
    ins={"market_data": dg.AssetIn(MARKET_DATA), "cge_scenarios": dg.AssetIn(CGE_SCENARIOS)},
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_TRIALS_PER_RUN),
    retry_policy=TRANSIENT_RETRY_POLICY,
)
def trial_gauntlet(
    context: dg.AssetExecutionContext,
    market_data: PartitionValues,
    cge_scenarios: PartitionValues,
    optuna_study: StudySourceResource,
    artifacts: ArtifactStoreResource,
    instruments: InstrumentsResource,
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
        run.instrument_of = instruments_of(run, instruments, market_data, cge_scenarios)
        for name in sorted(set(run.instrument_of.values())):
            market = instruments.market(name)
            run.inputs[name] = GauntletInputs(
                windows=market_data[name],
                scenarios=cge_scenarios[name],
                policy=run.policy,
                fee_bps=market.fee_bps,
                slippage_bps=market.slippage_bps,
                paper=BrokerVenue(
                    paper_broker, name, market_data[name], (market.fee_bps, market.slippage_bps), strategies
                ),
                strategies=strategies,
            )
        run.alive = [k for k in run.keys if k in run.instrument_of]
        if GATED_STAGES[0].key in selected:
            set_study_contexts(run, optuna_study)
        for row in GATED_STAGES:
            assert row.stage is not None
            evaluate = row.stage.evaluate
            yield from run.gate(row, run.alive, lambda key: evaluate(run.case(key), run.inputs_for(key)), later_stages(row))
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
