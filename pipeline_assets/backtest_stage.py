"""Gate 1: each trial's strategy backtested out of sample on the backtest window."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np
import polars as pl

from pipeline_assets.metadata import key_value_table, number, png_markdown, records_table
from pipeline_assets.plots import lines_png
from pipeline_assets.stages import TrialBatch, content_hash, gate_evaluation, parquet_bytes, versioned_tags
from simulations.backtest import BacktestResult, backtest_strategy
from simulations.errors import PipelineError, TrialDataError
from simulations.gates import GateVerdict, evaluate_backtest_gate
from simulations.market import MarketWindows
from simulations.metrics import BacktestMetrics, compute_metrics, deflated_sharpe_ratio
from simulations.strategies import build_strategy
from simulations.trial import TrialSnapshot

BACKTEST_RESULTS = dg.AssetKey("backtest_results")
BACKTEST_GATE = dg.AssetCheckKey(BACKTEST_RESULTS, "backtest_gate")

#: Metric name -> unit, in the order the metrics table shows them.
METRIC_UNITS: dict[str, str] = {
    "total_return": "fraction",
    "cagr": "fraction per year",
    "annualised_volatility": "fraction per year",
    "sharpe": "annualised",
    "sortino": "annualised",
    "max_drawdown": "fraction",
    "calmar": "ratio",
    "n_trades": "count",
    "win_rate": "fraction of closed trades",
    "exposure": "fraction of bars",
    "turnover": "equity traded",
    "total_costs": "fraction of equity",
    "alpha": "annualised",
    "beta": "ratio",
    "benchmark_total_return": "fraction",
    "probabilistic_sharpe": "probability",
    "min_track_record_length": "bars",
}


@dataclass(frozen=True)
class StudyContext:
    """Deflated-Sharpe inputs as of one trial: the trials completed up to and including it.

    Counting only trials numbered at or below the evaluated one keeps a trial's evaluation
    the same whenever it is rematerialized, however large the study has grown since.
    """

    n_trials: int
    sharpe_variance_annual: float


def study_contexts(objectives: Sequence[tuple[int, float]], numbers: Sequence[int]) -> dict[int, StudyContext]:
    """`StudyContext` for each trial number, from the study's (number, objective) pairs.

    The objectives are taken as the trials' annualised in-sample Sharpe ratios (what the
    demo trainer optimises); non-finite ones are left out of the variance.
    """
    ordered = sorted(objectives)
    contexts = {}
    for number in numbers:
        values = [v for n, v in ordered if n <= number and np.isfinite(v)]
        n_trials = max(1, sum(1 for n, _ in ordered if n <= number))
        variance = statistics.variance(values) if len(values) >= 2 else 0.0
        contexts[number] = StudyContext(n_trials=n_trials, sharpe_variance_annual=variance)
    return contexts


@dataclass(frozen=True)
class BacktestOutcome:
    """What gate 1 found for one trial."""

    result: BacktestResult
    metrics: BacktestMetrics
    dsr: float
    context: StudyContext
    verdict: GateVerdict


def evaluate_trial(
    snapshot: TrialSnapshot, *, windows: MarketWindows, context: StudyContext, batch: TrialBatch,
    fee_bps: float, slippage_bps: float,
) -> BacktestOutcome:
    """Backtest one trial on the backtest window and apply gate 1 (pure: no Dagster)."""
    name = snapshot.user_attrs.get("strategy")
    if not isinstance(name, str):
        raise TrialDataError("user_attr 'strategy' is missing or not a string: the trial names no strategy")
    strategy, params = build_strategy(name=name, params=snapshot.params)
    window = windows.backtest
    result = backtest_strategy(
        strategy=strategy, params=params, close=window.close,
        history=windows.history_before(name="backtest"),
        fee_bps=fee_bps, slippage_bps=slippage_bps, bar_seconds=window.bar_seconds,
    )
    metrics = compute_metrics(result=result, periods_per_year=window.periods_per_year)
    dsr = deflated_sharpe_ratio(
        sharpe=metrics.sharpe_per_period,
        n_observations=metrics.n_observations,
        skew=metrics.skew,
        kurtosis=metrics.kurtosis,
        n_trials=context.n_trials,
        sharpe_variance=context.sharpe_variance_annual / window.periods_per_year,
    )
    verdict = evaluate_backtest_gate(
        metrics=metrics, policy=batch.policy, n_completed_trials=context.n_trials, dsr=dsr
    )
    return BacktestOutcome(result=result, metrics=metrics, dsr=dsr, context=context, verdict=verdict)


def evaluate_batch(
    batch: TrialBatch, keys: Sequence[str], *, windows: MarketWindows,
    objectives_by_study: Mapping[str, Sequence[tuple[int, float]]], fee_bps: float, slippage_bps: float,
) -> dict[str, BacktestOutcome]:
    """Gate 1 for every trial in ``keys``; per-trial errors are recorded on the batch."""
    outcomes: dict[str, BacktestOutcome] = {}
    contexts: dict[str, dict[int, StudyContext]] = {}
    for study, objectives in objectives_by_study.items():
        numbers = [batch.snapshots[k].number for k in keys if batch.snapshots[k].study_name == study]
        contexts[study] = study_contexts(objectives, numbers)
    for key in keys:
        snapshot = batch.snapshots[key]
        try:
            outcomes[key] = evaluate_trial(
                snapshot, windows=windows, context=contexts[snapshot.study_name][snapshot.number],
                batch=batch, fee_bps=fee_bps, slippage_bps=slippage_bps,
            )
        except PipelineError as exc:
            batch.fail(key, "backtest_results", exc)
    return outcomes


def result_payload(outcome: BacktestOutcome, windows: MarketWindows, snapshot: TrialSnapshot) -> dict:
    """The stored summary of a trial's backtest (its hash is the data version)."""
    return {
        "trial": snapshot.label,
        "snapshot_hash": snapshot.content_hash,
        "data_hashes": windows.hashes,
        "metrics": outcome.metrics.model_dump(),
        "deflated_sharpe": outcome.dsr,
        "study_trials": outcome.context.n_trials,
        "study_sharpe_variance": outcome.context.sharpe_variance_annual,
        "verdict": outcome.verdict.model_dump(mode="json"),
    }


