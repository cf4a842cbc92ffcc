"""Gate 3: each surviving trial paper-traded on the forward window, graded A–F once mature."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from pipeline_assets.metadata import png_markdown, records_table
from pipeline_assets.plots import lines_png
from pipeline_assets.stages import TrialBatch, content_hash, gate_evaluation, parquet_bytes, versioned_tags
from resources.paper_broker import PaperBrokerResource, SessionInfo
from simulations.backtest import backtest_strategy
from simulations.errors import PipelineError, TrialDataError
from simulations.gates import GatePolicy, GateVerdict, evaluate_paper_gate
from simulations.market import MarketWindows
from simulations.paper import PaperMetrics, paper_metrics
from simulations.strategies import build_strategy
from simulations.trial import TrialSnapshot

PAPER_TRADING_GRADE = dg.AssetKey("paper_trading_grade")
PAPER_GATE = dg.AssetCheckKey(PAPER_TRADING_GRADE, "paper_trading_gate")


@dataclass(frozen=True)
class PaperOutcome:
    """What gate 3 found for one mature session."""

    session: SessionInfo
    metrics: PaperMetrics
    bars: pl.DataFrame
    benchmark: np.ndarray
    verdict: GateVerdict


def _strategy(snapshot: TrialSnapshot) -> str:
    name = snapshot.user_attrs.get("strategy")
    if not isinstance(name, str):
        raise TrialDataError("user_attr 'strategy' is missing or not a string: the trial names no strategy")
    return name


def evaluate_trial(
    key: str, snapshot: TrialSnapshot, *, broker: PaperBrokerResource, windows: MarketWindows, batch: TrialBatch
) -> PaperOutcome | SessionInfo:
    """Start or advance the trial's paper session; grade it once it has traded long enough.

    Returns the `SessionInfo` of a session that is still pending (too few days), else the
    graded outcome.
    """
    name = _strategy(snapshot)
    broker.start_session(trial_key=key, strategy_name=name, params=snapshot.params)
    session = broker.sync(trial_key=key)
    if session.days_elapsed < batch.policy.paper.min_days:
        return session
    report = broker.report(trial_key=key)
    metrics, verdict = grade_session(
        bars=report.bars, strategy_name=name, params=snapshot.params, windows=windows, policy=batch.policy,
        fee_bps=session.fee_bps, slippage_bps=session.slippage_bps, bar_seconds=session.bar_seconds,
    )
    forward = windows.forward
    return PaperOutcome(
        session=session,
        metrics=metrics,
        bars=report.bars,
        benchmark=forward.close[: report.bars.height] / forward.close[0],
        verdict=verdict,
    )


def grade_session(
    *, bars: pl.DataFrame, strategy_name: str, params: Mapping[str, Any], windows: MarketWindows,
    policy: GatePolicy, fee_bps: float, slippage_bps: float, bar_seconds: float,
) -> tuple[PaperMetrics, GateVerdict]:
    """Grade a paper session's per-bar record and apply gate 3 (pure: no Dagster, no broker).

    The session is reconciled with the backtester over the same forward bars, warmed up on
    every bar before the forward window. The gate calibration grades replayed sessions
    with this function too, so both judge a session identically.
    """
    n = bars.height
    forward = windows.forward
    strategy, model = build_strategy(name=strategy_name, params=params)
    backtest = backtest_strategy(
        strategy=strategy, params=model, close=forward.close[:n], history=windows.history_before(name="forward"),
        fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=bar_seconds,
    )
    metrics = paper_metrics(
        bars=bars, fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=bar_seconds,
        periods_per_year=forward.periods_per_year, policy=policy, backtest=backtest, benchmark_close=forward.close[:n],
    )
    return metrics, evaluate_paper_gate(**metrics.gate_inputs(), policy=policy)


def evaluate_batch(
    batch: TrialBatch, keys: Sequence[str], *, broker: PaperBrokerResource, windows: MarketWindows
) -> tuple[dict[str, PaperOutcome], dict[str, SessionInfo]]:
    """Gate 3 for every trial in ``keys``: graded outcomes and still-pending sessions."""
    outcomes: dict[str, PaperOutcome] = {}
    pending: dict[str, SessionInfo] = {}
    for key in keys:
        try:
            result = evaluate_trial(key, batch.snapshots[key], broker=broker, windows=windows, batch=batch)
        except PipelineError as exc:
            batch.fail(key, "paper_trading_grade", exc)
            continue
        if isinstance(result, SessionInfo):
            pending[key] = result
        else:
            outcomes[key] = result
    return outcomes, pending


def pending_events(batch: TrialBatch, pending: Mapping[str, SessionInfo]) -> Iterator[dg.AssetObservation]:
    """A pending session is neither materialized nor failed: it is observed, with its progress."""
    min_days = batch.policy.paper.min_days
    for key, session in pending.items():
        yield dg.AssetObservation(
            asset_key=PAPER_TRADING_GRADE,
            partition=key,
            description=f"paper trading pending: {session.days_elapsed:.2f} of {min_days:g} days",
            metadata={
                "status": "pending",
                "days_elapsed": dg.MetadataValue.float(session.days_elapsed),
                "min_days": dg.MetadataValue.float(min_days),
                "bars_processed": session.bars_processed,
                "clock": session.clock,
            },
        )


def events(
    batch: TrialBatch, outcomes: Mapping[str, PaperOutcome]
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Store each graded session's summary and yield its materialization and gate result."""
    for key, outcome in outcomes.items():
        snapshot = batch.snapshots[key]
        m = outcome.metrics
        payload = {
            "trial": snapshot.label,
            "snapshot_hash": snapshot.content_hash,
            "forward_sha256": outcome.session.forward_sha256,
            "metrics": m.model_dump(mode="json"),
            "verdict": outcome.verdict.model_dump(mode="json"),
        }
        version = content_hash(payload)
        base = f"trials/{key}"
        batch.artifacts.write_bytes(f"{base}/paper_bars.parquet", parquet_bytes(outcome.bars))
        batch.artifacts.write_bytes(f"{base}/paper_trading_grade.json", json.dumps(payload, sort_keys=True).encode())
        equity = outcome.bars["equity"].to_numpy()
        rows = [
            {
                "check": c.name,
                "value": c.value,
                "rule": f"{c.comparator} {c.threshold:.6g}",
                "verdict": "pass" if c.passed else "fail",
            }
            for c in m.grading_checks
        ]
        png = lines_png(
            [("paper", equity), ("buy and hold", outcome.benchmark)],
            title=f"{snapshot.label} paper",
            drawdown_of=equity,
        )
        reconciliation = m.reconciliation
        yield dg.AssetMaterialization(
            asset_key=PAPER_TRADING_GRADE,
            partition=key,
            description=f"{snapshot.label}: grade {m.grade}; {outcome.verdict.reason}",
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
                "paper_vs_buy_and_hold": png_markdown(png, alt="paper equity against buy and hold"),
                "clock": outcome.session.clock,
                "artifacts": dg.MetadataValue.path(batch.artifacts.uri(base)),
            },
            tags=versioned_tags(version),
        )
        yield gate_evaluation(PAPER_TRADING_GRADE, key, outcome.verdict)
