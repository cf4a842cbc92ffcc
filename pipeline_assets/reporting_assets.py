"""Study-wide reporting: where every trial of every study stands in the gauntlet."""

import json
from collections import Counter, defaultdict

import dagster as dg
import polars as pl

from pipeline_assets.backtest_stage import BACKTEST_GATE, BACKTEST_RESULTS
from pipeline_assets.dagster_private import AssetCheckExecutionRecordStatus
from pipeline_assets.deployment_stage import DEPLOYMENT_RECORD
from pipeline_assets.metadata import png_markdown, records_table
from pipeline_assets.paper_stage import PAPER_GATE, PAPER_TRADING_GRADE
from pipeline_assets.partitions import parse_trial_partition_key, trials_partitions_def
from pipeline_assets.plots import funnel_png
from pipeline_assets.stress_stage import CGE_GATE, CGE_STRESS_REPORT
from pipeline_assets.trial_assets import OPTUNA_TRIAL
from resources.artifacts import ArtifactStoreResource
from resources.paper_broker import PaperBrokerResource
from resources.registry import DeploymentRegistryResource

REPORTING_GROUP = "reporting"
STUDY_FUNNEL = dg.AssetKey("study_funnel")
LEADERBOARD_SIZE = 10

#: Funnel stages in order; each counts trials that reached it.
STAGES = (
    "detected",
    "backtested",
    "passed_gate_1",
    "stressed",
    "passed_gate_2",
    "paper_pending",
    "graded",
    "passed_gate_3",
    "promoted",
)


def _passed(instance: dg.DagsterInstance, check: dg.AssetCheckKey) -> set[str]:
    infos = instance.event_log_storage.get_asset_check_partition_info([check])
    return {
        i.partition_key
        for i in infos
        if i.partition_key and i.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED
    }


def funnel_rows(
    instance: dg.DagsterInstance, *, pending: set[str], promoted: set[str]
) -> list[dict[str, object]]:
    """Per study, the number of trials that reached each stage, and the pass rates."""
    keys = instance.get_dynamic_partitions(trials_partitions_def.name)
    sets = {
        "detected": set(keys),
        "backtested": instance.get_materialized_partitions(BACKTEST_RESULTS),
        "passed_gate_1": _passed(instance, BACKTEST_GATE),
        "stressed": instance.get_materialized_partitions(CGE_STRESS_REPORT),
        "passed_gate_2": _passed(instance, CGE_GATE),
        "paper_pending": pending,
        "graded": instance.get_materialized_partitions(PAPER_TRADING_GRADE),
        "passed_gate_3": _passed(instance, PAPER_GATE),
        "promoted": promoted,
    }
    studies: dict[str, Counter] = defaultdict(Counter)
    for key in keys:
        prefix, _ = parse_trial_partition_key(key)
        for stage in STAGES:
            if key in sets[stage]:
                studies[prefix][stage] += 1
    rows = []
    for study, counts in sorted(studies.items()):
        row: dict[str, object] = {"study": study, **{stage: counts[stage] for stage in STAGES}}
        for gate, (passed, tried) in {
            "gate_1_pass_rate": ("passed_gate_1", "backtested"),
            "gate_2_pass_rate": ("passed_gate_2", "stressed"),
            "gate_3_pass_rate": ("passed_gate_3", "graded"),
        }.items():
            row[gate] = counts[passed] / counts[tried] if counts[tried] else None
        rows.append(row)
    return rows


def leaderboard(
    graded_passing: set[str], artifacts: ArtifactStoreResource, size: int = LEADERBOARD_SIZE
) -> list[dict[str, object]]:
    """The best trials that passed gate 3, by paper Sharpe ratio."""
    entries = []
    for key in graded_passing:
        payload = json.loads(artifacts.read_bytes(f"trials/{key}/paper_trading_grade.json"))
        metrics = payload["metrics"]
        entries.append(
            {
                "trial": payload["trial"],
                "partition": key,
                "grade": metrics["grade"],
                "paper_sharpe": metrics["sharpe"],
                "paper_return": metrics["total_return"],
                "paper_max_drawdown": metrics["max_drawdown"],
            }
        )
    return sorted(entries, key=lambda e: -float(e["paper_sharpe"]))[:size]


@dg.asset(
    key=STUDY_FUNNEL,
    deps=[OPTUNA_TRIAL, BACKTEST_RESULTS, CGE_STRESS_REPORT, PAPER_TRADING_GRADE, DEPLOYMENT_RECORD],
    group_name=REPORTING_GROUP,
    io_manager_key="shared_io_manager",
    kinds={"polars"},
    owners=["team:quant-research"],
    description="Every study's trials counted at each stage of the gauntlet, with pass rates and a leaderboard.",
)
def study_funnel(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactStoreResource,
    paper_broker: PaperBrokerResource,
    registry: DeploymentRegistryResource,
) -> dg.Output[pl.DataFrame]:
    instance = context.instance
    graded = instance.get_materialized_partitions(PAPER_TRADING_GRADE)
    pending = {s.trial_key for s in paper_broker.sessions() if s.trial_key not in graded and s.status != "stopped"}
    promoted = {d.partition_key for d in registry.decisions() if d.decision == "promoted"}
    rows = funnel_rows(instance, pending=pending, promoted=promoted)
    frame = pl.DataFrame(rows) if rows else pl.DataFrame(schema={"study": pl.String})
    totals = [(stage, sum(int(r[stage]) for r in rows)) for stage in STAGES]
    board = leaderboard(_passed(instance, PAPER_GATE) & graded, artifacts)
    columns = [("study", "key prefix")] + [(s, "trials") for s in STAGES] + [
        ("gate_1_pass_rate", "passed / backtested"),
        ("gate_2_pass_rate", "passed / stressed"),
        ("gate_3_pass_rate", "passed / graded"),
    ]
    return dg.Output(
        frame,
        metadata={
            "studies": len(rows),
            "trials": totals[0][1],
            "promoted": totals[-1][1],
            "funnel": records_table(rows, columns),
            "leaderboard": records_table(
                board,
                [
                    ("trial", "study#number"),
                    ("partition", "key"),
                    ("grade", "A–F"),
                    ("paper_sharpe", "annualised"),
                    ("paper_return", "fraction"),
                    ("paper_max_drawdown", "fraction"),
                ],
            ),
            "funnel_chart": png_markdown(funnel_png(totals), alt="trials per stage"),
        },
    )


reporting_job = dg.define_asset_job(
    name="reporting_job", selection=dg.AssetSelection.assets(STUDY_FUNNEL), description="Refreshes the study funnel."
)

study_funnel_schedule = dg.ScheduleDefinition(
    name="study_funnel_schedule",
    job=reporting_job,
    cron_schedule="*/5 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refreshes study_funnel every five minutes.",
)