def events(
    batch: TrialBatch, outcomes: Mapping[str, BacktestOutcome], windows: MarketWindows
) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Store each trial's backtest and yield its materialization and gate result."""
    window = windows.backtest
    for key, outcome in outcomes.items():
        snapshot = batch.snapshots[key]
        payload = result_payload(outcome, windows, snapshot)
        version = content_hash(payload)
        result = outcome.result
        drawdown = 1.0 - result.equity / np.maximum.accumulate(result.equity)
        curve = pl.DataFrame(
            {
                "timestamp": window.timestamps,
                "equity": result.equity,
                "drawdown": drawdown,
                "position": result.held,
                "net_return": result.net_returns,
            }
        )
        base = f"trials/{key}"
        batch.artifacts.write_bytes(f"{base}/backtest_equity.parquet", parquet_bytes(curve))
        batch.artifacts.write_bytes(f"{base}/backtest_trades.parquet", parquet_bytes(result.trades))
        batch.artifacts.write_bytes(f"{base}/backtest_results.json", json.dumps(payload, sort_keys=True).encode())
        metrics = outcome.metrics.model_dump()
        rows = [{"metric": m, "value": metrics[m], "unit": u} for m, u in METRIC_UNITS.items()]
        rows.append({"metric": "deflated_sharpe", "value": outcome.dsr, "unit": "probability"})
        png = lines_png(
            [("strategy", result.equity), ("buy and hold", window.close / window.close[0])],
            title=snapshot.label,
            drawdown_of=result.equity,
        )
        yield dg.AssetMaterialization(
            asset_key=BACKTEST_RESULTS,
            partition=key,
            description=f"{snapshot.label}: {outcome.verdict.reason}",
            metadata={
                "trial": snapshot.label,
                "sharpe": number(outcome.metrics.sharpe),
                "total_return": number(outcome.metrics.total_return),
                "max_drawdown": number(outcome.metrics.max_drawdown),
                "n_trades": outcome.metrics.n_trades,
                "deflated_sharpe": number(outcome.dsr),
                "phase": outcome.verdict.phase or "—",
                "gate": "pass" if outcome.verdict.passed else "FAIL",
                "metrics": records_table(rows, [("metric", "name"), ("value", "value"), ("unit", "unit")]),
                "data_hashes": key_value_table(windows.hashes, key="window", value="sha256"),
                "window": f"{window.start.isoformat()} → {window.end.isoformat()} ({window.n_bars} bars)",
                "equity_and_drawdown": png_markdown(png, alt="equity and drawdown"),
                "artifacts": dg.MetadataValue.path(batch.artifacts.uri(base)),
            },
            tags=versioned_tags(version),
        )
        yield gate_evaluation(BACKTEST_RESULTS, key, outcome.verdict)
