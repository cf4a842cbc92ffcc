"""Gate 3's row of the stage table: each surviving trial paper-traded forward, graded A–F once mature."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from pipeline_assets.metadata import png_inline, records_table
from pipeline_assets.plots import lines_png
from pipeline_assets.stages import StageRecord, StageRun, TrialStage, content_hash, parquet_bytes, stage_artifact
from pipeline_assets.stress_stage import STRESS
from resources.paper_broker import PaperBrokerResource
from resources.paper_sessions import SessionInfo
from simulations.gates import SequentialTestPolicy
from simulations.gauntlet import PaperOutcome, PaperPending, stage_for_gate
from simulations.market import MarketWindows
from simulations.paper import PaperMetrics
from simulations.strategies import StrategyRegistry


@dataclass(frozen=True)
class BrokerVenue:
    """The paper broker as the gauntlet's paper venue, trading the forward window of one instrument's `market_data`."""

    broker: PaperBrokerResource
    instrument: str
    windows: MarketWindows
    #: Fee and slippage, basis points per unit traded.
    costs_bps: tuple[float, float]
    strategies: StrategyRegistry
    #: Each session as its last `advance` left it.
    synced: dict[str, SessionInfo] = field(default_factory=dict)

    def advance(self, *, trial_key: str, strategy_name: str, params: Mapping[str, Any]) -> SessionInfo:
        self.broker.start_session(
            trial_key=trial_key, strategy_name=strategy_name, params=params, instrument=self.instrument,
            windows=self.windows, costs_bps=self.costs_bps, strategies=self.strategies,
        )
        info = self.broker.sync(trial_key=trial_key, windows=self.windows, strategies=self.strategies)
        self.synced[trial_key] = info
        return info

    def bars(self, *, trial_key: str) -> pl.DataFrame:
        return self.broker.report(trial_key=trial_key).bars

    def exhausted(self, *, trial_key: str) -> bool:
        # A forward session is never out of bars: the feed brings more. A holdout has traded every
        # bar of the window this run was handed once its clock released them all (a replay at
        # once, the wall clock by the window's end); bars appended later reach a new run.
        info = self.synced[trial_key]
        if info.mode == "forward":
            return False
        return info.clock == "replay" or info.bars_processed >= info.n_forward_bars


def pending(run: StageRun, key: str, result: PaperPending) -> dg.AssetObservation:
    """A pending session is neither materialized nor failed: it is observed, with its progress."""
    session = result.session
    waiting = result.undecided or f"{session.days_elapsed:.2f} of {result.min_days:g} days"
    return dg.AssetObservation(
        asset_key=PAPER.key,
        partition=key,
        description=f"paper trading pending: {waiting}",
        metadata={
            "status": "pending",
            "days_elapsed": dg.MetadataValue.float(session.days_elapsed),
            "min_days": dg.MetadataValue.float(result.min_days),
            "bars_processed": session.bars_processed,
            **session_metadata(session),
        },
    )


def session_metadata(session: SessionInfo) -> dict[str, Any]:
    """Where a session stands in the market, as the UI shows it on pending and graded sessions."""
    times = {name: value or "none yet" for name, value in session.bar_times().items()}
    return {
        "paper_mode": session.mode,
        "started_after_bar": times["started_after"] if session.mode == "forward" else "holdout: from the window's start",
        "first_bar": times["first_bar"],
        "last_bar": times["last_bar"],
        "market_days": session.market_days,
        "clock": session.clock if session.mode == "holdout" else "bars as they arrive",
    }


def sequential_summary(metrics: PaperMetrics, policy: SequentialTestPolicy) -> str:
    """One line on the session's sequential test, as the UI shows it."""
    floor = f"Sharpe > {policy.sharpe_floor:g} at {policy.confidence:.0%}"
    if metrics.sequential_decided_day is not None:
        found = f"decided on market day {metrics.sequential_decided_day} of {metrics.market_days}"
    elif metrics.sequential_futile_day is not None:
        found = f"futile on market day {metrics.sequential_futile_day} (Sharpe shown below the floor)"
    elif policy.out_of_days(metrics.market_days):
        found = f"undecided after the {policy.max_days} market days allowed"
    else:
        found = f"undecided over {metrics.market_days} market days"
    e_value = f"largest e-value {metrics.sequential_e_value:.3g} of {policy.threshold:g}"
    return f"{'required' if policy.enabled else 'off (reported only)'}: {floor}, {found}, {e_value}"


def record(run: StageRun, key: str, outcome: PaperOutcome) -> StageRecord:
    """Store one graded session's bars and summary and describe it for the UI."""
    snapshot = run.snapshots[key]
    m = outcome.metrics
    payload = {
        "trial": snapshot.label,
        "snapshot_hash": snapshot.content_hash,
        "forward_sha256": outcome.session.forward_sha256,
        "mode": outcome.session.mode,
        "origin": outcome.session.origin,
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
        description=f"{snapshot.label}: grade {m.grade} ({outcome.session.mode} paper trading); "
        f"{outcome.verdict.reason}\n\n"
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
            "sequential_test": sequential_summary(m, run.policy.paper.sequential),
            **session_metadata(outcome.session),
            "artifacts": dg.MetadataValue.path(run.artifacts.uri(base)),
        },
    )


_STAGE = stage_for_gate("paper_trading_gate")
PAPER = TrialStage(
    names=_STAGE.names,
    description="The trial paper-traded on the forward window nobody has seen, graded A to F once mature.",
    deps=(STRESS.key,),
    kinds=frozenset({"sqlalchemy"}),
    code_version=_STAGE.code_version,
    stage=_STAGE,
    check_description="Gate 3: at least the minimum days of paper trading, a grade in the required grades and, "
    "when required, the sequential test of the Sharpe ratio decided.",
    record=record,
    pending=pending,
)
