"""Per-trial assets: one multi-asset step that evaluates a batch of trials stage by stage.

Why one step: a run over many trials must record each trial's gate result for its own
partition and carry only the passing trials downstream (DESIGN.md: blocking checks are not
per partition in multi-partition runs). Dagster materializes every partition of a run when an
asset returns an output, so each stage here yields one `AssetMaterialization` and one
`AssetCheckEvaluation` per trial instead, and the next stage sees only the trials that passed.
`can_subset=True` lets a user rematerialize any stage alone from the UI; earlier stages are
then read back from the artifact store, and the gates before it from the instance.
"""

import itertools
import warnings
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from pipeline_assets import backtest_stage, deployment_stage, paper_stage, stress_stage
from pipeline_assets.backtest_stage import BACKTEST_GATE, BACKTEST_RESULTS
from pipeline_assets.errors import TRANSIENT_RETRY_POLICY, fail_for, no_retry_for_deterministic_errors
from pipeline_assets.metadata import key_value_table
from pipeline_assets.partitions import (
    parse_trial_partition_key,
    study_key_prefix,
    trials_partitions_def,
)
from pipeline_assets.shared_assets import CGE_SCENARIOS, MARKET_DATA, StressScenarios
from pipeline_assets.deployment_stage import DEPLOYMENT_RECORD
from pipeline_assets.paper_stage import PAPER_GATE, PAPER_TRADING_GRADE
from pipeline_assets.stress_stage import CGE_GATE, CGE_STRESS_REPORT
from pipeline_assets.stages import PIPELINE_CODE_VERSION, TrialBatch, passed_in_instance, versioned_tags
from resources.artifacts import ArtifactStoreResource
from resources.deployment_policy import DeploymentPolicyResource
from resources.gate_policy import GatePolicyResource
from resources.market_data import MarketDataResource
from resources.optuna_study import StudySourceResource
from resources.paper_broker import PaperBrokerResource
from resources.registry import DeploymentRegistryResource
from resources.strategy_plugins import StrategyPluginsResource
from simulations.errors import PipelineError, TrialDataError
from simulations.market import MarketWindows
from simulations.trial import TrialSnapshot

# Partitioned asset checks are preview in Dagster 1.13; DESIGN.md relies on them knowingly, so
# the warning would only repeat on every code-location load.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)

#: Upper bound of trials evaluated in one run (UI backfills and sensor batches alike).
MAX_TRIALS_PER_RUN = 100

TRIALS_GROUP = "trials"
OPTUNA_TRIAL = dg.AssetKey("optuna_trial")
STUDY_TAG = "gauntlet/study"
OWNERS = ["team:quant-research"]


def snapshot_artifact_key(partition_key: str) -> str:
    """Where the `optuna_trial` snapshot of a partition is stored."""
    return f"trials/{partition_key}/optuna_trial.json"


