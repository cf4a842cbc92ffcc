"""Deflation from the trials themselves: Gauntlet's own in-sample Sharpe ratios, computed once per trial."""

import json
import math
import statistics

import dagster as dg
import numpy as np
import optuna
import pytest

from pipeline_assets import deflation
from pipeline_assets.deflation import in_sample_artifact
from pipeline_assets.trial_assets import trial_gauntlet
from resources.artifacts import LocalArtifactStoreResource
from tests.conftest import add_complete_trials
from tests.dagster_helpers import shared_assets, Ticker, execute_request, local_definitions, local_resources, materialized

PARAMS = [
    {"lookback": 240, "vol_lookback": 168, "target_bar_vol": 0.003},
    {"lookback": 12, "vol_lookback": 48, "target_bar_vol": 0.008},
    {"lookback": 77, "vol_lookback": 300, "target_bar_vol": 0.002},
    {"lookback": 480, "vol_lookback": 24, "target_bar_vol": 0.005},
]
DIST = {
    "lookback": optuna.distributions.IntDistribution(6, 480, log=True),
    "vol_lookback": optuna.distributions.IntDistribution(24, 720, log=True),
    "target_bar_vol": optuna.distributions.FloatDistribution(0.001, 0.01, log=True),
}


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


@pytest.fixture
def counted(monkeypatch) -> list[int]:
    """Trial numbers whose in-sample Sharpe ratio the pipeline computes, in order."""
    numbers: list[int] = []
    compute = deflation.in_sample_sharpe

    def counting(*, trial, **kwargs):
        numbers.append(trial.snapshot.number)
        return compute(trial=trial, **kwargs)

    monkeypatch.setattr(deflation, "in_sample_sharpe", counting)
    return numbers


def _study(url: str, name: str, direction: str, values: list[float], params: list[dict], strategy: str = "momentum"):
    study = optuna.create_study(study_name=name, storage=url, direction=direction, load_if_exists=True)
    for value, trial_params in zip(values, params, strict=True):
        study.add_trial(
            optuna.trial.create_trial(params=trial_params, distributions=DIST, value=value, user_attrs={"strategy": strategy})
        )


def _payload(tmp_path, key: str) -> dict:
    store = LocalArtifactStoreResource(base_dir=str(tmp_path / "artifacts"))
    return json.loads(store.read_bytes(f"trials/{key}/backtest_results.json"))


def _cache(tmp_path, study: str) -> dict[int, float | None]:
    store = LocalArtifactStoreResource(base_dir=str(tmp_path / "artifacts"))
    return {n: s for n, s in json.loads(store.read_bytes(in_sample_artifact(study)))["sharpes"]}


def test_a_study_minimising_a_loss_gets_the_same_deflation_as_one_maximising_sharpe(optuna_url, tmp_path, instance):
    # The same four trials: one study reports Sharpe-like scores to maximise, the other a loss to minimise.
    _study(optuna_url, "maxsharpe", "maximize", [1.5, -0.4, 0.7, 0.2], PARAMS)
    losses = [0.02, 5.0, 0.9, 12.0]
    _study(optuna_url, "minloss", "minimize", losses, PARAMS)
    Ticker(local_definitions(optuna_url, tmp_path), instance).tick_until_idle()
    for number in range(len(PARAMS)):
        sharpe, loss = _payload(tmp_path, f"maxsharpe__t{number:08d}"), _payload(tmp_path, f"minloss__t{number:08d}")
        for field in ("deflated_sharpe", "study_trials", "study_sharpe_variance", "metrics", "verdict"):
            assert sharpe[field] == loss[field], (number, field)
    last = _payload(tmp_path, "minloss__t00000003")
    assert last["study_trials"] == 4
    in_sample = list(_cache(tmp_path, "minloss").values())
    assert last["study_sharpe_variance"] == pytest.approx(statistics.variance(in_sample), rel=1e-12)
    assert not math.isclose(last["study_sharpe_variance"], statistics.variance(losses))


