"""Demo trainer: a real Optuna search over a strategy's params on the train window.

``python -m simulations.train --study demo --trials 200 --storage sqlite:///path.db``

Each trial builds the strategy from sampled params, backtests it on the train window of the
seeded synthetic market, or of the bars in ``--market`` (never the backtest or forward windows,
which the gates use) and
reports the in-sample annualised Sharpe ratio as the objective. The strategy name and the
in-sample metrics go to the trial's user_attrs, where Gauntlet reads them. Running it again
with the same study name continues the same study.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import optuna

from simulations.backtest import backtest_strategy
from simulations.constants import DEFAULT_FEE_BPS, DEFAULT_MARKET_SEED, DEFAULT_SLIPPAGE_BPS
from simulations.market import MarketWindows, generate_synthetic_market, load_market_file, split_windows
from simulations.metrics import compute_metrics
from simulations.strategies import BUILT_IN_STRATEGIES


def suggest_params(trial: optuna.Trial, strategy_name: str) -> dict[str, int | float]:
    """Sample every dimension of the strategy's Optuna-free search space."""
    params: dict[str, int | float] = {}
    for name, dimension in BUILT_IN_STRATEGIES.get(name=strategy_name).search_space().items():
        kind, low, high, *rest = dimension
        log = bool(rest[0]) if rest else False
        if kind == "int":
            params[name] = trial.suggest_int(name, int(low), int(high), log=log)
        elif kind == "float":
            params[name] = trial.suggest_float(name, float(low), float(high), log=log)
        else:
            raise ValueError(f"search dimension {name!r} of {strategy_name!r} has unknown kind {kind!r}")
    return params


def make_objective(*, windows: MarketWindows, strategy_name: str):
    """Objective: in-sample annualised Sharpe of the strategy on the train window."""
    train = windows.train

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, strategy_name)
        strategy, model = BUILT_IN_STRATEGIES.build(name=strategy_name, params=params)
        result = backtest_strategy(
            strategy=strategy, params=model, close=train.close,
            fee_bps=DEFAULT_FEE_BPS, slippage_bps=DEFAULT_SLIPPAGE_BPS, bar_seconds=train.bar_seconds,
        )
        metrics = compute_metrics(result=result, periods_per_year=train.periods_per_year)
        trial.set_user_attr("strategy", strategy_name)
        trial.set_user_attr("train_window_sha256", train.sha256)
        trial.set_user_attr(
            "in_sample",
            {k: getattr(metrics, k) for k in ("sharpe", "total_return", "max_drawdown", "n_trades")},
        )
        return metrics.sharpe

    return objective


def run(
    *, study_name: str, storage: str, n_trials: int, strategy: str, seed: int, pace_seconds: float,
    market: Path | None = None,
) -> optuna.Study:
    """Run (or continue) ``study_name`` until it holds ``n_trials`` finished trials, on the bars of the
    ``market`` file (CSV or Parquet) or else the seeded synthetic market."""
    frame = generate_synthetic_market(seed=DEFAULT_MARKET_SEED) if market is None else load_market_file(path=market)
    windows = split_windows(frame=frame)
    study = optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed + len(_existing(storage, study_name))),
    )
    objective = make_objective(windows=windows, strategy_name=strategy)
    remaining = n_trials - len(study.trials)
    for _ in range(max(0, remaining)):
        study.optimize(objective, n_trials=1)
        last = study.trials[-1]
        best = study.best_value if any(t.state.name == "COMPLETE" for t in study.trials) else float("nan")
        value = f"{last.value:+.3f}" if last.value is not None else last.state.name
        print(f"[{study_name}] trial {last.number:>4}: sharpe {value} (best {best:+.3f}) "
              f"{len(study.trials)}/{n_trials}", flush=True)
        if pace_seconds > 0:
            time.sleep(pace_seconds)
    return study


def _existing(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    except KeyError:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, help="study name (created or continued)")
    parser.add_argument("--trials", type=int, required=True, help="total number of trials the study should reach")
    parser.add_argument("--storage", help="Optuna storage URL (default: $GAUNTLET_HOME/optuna.db)")
    parser.add_argument("--strategy", default="momentum", help="strategy family to tune (default: momentum)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--pace", type=float, default=0.0, help="seconds to wait between trials (demo pacing)")
    parser.add_argument("--market", type=Path, help="train on this CSV or Parquet file's bars (default: synthetic)")
    args = parser.parse_args(argv)
    storage = args.storage
    if storage is None:
        home = Path(os.environ.get("GAUNTLET_HOME", ".gauntlet")).resolve()
        home.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{home / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run(study_name=args.study, storage=storage, n_trials=args.trials, strategy=args.strategy,
        seed=args.seed, pace_seconds=args.pace, market=args.market)
    return 0


if __name__ == "__main__":
    sys.exit(main())
