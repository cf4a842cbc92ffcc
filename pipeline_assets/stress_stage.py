"""Gate 2's row of the stage table: each trial's strategy on every CGE stress-scenario path."""

from __future__ import annotations

import json

import dagster as dg

from pipeline_assets.backtest_stage import BACKTEST
from pipeline_assets.metadata import number, png_inline, records_table
from pipeline_assets.plots import bars_png
from pipeline_assets.shared_assets import CGE_SCENARIOS
from pipeline_assets.stages import StageRecord, StageRun, TrialStage, content_hash, parquet_bytes, stage_artifact
from simulations.gauntlet import StressOutcome, stage_for_gate

SUMMARY_UNITS = {
    "share_profitable": "fraction of scenarios",
    "median_sharpe": "annualised",
    "median_max_drawdown": "fraction",
    "p95_max_drawdown": "fraction",
    "worst_return": "fraction",
    "n_catastrophic": "scenarios",
    "expected_shortfall_5": "mean return of worst 5 %",
    "buy_hold_median_max_drawdown": "fraction (holding the instrument)",
    "median_drawdown_multiple": "of buy and hold",
}


def record(run: StageRun, key: str, outcome: StressOutcome) -> StageRecord:
    """Store one trial's per-scenario table and summary and describe it for the UI."""
    snapshot = run.snapshots[key]
    scenarios = run.inputs_for(key).scenarios
    payload = {
        "trial": snapshot.label,
        "snapshot_hash": snapshot.content_hash,
        "sam_sha256": scenarios.sam_sha256,
        "seeds": list(scenarios.seeds),
        "summary": outcome.summary,
        "verdict": outcome.verdict.model_dump(mode="json"),
    }
    base = f"trials/{key}"
    run.artifacts.write_bytes(f"{base}/cge_stress_scenarios.parquet", parquet_bytes(outcome.report.table))
    run.artifacts.write_bytes(stage_artifact(key, STRESS), json.dumps(payload, sort_keys=True).encode())
    rows = [{"measure": k, "value": outcome.summary[k], "unit": u} for k, u in SUMMARY_UNITS.items()]
    returns = outcome.report.table["total_return"].to_numpy()
    chart = bars_png(returns, label=f"{snapshot.label} return per stress scenario", threshold=0.0)
    return StageRecord(
        description=f"{snapshot.label}: {outcome.verdict.reason}\n\n{png_inline(chart, alt='scenario returns')}",
        data_version=content_hash(payload),
        metadata={
            "trial": snapshot.label,
            "scenarios": int(returns.size),
            "share_profitable": number(float(outcome.summary["share_profitable"])),
            "median_sharpe": number(float(outcome.summary["median_sharpe"])),
            "median_drawdown_multiple": number(float(outcome.summary["median_drawdown_multiple"])),
            "worst_return": number(float(outcome.summary["worst_return"])),
            "n_catastrophic": int(outcome.summary["n_catastrophic"]),
            "gate": "pass" if outcome.verdict.passed else "FAIL",
            "summary": records_table(rows, [("measure", "name"), ("value", "value"), ("unit", "unit")]),
            "artifacts": dg.MetadataValue.path(run.artifacts.uri(base)),
        },
    )


_STAGE = stage_for_gate("cge_gate")
STRESS = TrialStage(
    names=_STAGE.names,
    description="The trial's strategy on 200 CGE stress-scenario paths of its instrument: per-scenario return, "
    "Sharpe, drawdown.",
    deps=(BACKTEST.key, CGE_SCENARIOS),
    kinds=frozenset({"scipy", "parquet"}),
    code_version=_STAGE.code_version,
    stage=_STAGE,
    check_description="Gate 2: share of profitable scenarios, median Sharpe, median drawdown relative to buy and "
    "hold, and catastrophic losses over the CGE stress scenarios.",
    record=record,
)