def test_each_trial_is_backtested_in_sample_once_and_earlier_trials_keep_their_deflation(
    optuna_url, tmp_path, instance, counted
):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3], params=PARAMS[:3])
    defs = local_definitions(optuna_url, tmp_path)
    ticker = Ticker(defs, instance)
    ticker.tick_until_idle()
    assert counted == [0, 1, 2]
    first = _payload(tmp_path, "demo__t00000001")

    add_complete_trials(optuna_url, "demo", [0.4, 0.5], params=[PARAMS[3], PARAMS[0]])
    ticker.tick_until_idle()
    assert counted == [0, 1, 2, 3, 4]  # the new trials only
    assert set(_cache(tmp_path, "demo")) == {0, 1, 2, 3, 4}
    assert _payload(tmp_path, "demo__t00000004")["study_trials"] == 5

    # Rematerialized after the study grew: only trials 0 and 1 count, as the first time.
    result = dg.materialize(
        [*shared_assets(), trial_gauntlet], selection=["backtest_results"], instance=instance,
        partition_key="demo__t00000001", resources=local_resources(optuna_url, tmp_path),
    )
    assert result.success
    assert _payload(tmp_path, "demo__t00000001") == first
    assert counted == [0, 1, 2, 3, 4]


def test_trials_never_run_through_the_gauntlet_are_counted_from_the_study(optuna_url, tmp_path, instance, counted):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3, 0.4], params=PARAMS)
    defs = local_definitions(optuna_url, tmp_path)
    instance.add_dynamic_partitions("trials", ["demo__t00000002"])
    assert execute_request(defs, instance, dg.RunRequest(partition_key="demo__t00000002")).success
    assert sorted(counted) == [0, 1, 2]
    payload = _payload(tmp_path, "demo__t00000002")
    assert payload["study_trials"] == 3
    assert payload["study_sharpe_variance"] == pytest.approx(np.var(list(_cache(tmp_path, "demo").values()), ddof=1))


def test_a_trial_that_cannot_be_backtested_counts_without_a_sharpe(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "demo", [0.1], params=PARAMS[:1])
    add_complete_trials(optuna_url, "demo", [0.2], strategy="no_such_strategy")
    add_complete_trials(optuna_url, "demo", [0.3], params=PARAMS[2:3])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), instance)
    ticker.tick_until_idle()
    [run] = [r for r in ticker.results if r.job_def.name == "trial_job"]
    assert not run.success  # trial 1's own gate 1 says why
    assert materialized(instance, "backtest_results") == {"demo__t00000000", "demo__t00000002"}
    cache = _cache(tmp_path, "demo")
    assert cache[1] is None
    payload = _payload(tmp_path, "demo__t00000002")
    assert payload["study_trials"] == 3
    assert payload["study_sharpe_variance"] == pytest.approx(statistics.variance([cache[0], cache[2]]), rel=1e-12)


def test_a_cache_left_unreadable_is_rebuilt_with_the_same_values(optuna_url, tmp_path, instance, counted):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2], params=PARAMS[:2])
    Ticker(local_definitions(optuna_url, tmp_path), instance).tick_until_idle()
    before, payload = _cache(tmp_path, "demo"), _payload(tmp_path, "demo__t00000001")
    # Two runs' writes landing together can leave the file with the other write's checksum.
    path = tmp_path / "artifacts" / in_sample_artifact("demo")
    path.write_bytes(path.read_bytes().replace(b"fingerprint", b"fingerprinT"))
    result = dg.materialize(
        [*shared_assets(), trial_gauntlet], selection=["backtest_results"], instance=instance,
        partition_key="demo__t00000001", resources=local_resources(optuna_url, tmp_path),
    )
    assert result.success
    assert counted[:2] == [0, 1] and sorted(counted[2:]) == [0, 1]
    assert _cache(tmp_path, "demo") == before
    assert _payload(tmp_path, "demo__t00000001") == payload
