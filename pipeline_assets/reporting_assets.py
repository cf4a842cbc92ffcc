"""Study-wide reporting: where every trial of every study stands in the gauntlet."""

import json
from collections import Counter, defaultdict

import dagster as dg
import polars as pl

from resources.dagster_private import AssetCheckExecutionRecordStatus
from pipeline_assets.metadata import png_markdown, records_table
from pipeline_assets.partitions import trials_partitions_def
from pipeline_assets.trial_keys import parse_trial_partition_key
from pipeline_assets.plots import funnel_png
from pipeline_assets.stage_table import GATED_STAGES, TRIAL_ASSET_KEYS
from pipeline_assets.stages import TrialStage, stage_artifact
from resources.artifacts import ArtifactStoreResource
from resources.paper_broker import PaperBrokerResource
from resources.registry import DeploymentRegistryResource

REPORTING_GROUP = "reporting"
STUDY_FUNNEL = dg.AssetKey("study_funnel")
LEADERBOARD_SIZE = 10



def _passed_label(number: int) -> str:
    return f"passed_gate_{number}"


def _funnel_stages() -> tuple[str, ...]:
    stages = ["detected"]
    for number, row in enumerate(GATED_STAGES, start=1):
        stages += [label for label in (row.waiting, row.reached) if label] + [_passed_label(number)]
    return (*stages, "promoted")


#: Funnel stages in order (from the stage table); each counts trials that reached it.
STAGES = _funnel_stages()
#: Each gate's pass rate: (rate, passed, evaluated) columns.
PASS_RATES = tuple(
    (f"gate_{number}_pass_rate", _passed_label(number), row.reached)
    for number, row in enumerate(GATED_STAGES, start=1)
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
    sets: dict[str, set[str]] = {"detected": set(keys), "promoted": promoted}
    for number, row in enumerate(GATED_STAGES, start=1):
        assert row.check is not None
        sets[row.reached] = instance.get_materialized_partitions(row.key)
        sets[_passed_label(number)] = _passed(instance, row.check)
        if row.waiting:
            sets[row.waiting] = pending
    studies: dict[str, Counter] = defaultdict(Counter)
    for key in keys:
        prefix, _ = parse_trial_partition_key(key)
        for stage in STAGES:
            if key in sets[stage]:
                studies[prefix][stage] += 1
    rows = []
    for study, counts in sorted(studies.items()):
        row: dict[str, object] = {"study": study, **{stage: counts[stage] for stage in STAGES}}
        for gate, passed, tried in PASS_RATES:
            row[gate] = counts[passed] / counts[tried] if counts[tried] else None
        rows.append(row)
    return rows


def leaderboard(
    graded_passing: set[str], artifacts: ArtifactStoreResource, paper: TrialStage, size: int = LEADERBOARD_SIZE
) -> list[dict[str, object]]:
    """The best trials that passed the paper gate, by paper Sharpe ratio."""
    entries = []
    for key in graded_passing:
        payload = json.loads(artifacts.read_bytes(stage_artifact(key, paper)))
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
    deps=list(TRIAL_ASSET_KEYS),
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
    last_gate = GATED_STAGES[-1]
    assert last_gate.check is not None
    graded = instance.get_materialized_partitions(last_gate.key)
    pending = {s.trial_key for s in paper_broker.sessions() if s.trial_key not in graded and s.status != "stopped"}
    promoted = {d.partition_key for d in registry.decisions() if d.decision == "promoted"}
    rows = funnel_rows(instance, pending=pending, promoted=promoted)
    frame = pl.DataFrame(rows) if rows else pl.DataFrame(schema={"study": pl.String})
    totals = [(stage, sum(int(r[stage]) for r in rows)) for stage in STAGES]
    board = leaderboard(_passed(instance, last_gate.check) & graded, artifacts, last_gate)
    columns = [("study", "key prefix")] + [(s, "trials") for s in STAGES] + [
        (rate, f"passed / {tried}") for rate, _, tried in PASS_RATES
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
