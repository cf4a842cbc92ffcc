"""The Deflated Sharpe inputs of a run's trials: every trial's own in-sample Sharpe ratio, once.

Gate 1 deflates a trial's Sharpe ratio by the number of the study's completed trials numbered
at or below it and the variance of their in-sample Sharpe ratios
(:func:`simulations.gauntlet.study_contexts`). Those Sharpe ratios are Gauntlet's own
(:func:`simulations.in_sample.in_sample_sharpe`: each trial backtested on the train window),
never the study's objective values, so every completed trial needs one, trials that were
never run through the gauntlet included.

Each trial's is computed once. A study's Sharpe ratios live in one artifact,
``studies/<study>/in_sample_sharpe.json``, with the fingerprint of what they depend on
(:func:`simulations.in_sample.in_sample_fingerprint`: train data, costs, configured strategies,
gate 1's code version); a run backtests only the trials missing from it, so a run over a
10,000-trial study computes its new trials, not the study. A new fingerprint starts the
cache afresh. After changing a strategy's code, delete the study's file.

Two runs of one study may extend the cache at the same time. Every entry is a deterministic
function of its trial and the fingerprint, so whichever write lands last changes no value; an
entry it lacks is computed again by a later run. The artifact store renames a file and its
checksum one after the other, so two writes landing together can leave a file that fails its
checksum: the cache is then rebuilt (with a warning), since nothing in it is lost by that.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import dagster as dg
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline_assets.trial_keys import study_key_prefix, trial_partition_key
from pipeline_assets.stages import StageRun
from resources.artifacts import ArtifactStoreResource
from resources.optuna_study import StudySourceResource
from simulations.errors import ArtifactError, StorageCorruptError, TrialDataError
from simulations.gauntlet import GauntletInputs, TrialCase, study_contexts
from simulations.in_sample import in_sample_fingerprint, in_sample_sharpe
from simulations.trial import TrialSnapshot


class InSampleCache(BaseModel):
    """A study's cached in-sample Sharpe ratios (annualised; ``None`` for a trial without one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str
    sharpes: list[tuple[int, float | None]]


def in_sample_artifact(study_name: str) -> str:
    """Where the in-sample Sharpe ratios of ``study_name``'s trials are cached."""
    return f"studies/{study_key_prefix(study_name)}/in_sample_sharpe.json"


def _read(artifacts: ArtifactStoreResource, key: str, fingerprint: str) -> dict[int, float]:
    if not artifacts.exists(key):
        return {}
    try:
        cache = InSampleCache.model_validate_json(artifacts.read_bytes(key))
    except (ArtifactError, ValidationError) as exc:
        dg.get_dagster_logger().warning(f"in-sample Sharpe cache {key} is unreadable, rebuilding it: {exc}")
        return {}
    if cache.fingerprint != fingerprint:
        return {}
    return {number: math.nan if sharpe is None else sharpe for number, sharpe in cache.sharpes}


def _write(artifacts: ArtifactStoreResource, key: str, fingerprint: str, sharpes: Mapping[int, float]) -> None:
    cache = InSampleCache(
        fingerprint=fingerprint,
        sharpes=[(n, None if math.isnan(s) else s) for n, s in sorted(sharpes.items())],
    )
    artifacts.write_bytes(key, cache.model_dump_json().encode())


def _snapshots(optuna_study: StudySourceResource, study: str, numbers: Sequence[int]) -> dict[int, TrialSnapshot]:
    """The trials Optuna can give as snapshots; one it cannot (a non-finite objective, unreadable rows) is left out."""
    if not numbers:
        return {}
    try:
        return {s.number: s for s in optuna_study.get_trials(study, list(numbers))}
    except (TrialDataError, StorageCorruptError):
        # One unreadable trial must not hide the others: read them one by one.
        found = {}
        for number in numbers:
            try:
                found[number] = optuna_study.get_trials(study, [number])[0]
            except (TrialDataError, StorageCorruptError) as exc:
                dg.get_dagster_logger().warning(f"trial {number} of study {study!r} has no in-sample Sharpe: {exc}")
        return found


def in_sample_sharpes(
    *, study: str, numbers: Sequence[int], known: Mapping[int, TrialSnapshot], inputs: GauntletInputs,
    artifacts: ArtifactStoreResource, optuna_study: StudySourceResource,
) -> dict[int, float]:
    """The in-sample Sharpe ratio of each trial in ``numbers``, from the study's cache or computed and cached.

    Parameters
    ----------
    study
        The study's name.
    numbers
        The completed trials whose Sharpe ratios are needed.
    known
        Snapshots already at hand (the run's trials), by number; others are read from Optuna.
    inputs
        The market, costs and strategies the trials are evaluated with.

    Returns
    -------
    dict
        Trial number -> annualised Sharpe ratio (NaN for a trial that cannot be backtested).
    """
    key = in_sample_artifact(study)
    fingerprint = in_sample_fingerprint(
        windows=inputs.windows, fee_bps=inputs.fee_bps, slippage_bps=inputs.slippage_bps, strategies=inputs.strategies
    )
    cached = _read(artifacts, key, fingerprint)
    missing = [n for n in numbers if n not in cached]
    if not missing:
        return cached
    snapshots = {n: known[n] for n in missing if n in known}
    snapshots.update(_snapshots(optuna_study, study, [n for n in missing if n not in snapshots]))
    # A trial Optuna cannot give as a snapshot was still tried: it counts, without a Sharpe ratio.
    fresh = dict.fromkeys(missing, math.nan)
    fresh.update(
        (n, in_sample_sharpe(
            trial=TrialCase(key=trial_partition_key(study, n), snapshot=snapshot),
            windows=inputs.windows, fee_bps=inputs.fee_bps, slippage_bps=inputs.slippage_bps,
            strategies=inputs.strategies,
        ))
        for n, snapshot in snapshots.items()
    )
    # Read again before writing: keep what a concurrent run of the study added meanwhile.
    merged = {**_read(artifacts, key, fingerprint), **cached, **fresh}
    _write(artifacts, key, fingerprint, merged)
    dg.get_dagster_logger().info(
        f"study {study!r}: {len(numbers) - len(missing)} in-sample Sharpe ratio(s) cached, {len(missing)} computed"
    )
    return merged


def set_study_contexts(run: StageRun, optuna_study: StudySourceResource) -> None:
    """Give every trial of ``run`` its study context: the completed trials up to it and their Sharpe variance."""
    by_study: dict[str, dict[int, TrialSnapshot]] = defaultdict(dict)
    keys: dict[tuple[str, int], str] = {}
    for key, snapshot in run.snapshots.items():
        if key not in run.instrument_of:
            continue  # failed already: its instrument's data is not there
        by_study[snapshot.study_name][snapshot.number] = snapshot
        keys[snapshot.study_name, snapshot.number] = key
    for study, snapshots in by_study.items():
        last = max(snapshots)
        numbers = sorted({n for n in optuna_study.completed_numbers(study) if n <= last} | set(snapshots))
        sharpes = in_sample_sharpes(
            study=study, numbers=numbers, known=snapshots, inputs=run.inputs_for(keys[study, last]),
            artifacts=run.artifacts,
            optuna_study=optuna_study,
        )
        contexts = study_contexts(sharpes=[(n, sharpes[n]) for n in numbers], numbers=list(snapshots))
        for number, context in contexts.items():
            run.contexts[keys[study, number]] = context
