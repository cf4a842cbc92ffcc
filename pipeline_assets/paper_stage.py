"""Gate 3's row of the stage table: each surviving trial paper-traded forward, graded A–F once mature."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import polars as pl

from pipeline_assets.metadata import png_inline, records_table
from pipeline_assets.plots import lines_png
from pipeline_assets.stages import StageRecord, StageRun, TrialStage, content_hash, parquet_bytes, stage_artifact
from pipeline_assets.stress_stage import STRESS
from resources.paper_broker import PaperBrokerResource, SessionInfo
from simulations.gauntlet import PaperOutcome, PaperPending, stage_for_gate
from simulations.market import MarketWindows
from simulations.strategies import StrategyRegistry


@dataclass(frozen=True)
class BrokerVenue:
    """The paper broker as the gauntlet's paper venue, trading the forward window of the run's `market_data`."""

    broker: PaperBrokerResource
    windows: MarketWindows
    strategies: StrategyRegistry

    def advance(self, *, trial_key: str, strategy_name: str, params: Mapping[str, Any]) -> SessionInfo:
        self.broker.start_session(
            trial_key=trial_key, strategy_name=strategy_name, params=params, windows=self.windows,
            strategies=self.strategies,
        )
        return self.broker.sync(trial_key=trial_key, windows=self.windows, strategies=self.strategies)

    def bars(self, *, trial_key: str) -> pl.DataFrame:
        return self.broker.report(trial_key=trial_key).bars


def pending(run: StageRun, key: str, result: PaperPending) -> dg.AssetObservation:
    """A pending session is neither materialized nor failed: it is observed, with its progress."""
    session = result.session
    return dg.AssetObservation(
        asset_key=PAPER.key,
        partition=key,
        description=f"paper trading pending: {session.days_elapsed:.2f} of {result.min_days:g} days",
        metadata={
            "status": "pending",
            "days_elapsed": dg.MetadataValue.float(session.days_elapsed),
            "min_days": dg.MetadataValue.float(result.min_days),
            "bars_processed": session.bars_processed,
            "clock": session.clock,
        },
    )


def record(run: StageRun, key: str, outcome: PaperOutcome) -> StageRecord:
    """Store one graded session's bars and summary and describe it for the UI."""
    snapshot = run.snapshots[key]
    m = outcome.metrics
    payload = {
        "trial": snapshot.label,
        "snapshot_hash": snapshot.content_hash,
        "forward_sha256": outcome.session.forward_sha256,
        "metrics": m.model_dump(mode="json"),
        "verdict": outcome.verdict.model_dump(mode="json"),
    }
    base = f"trials/{key}"
    run.artifacts.write_bytes(f"{base}/paper_bars.parquet", parquet_bytes(outcome.bars))
    run.artifacts.write_bytes(stage_artifact(key, PAPER), json.dumps(payload, sort_keys=True).encode())
    equity = outcome.bars["equity"].to_numpy()
    rows = [
        {"check": c.name, "value": c.value, "rule": f"{c.comparator} {c.threshold:.6g}", "verdict": "pass" if c.passed else "fail"}
        for c in m.grading_checks
    ]
    png = lines_png(
        [("paper", equity), ("buy and hold", outcome.benchmark)],
        title=f"{snapshot.label} paper",
        drawdown_of=equity,
        timestamps=outcome.bars["timestamp"],
    )
    reconciliation = m.reconciliation
    return StageRecord(
        description=f"{snapshot.label}: grade {m.grade}; {outcome.verdict.reason}\n\n"
        f"{png_inline(png, alt='paper equity against buy and hold')}",
        data_version=content_hash(payload),
        metadata={
            "trial": snapshot.label,
            "grade": m.grade,
            "days": dg.MetadataValue.float(m.days),
            "sharpe": dg.MetadataValue.float(m.sharpe),
            "total_return": dg.MetadataValue.float(m.total_return),
            "benchmark_total_return": dg.MetadataValue.float(m.benchmark_total_return),
            "probabilistic_sharpe": dg.MetadataValue.float(m.probabilistic_sharpe),
            "min_track_record_days": (
                dg.MetadataValue.float(m.min_track_record_days)
                if m.min_track_record_days is not None
                else "undefined (Sharpe <= 0)"
            ),
            "grading_checks": records_table(
                rows, [("check", "name"), ("value", "measured"), ("rule", "threshold"), ("verdict", "pass / fail")]
            ),
            "reconciliation_correlation": (
                dg.MetadataValue.float(reconciliation.correlation)
                if reconciliation.correlation is not None
                else "undefined (no variance)"
            ),
            "reconciliation_tracking_difference": dg.MetadataValue.float(reconciliation.tracking_difference),
            "clock": outcome.session.clock,
            "artifacts": dg.MetadataValue.path(run.artifacts.uri(base)),
        },
    )


_STAGE = stage_for_gate("paper_trading_gate")
PAPER = TrialStage(
    key=dg.AssetKey(_STAGE.asset),
    description="The trial paper-traded on the forward window nobody has seen, graded A to F once mature.",
    deps=(STRESS.key,),
    kinds=frozenset({"sqlalchemy"}),
    code_version=_STAGE.code_version,
    reached="graded",
    waiting="paper_pending",
    stage=_STAGE,
    check_description="Gate 3: at least the minimum days of paper trading and a grade in the required grades.",
    record=record,
    pending=pending,
)
