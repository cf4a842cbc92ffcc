"""Trials that name model artifacts cannot read the worker's files, and no message carries a
digest or a file's content: not the run's events, not `gauntlet run`'s output, not the failure
alert (issue 20, item 1), end to end through `gauntlet run` and the run-failure alert sensor.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import optuna
import pytest

from gauntlet.cli import main
from gauntlet.config import GauntletConfig, load_config, location
from gauntlet.environment import build_resources
from pipeline_assets.trial_keys import trial_partition_key

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-5e1d07"
WEIGHTS = {"horizons": [6, 24], "weights": [0.5, 0.5], "bias": 0.0, "vol_lookback": 48}
STUDY = "models"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _linear_trials(study: optuna.Study, artifacts: list[tuple[str, str]]) -> None:
    """One COMPLETE linear_model trial per (artifact_path, artifact_sha256)."""
    # Optuna fixes a categorical parameter's choices per study: one distribution holds them all.
    distributions = {
        "artifact_path": optuna.distributions.CategoricalDistribution(sorted({p for p, _ in artifacts})),
        "artifact_sha256": optuna.distributions.CategoricalDistribution(sorted({d for _, d in artifacts})),
    }
    for path, digest in artifacts:
        study.add_trial(
            optuna.trial.create_trial(
                params={"artifact_path": path, "artifact_sha256": digest},
                distributions=distributions,
                value=0.5,
                user_attrs={"strategy": "linear_model", "in_sample_sharpe": 0.5},
            )
        )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "gauntlet"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("GAUNTLET_HOME", str(home))
    monkeypatch.setenv("GAUNTLET_MODEL_DIR", str(tmp_path / "models"))
    return home


def test_trials_cannot_read_files_or_learn_digests_through_linear_model(home, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    outside = tmp_path / "private" / "credentials.json"
    outside.parent.mkdir()
    outside.write_text(json.dumps({**WEIGHTS, "api_key": SECRET}))
    wrong_digest = models / "weights.json"
    wrong_digest.write_text(json.dumps(WEIGHTS))
    leaky = models / "leaky.json"
    leaky.write_text(json.dumps({**WEIGHTS, "bias": SECRET, SECRET: 1}))

    study = optuna.create_study(study_name=STUDY, storage=location(GauntletConfig(home=home), "optuna.storage"))
    _linear_trials(
        study,
        [
            (str(outside), _digest(outside)),  # the right digest of a file outside
            ("weights.json", "ab" * 32),  # inside, a guessed digest
            (str(leaky), _digest(leaky)),  # inside, content that fails validation
        ],
    )

    assert main(["run", "--study", STUDY, "--all-new"]) == 1
    out, err = capsys.readouterr()
    printed = out + err
    assert "outside the model directory" in printed
    assert "does not match the trial's artifact_sha256" in printed
    assert "is not a valid linear model" in printed

    # The failure alert of every failed run, as the daemon's sensor sends it.
    defs_resources = build_resources(load_config().config)
    from pipeline_assets.definitions import build_definitions

    defs = build_definitions(config=load_config().config, resources=defs_resources)
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
    with dg.DagsterInstance.get() as instance:
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert {run.tags.get("dagster/partition") for run in failed} == {
            trial_partition_key(STUDY, n) for n in range(3)
        }
        with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
            sensor(context)
    alerts = (home / "alerts.jsonl").read_text()
    assert alerts.count('"kind":"run_failed"') == 3

    # Nothing of the files leaks into anything printed or stored: the instance (run events with
    # their error chains), the artifacts, the alert log. (The right digest of the file outside
    # is the trial's own param, recorded with the trial like every param.)
    leaks = {
        "secret": SECRET,
        "digest of the file inside": _digest(wrong_digest),
        "shortened digest of the file inside": _digest(wrong_digest)[:12],
    }
    stored = {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    for what, needle in leaks.items():
        assert needle not in printed, what
        assert [name for name, data in stored.items() if needle.encode() in data] == [], what
