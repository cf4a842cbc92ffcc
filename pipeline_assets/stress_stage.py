"""Gate 2: each trial's strategy on 200 CGE scenario paths, with the backtester of gate 1."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np

from pipeline_assets.metadata import number, png_markdown, records_table
from pipeline_assets.plots import bars_png
from pipeline_assets.shared_assets import StressScenarios
from pipeline_assets.stages import TrialBatch, content_hash, gate_evaluation, parquet_bytes, versioned_tags
from simulations.errors import PipelineError, TrialDataError
from simulations.gates import GateVerdict, evaluate_cge_gate
from simulations.strategies import build_strategy
from simulations.stress import StressReport, stress_test
from simulations.trial import TrialSnapshot

CGE_STRESS_REPORT = dg.AssetKey("cge_stress_report")
CGE_GATE = dg.AssetCheckKey(CGE_STRESS_REPORT, "cge_gate")

SUMMARY_UNITS = {
    "share_profitable": "fraction of scenarios",
    "median_sharpe": "annualised",
    "median_max_drawdown": "fraction",
    "p95_max_drawdown": "fraction",
    "worst_return": "fraction",
    "n_catastrophic": "scenarios",
    "expected_shortfall_5": "mean return of worst 5 %",
}


@dataclass(frozen=True)
class StressOutcome:
    """What gate 2 found for one trial."""

    report: StressReport
    summary: dict[str, float | int]
    verdict: GateVerdict


def evaluate_trial(
    snapshot: TrialSnapshot, *, scenarios: StressScenarios, batch: TrialBatch, fee_bps: float, slippage_bps: float
) -> StressOutcome:
    """Stress one trial on every scenario path and apply gate 2 (pure: no Dagster)."""
    name = snapshot.user_attrs.get("strategy")
    if not isinstance(name, str):
        raise TrialDataError("user_attr 'strategy' is missing or not a string: the trial names no strategy")
    strategy, params = build_strategy(name=name, params=snapshot.params)
    n_paths, n_bars = scenarios.paths.shape
    warmup = np.broadcast_to(scenarios.warmup, (n_paths, scenarios.warmup.size))
    full = np.concatenate([warmup, scenarios.paths], axis=1)
    positions = strategy.positions(close=full, params=params)[:, -n_bars:]
    report = stress_test(
        close_paths=scenarios.paths,
        positions=positions,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        periods_per_year=scenarios.periods_per_year,
        catastrophic_loss=batch.policy.cge.catastrophic_loss,
    )
    summary = report.summary
    verdict = evaluate_cge_gate(summary=summary, policy=batch.policy)
    return StressOutcome(report=report, summary=summary, verdict=verdict)


def evaluate_batch(
    batch: TrialBatch, keys: Sequence[str], *, scenarios: StressScenarios, fee_bps: float, slippage_bps: float
) -> dict[str, StressOutcome]:
    """Gate 2 for every trial in ``keys``; per-trial errors are recorded on the batch."""
    outcomes: dict[str, StressOutcome] = {}
    for key in keys:
        try:
            outcomes[key] = evaluate_trial(
                batch.snapshots[key], scenarios=scenarios, batch=batch, fee_bps=fee_bps, slippage_bps=slippage_bps
            )
        except PipelineError as exc:
            batch.fail(key, "cge_stress_report", exc)
    return outcomes


def events(
    batch: TrialBatch, outcomes: Mapping[str, StressOutcome], scenarios: StressScenarios
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Store each trial's per-scenario table and yield its materialization and gate result."""
    for key, outcome in outcomes.items():
        snapshot = batch.snapshots[key]
        payload = {
            "trial": snapshot.label,
            "snapshot_hash": snapshot.content_hash,
            "sam_sha256": scenarios.sam_sha256,
            "seeds": list(scenarios.seeds),
            "summary": outcome.summary,
            "verdict": outcome.verdict.model_dump(mode="json"),
        }
        version = content_hash(payload)
        base = f"trials/{key}"
        batch.artifacts.write_bytes(f"{base}/cge_stress_scenarios.parquet", parquet_bytes(outcome.report.table))
        batch.artifacts.write_bytes(f"{base}/cge_stress_report.json", json.dumps(payload, sort_keys=True).encode())
        rows = [{"measure": k, "value": outcome.summary[k], "unit": u} for k, u in SUMMARY_UNITS.items()]
        returns = outcome.report.table["total_return"].to_numpy()
        yield dg.AssetMaterialization(
            asset_key=CGE_STRESS_REPORT,
            partition=key,
            description=f"{snapshot.label}: {outcome.verdict.reason}",
            metadata={
                "trial": snapshot.label,
                "scenarios": int(returns.size),
                "share_profitable": number(float(outcome.summary["share_profitable"])),
                "median_sharpe": number(float(outcome.summary["median_sharpe"])),
                "worst_return": number(float(outcome.summary["worst_return"])),
                "n_catastrophic": int(outcome.summary["n_catastrophic"]),
                "gate": "pass" if outcome.verdict.passed else "FAIL",
                "summary": records_table(rows, [("measure", "name"), ("value", "value"), ("unit", "unit")]),
                "scenario_returns": png_markdown(
                    bars_png(returns, label=f"{snapshot.label} return per scenario", threshold=0.0),
                    alt="histogram of scenario returns",
                ),
                "artifacts": dg.MetadataValue.path(batch.artifacts.uri(base)),
            },
            tags=versioned_tags(version),
        )
        yield gate_evaluation(CGE_STRESS_REPORT, key, outcome.verdict)
