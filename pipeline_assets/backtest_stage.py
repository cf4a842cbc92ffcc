"""Gate 1's row of the stage table: each trial's out-of-sample backtest, stored and shown."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import polars as pl

from pipeline_assets.metadata import key_value_table, number, png_inline, records_table
from pipeline_assets.optuna_trial_stage import OPTUNA_TRIAL
from pipeline_assets.plots import lines_png
from pipeline_assets.shared_assets import MARKET_DATA
from pipeline_assets.stages import StageRecord, StageRun, TrialStage, content_hash, parquet_bytes, stage_artifact
from simulations.gauntlet import BacktestOutcome, stage_for_gate
from simulations.market import MarketWindows
from simulations.trial import TrialSnapshot

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


def record(run: StageRun, key: str, outcome: BacktestOutcome) -> StageRecord:
    """Store one trial's backtest (equity, trades, summary) and describe it for the UI."""
    windows = run.inputs_for(key).windows
    window = windows.backtest
    snapshot = run.snapshots[key]
    payload = result_payload(outcome, windows, snapshot)
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
    run.artifacts.write_bytes(f"{base}/backtest_equity.parquet", parquet_bytes(curve))
    run.artifacts.write_bytes(f"{base}/backtest_trades.parquet", parquet_bytes(result.trades))
    run.artifacts.write_bytes(stage_artifact(key, BACKTEST), json.dumps(payload, sort_keys=True).encode())
    metrics = outcome.metrics.model_dump()
    rows = [{"metric": m, "value": metrics[m], "unit": u} for m, u in METRIC_UNITS.items()]
    rows.append({"metric": "deflated_sharpe", "value": outcome.dsr, "unit": "probability"})
    png = lines_png(
        [("strategy", result.equity), ("buy and hold", window.close / window.close[0])],
        title=snapshot.label,
        drawdown_of=result.equity,
        timestamps=window.timestamps,
    )
    return StageRecord(
        description=f"{snapshot.label}: {outcome.verdict.reason}\n\n{png_inline(png, alt='equity and drawdown')}",
        data_version=content_hash(payload),
        metadata={
            "trial": snapshot.label,
            "instrument": run.instrument_of[key],
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
            "artifacts": dg.MetadataValue.path(run.artifacts.uri(base)),
        },
    )


_STAGE = stage_for_gate("backtest_gate")
BACKTEST = TrialStage(
    names=_STAGE.names,
    description="The trial's strategy backtested out of sample on the backtest window: metrics, trades, equity.",
    deps=(OPTUNA_TRIAL, MARKET_DATA),
    kinds=frozenset({"numpy", "parquet"}),
    code_version=_STAGE.code_version,
    stage=_STAGE,
    check_description="Gate 1: out-of-sample return, Sharpe, drawdown, trades and Deflated Sharpe against "
    "thresholds that tighten as the study matures.",
    record=record,
)
