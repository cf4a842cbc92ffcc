"""Many studies in one instance: keys that never collide, runs tagged per study, per-study
concurrency limits from the repository's dagster.yaml, and the funnel per study."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from resources.dagster_private import QueuedRunCoordinator, TagConcurrencyLimitsCounter
from pipeline_assets.definitions import build_definitions
from gauntlet.config import GauntletConfig
from pipeline_assets.trial_keys import study_key_prefix, trial_partition_key
from pipeline_assets.trial_assets import STUDY_TAG
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, local_resources, materialized, partitions

ROOT = Path(__file__).resolve().parents[2]
# All four slug to "my-study": only the hash suffix keeps the three unsafe names apart.
STUDIES = {"my-study": [0.11, 0.12], "my study": [0.21, 0.22], "my/study": [0.31], "my  study": [0.41]}
GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built: the first tick goes to the trials."""
    return shared_instance


def _definitions(optuna_url: str, home: Path, max_trials_per_run: int = 100) -> dg.Definitions:
    config = GauntletConfig(home=home, sensor={"max_trials_per_run": max_trials_per_run})
    return build_definitions(config=config, resources=local_resources(optuna_url, home))


def _add_studies(optuna_url: str) -> dict[str, str]:
    """Every study's trials; returns each trial's key -> the study it was written to."""
    owners = {}
    for study, values in STUDIES.items():
        add_complete_trials(optuna_url, study, values, params=[GOOD] * len(values))
        owners |= {trial_partition_key(study, i): study for i in range(len(values))}
    return owners


def test_studies_whose_names_slug_alike_keep_their_own_keys_runs_and_funnel_rows(optuna_url, tmp_path, instance):
    owners = _add_studies(optuna_url)
    assert len({study_key_prefix(s) for s in STUDIES}) == len(STUDIES)
    defs = _definitions(optuna_url, tmp_path)
    ticker = Ticker(defs, instance)
    result = ticker.tick()

    assert sorted(partitions(instance)) == sorted(owners)
    # One run per study, tagged with the study's exact name, covering that study's keys only.
    by_study = {r.tags[STUDY_TAG]: r for r in result.run_requests}
    assert set(by_study) == set(STUDIES)
    order = partitions(instance)
    for study, request in by_study.items():
        first = request.partition_key or request.tags["dagster/asset_partition_range_start"]
        last = request.partition_key or request.tags["dagster/asset_partition_range_end"]
        in_range = order[order.index(first) : order.index(last) + 1]
        assert sorted(in_range) == sorted(k for k, s in owners.items() if s == study)
    assert all(r.success for r in ticker.results)
    assert materialized(instance, "backtest_results") == set(owners)

    # Each snapshot is the trial of the study whose key it carries.
    records = instance.fetch_materializations(dg.AssetKey("optuna_trial"), limit=100).records
    snapshots = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert set(snapshots) == set(owners) and len(records) == len(owners)
    for key, study in owners.items():
        metadata = snapshots[key]
        number = int(key.rsplit("__t", 1)[1])
        assert metadata["study"].value == study and metadata["trial_number"].value == number
        assert metadata["objective"].value == STUDIES[study][number]

    funnel = defs.resolve_job_def("reporting_job").execute_in_process(instance=instance)
    assert funnel.success
    rows = {r["study"]: r for r in funnel.output_for_node("study_funnel").to_dicts()}
    assert {p: rows[p]["detected"] for p in rows} == {study_key_prefix(s): len(v) for s, v in STUDIES.items()}
    assert all(rows[p]["backtested"] == rows[p]["detected"] for p in rows)


def test_per_study_run_limit_from_dagster_yaml_applies_to_the_sensors_runs(
    optuna_url, tmp_path, instance, monkeypatch
):
    # The repository's dagster.yaml, as `make up` links it: its storage reads DAGSTER_HOME.
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_config(str(home)) as configured:
        coordinator = configured.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
    assert limits == [{"key": STUDY_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 2}]

    _add_studies(optuna_url)
    ticker = Ticker(_definitions(optuna_url, tmp_path, max_trials_per_run=1), instance)
    requests = ticker.tick(execute=False).run_requests
    runs = {
        study: [dg.DagsterRun(job_name="trial_job", tags=r.tags) for r in requests if r.tags[STUDY_TAG] == study]
        for study in STUDIES
    }
    assert {s: len(r) for s, r in runs.items()} == {s: len(v) for s, v in STUDIES.items()}

    # Two runs of "my study" in progress: a third of it would wait, other studies' runs start,
    # including "my-study", whose key prefix is what "my study" slugs to.
    busy = runs["my study"] + [dg.DagsterRun(job_name="trial_job", tags=runs["my study"][0].tags)]
    counter = TagConcurrencyLimitsCounter(limits, busy[:2])
    assert counter.is_blocked(busy[2])
    assert not any(counter.is_blocked(run) for study in ("my-study", "my/study", "my  study") for run in runs[study])
