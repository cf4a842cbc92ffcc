"""The Optuna search of one simulated calibration study: the demo trainer's search on a calibration market.

Each simulated study is a real Optuna study (in memory, TPE sampler seeded per study) that
maximises the demo trainer's objective (:func:`simulations.train.make_objective`: in-sample
annualised Sharpe ratio on the train window), so picking the best of many trials biases
the calibration exactly as it biases a real study. Trials leave this module as
:class:`~simulations.trial.TrialSnapshot`, the only shape the gates accept.

TPE decides trial ``i`` from trials ``0 .. i - 1`` and its seeded random state only, so the
first ``n`` trials of a search are exactly the trials of an ``n``-trial search: one search
of the largest size serves every study size the calibration reports.
"""

from __future__ import annotations

import optuna

from simulations.market import MarketWindows
from simulations.train import make_objective
from simulations.trial import TrialSnapshot, TrialState


def run_study(
    *, windows: MarketWindows, n_trials: int, seed: int, study_name: str, strategy_name: str = "momentum"
) -> tuple[TrialSnapshot, ...]:
    """Run one simulated study and return its trials in trial order.

    Parameters
    ----------
    windows
        The study's market; trials are scored on ``windows.train`` only.
    n_trials
        Number of trials (>= 1).
    seed
        Seed of the TPE sampler (0 <= seed < 2**32).
    study_name
        Name recorded on every snapshot.
    strategy_name
        Registered strategy whose search space is sampled.

    Returns
    -------
    tuple of TrialSnapshot
        Every trial, COMPLETE, objective = in-sample annualised Sharpe ratio. Timestamps are
        left out so that a seed gives identical snapshots (and content hashes) on every run.
    """
    verbosity = optuna.logging.get_verbosity()
    # Optuna logs every study and trial at INFO; a calibration runs tens of thousands of them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(make_objective(windows=windows, strategy_name=strategy_name), n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return tuple(
        TrialSnapshot.build(
            study_name=study_name,
            number=trial.number,
            trial_id=trial.number,
            state=TrialState.COMPLETE,
            params=dict(trial.params),
            values=tuple(trial.values),
            user_attrs=dict(trial.user_attrs),
        )
        for trial in study.trials
    )