def resolve_trials(keys: Sequence[str], study_names: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Map partition keys to (study name, trial number) using the studies in the storage."""
    by_prefix = {study_key_prefix(name): name for name in study_names}
    resolved: dict[str, tuple[str, int]] = {}
    for key in keys:
        try:
            prefix, number = parse_trial_partition_key(key)
        except ValueError as exc:
            raise TrialDataError(str(exc), trial=key) from exc
        if prefix not in by_prefix:
            raise TrialDataError(f"no study in the Optuna storage has key prefix {prefix!r}", trial=key)
        resolved[key] = (by_prefix[prefix], number)
    return resolved


def _snapshots_from_optuna(batch: TrialBatch, optuna_study: StudySourceResource) -> None:
    resolved = resolve_trials(batch.keys, optuna_study.list_studies())
    keys_by_study: dict[str, dict[int, str]] = defaultdict(dict)
    for key, (study, number) in resolved.items():
        keys_by_study[study][number] = key
    for study, keys in keys_by_study.items():
        try:
            found = {s.number: s for s in optuna_study.get_trials(study, list(keys))}
        except TrialDataError:
            # One bad trial must not hide the others: read them one by one.
            found = {}
            for number, key in keys.items():
                try:
                    found[number] = optuna_study.get_trials(study, [number])[0]
                except TrialDataError as exc:
                    batch.fail(key, "optuna_trial", exc)
        for number, snapshot in found.items():
            batch.snapshots[keys[number]] = snapshot


def _snapshots_from_artifacts(batch: TrialBatch) -> None:
    for key in batch.keys:
        try:
            raw = batch.artifacts.read_bytes(snapshot_artifact_key(key))
            batch.snapshots[key] = TrialSnapshot.from_json(raw.decode())
        except PipelineError as exc:
            batch.fail(key, "optuna_trial", exc)


def _optuna_trial_events(batch: TrialBatch) -> Iterator[dg.AssetMaterialization]:
    for key, snap in batch.snapshots.items():
        artifact = snapshot_artifact_key(key)
        batch.artifacts.write_bytes(artifact, snap.to_json().encode())
        yield dg.AssetMaterialization(
            asset_key=OPTUNA_TRIAL,
            partition=key,
            metadata={
                "study": snap.study_name,
                "trial_number": snap.number,
                "trial_id": snap.trial_id,
                "objective": dg.MetadataValue.float(snap.value) if snap.value is not None else "none",
                "strategy": str(snap.user_attrs.get("strategy", "—")),
                "params": key_value_table(snap.params, key="param"),
                "user_attrs": dg.MetadataValue.json(snap.user_attrs),
                "completed_at": snap.datetime_complete.isoformat() if snap.datetime_complete else "—",
                "content_hash": snap.content_hash,
                "artifact": dg.MetadataValue.path(batch.artifacts.uri(artifact)),
            },
            tags=versioned_tags(snap.content_hash),
        )


def _spec(key: dg.AssetKey, description: str, deps: list, kinds: set[str]) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        description=description,
        deps=deps,
        partitions_def=trials_partitions_def,
        group_name=TRIALS_GROUP,
        code_version=PIPELINE_CODE_VERSION,
        kinds=kinds,
        owners=OWNERS,
    )


@dg.multi_asset(
    name="trial_gauntlet",
    specs=[
        _spec(
            OPTUNA_TRIAL,
            "A completed Optuna trial: its params, objective and attributes, frozen as a snapshot.",
            [],
            {"optuna"},
        ),
        _spec(
            BACKTEST_RESULTS,
            "The trial's strategy backtested out of sample on the backtest window: metrics, trades, equity.",
            [OPTUNA_TRIAL, MARKET_DATA],
            {"numpy", "parquet"},
        ),
        _spec(
            CGE_STRESS_REPORT,
            "The trial's strategy on 200 CGE stress-scenario paths: per-scenario return, Sharpe, drawdown.",
            [BACKTEST_RESULTS, CGE_SCENARIOS],
            {"scipy", "parquet"},
        ),
        _spec(
            PAPER_TRADING_GRADE,
            "The trial paper-traded on the forward window nobody has seen, graded A to F once mature.",
            [CGE_STRESS_REPORT],
            {"sqlalchemy"},
        ),
        _spec(
            DEPLOYMENT_RECORD,
            "The deployment decision for a trial that passed every gate, as written to the registry.",
            [PAPER_TRADING_GRADE],
            {"sqlalchemy"},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            BACKTEST_GATE.name,
            asset=BACKTEST_RESULTS,
            blocking=True,
            partitions_def=trials_partitions_def,
            description="Gate 1: out-of-sample return, Sharpe, drawdown, trades and Deflated Sharpe "
            "against thresholds that tighten as the study matures.",
        ),
        dg.AssetCheckSpec(
            CGE_GATE.name,
            asset=CGE_STRESS_REPORT,
            blocking=True,
            partitions_def=trials_partitions_def,
            description="Gate 2: share of profitable scenarios, median Sharpe, median drawdown and "
            "catastrophic losses over the CGE stress scenarios.",
        ),
        dg.AssetCheckSpec(
            PAPER_GATE.name,
            asset=PAPER_TRADING_GRADE,
            blocking=True,
            partitions_def=trials_partitions_def,
            description="Gate 3: at least the minimum days of paper trading and a grade in the required grades.",
        ),
    ],
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
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.AssetObservation]:
    """Evaluate a batch of trials through every selected stage, one partition per trial.

    ``strategy_plugins`` is required only for its setup: it registers the users' strategies.
    """
    with no_retry_for_deterministic_errors():
        batch = TrialBatch(keys=list(context.partition_keys), policy=gate_policy.policy(), artifacts=artifacts)
        context.log.info(f"evaluating {len(batch.keys)} trial(s): {batch.keys[0]} … {batch.keys[-1]}")

        if OPTUNA_TRIAL in context.selected_asset_keys:
            _snapshots_from_optuna(batch, optuna_study)
            yield from _optuna_trial_events(batch)
        else:
            _snapshots_from_artifacts(batch)
        alive = [k for k in batch.keys if k in batch.snapshots]
        costs = {"fee_bps": market.fee_bps, "slippage_bps": market.slippage_bps}

        def backtest(keys: list[str]) -> dict[str, Any]:
            studies = sorted({batch.snapshots[k].study_name for k in keys})
            objectives = {s: optuna_study.completed_objectives(s) for s in studies}
            return backtest_stage.evaluate_batch(batch, keys, windows=market_data, objectives_by_study=objectives, **costs)

        alive = yield from _stage(
            context, BACKTEST_GATE, alive, backtest, lambda out: backtest_stage.events(batch, out, market_data)
        )
        alive = yield from _stage(
            context,
            CGE_GATE,
            alive,
            lambda keys: stress_stage.evaluate_batch(batch, keys, scenarios=cge_scenarios, **costs),
            lambda out: stress_stage.events(batch, out, cge_scenarios),
        )

        def paper(keys: list[str]) -> dict[str, Any]:
            graded, pending = paper_stage.evaluate_batch(batch, keys, broker=paper_broker, windows=market_data)
            pending_sessions.update(pending)
            return graded

        pending_sessions: dict[str, Any] = {}
        alive = yield from _stage(
            context,
            PAPER_GATE,
            alive,
            paper,
            lambda out: itertools.chain(
                paper_stage.pending_events(batch, pending_sessions), paper_stage.events(batch, out)
            ),
        )
        context.log.info(f"{len(alive)} of {len(batch.keys)} trial(s) passed every gate evaluated")
        if DEPLOYMENT_RECORD in context.selected_asset_keys and alive:
            records = deployment_stage.decide_batch(batch, alive, registry=registry, policy=deployment_policy)
            yield from deployment_stage.events(batch, records, registry)
        fail_for(batch.errors)


Events = Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]


def _stage(
    context: dg.AssetExecutionContext,
    gate: dg.AssetCheckKey,
    alive: list[str],
    evaluate: Callable[[list[str]], Mapping[str, Any]],
    emit: Callable[[Mapping[str, Any]], Events],
) -> Generator[dg.AssetMaterialization | dg.AssetCheckEvaluation, None, list[str]]:
    """Run one gated stage on the trials still alive; return those that pass its gate.

    When the stage is not selected (a user rematerializes a later asset alone), the trials
    that go on are those whose latest evaluation of this gate passed.
    """
    if gate.asset_key not in context.selected_asset_keys:
        passed = passed_in_instance(context.instance, gate, alive)
        return [k for k in alive if k in passed]
    outcomes = evaluate(alive)
    yield from emit(outcomes)
    return [k for k in alive if k in outcomes and outcomes[k].verdict.passed]
