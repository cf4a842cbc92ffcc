"""Bring your own study: a strategy that is not built in, a market data file and a gauntlet.yaml
of one's own, through `gauntlet config check`, `gauntlet run` and the daemon.

Nothing here is Gauntlet's demo: the study, the strategy module, the CSV and the configuration
are written to a temporary directory, the way a newcomer following the README would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import optuna
import pytest
import yaml

from gauntlet.config_check import config_main
from resources.dagster_private import FINISHED_STATUSES
from pipeline_assets.trial_keys import trial_partition_key
from gauntlet.run import run_main
from simulations.market import generate_synthetic_market
from tests.dagster_helpers import HOLDOUT_SECTIONS
from tests.e2e.conftest import BIN, ROOT, stop_process, wait_while_the_daemon_works

pytestmark = pytest.mark.e2e

STUDY = "my_study"
PLUGIN_MODULE = "byo_strategies"
PLUGIN_PATH = f"{PLUGIN_MODULE}:ChannelBreakout"
STRATEGY = "byo_channel_breakout"

# The README's example strategy ("Use your own study"), under a name of its own.
PLUGIN = textwrap.dedent(
    '''
    import numpy as np
    from pydantic import BaseModel, ConfigDict, Field


    class BreakoutParams(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        window: int = Field(ge=2, le=2000)


    class ChannelBreakout:
        """Long above the mean of the last `window` closes, short below it."""

        name = "byo_channel_breakout"
        params_model = BreakoutParams

        def positions(self, *, close, params):
            close = np.asarray(close, dtype=float)
            w = params.window
            total = np.cumsum(close, axis=-1)
            total[..., w:] = total[..., w:] - total[..., :-w]
            signal = np.sign(close - total / w)
            signal[..., : w - 1] = 0.0
            return signal

        def search_space(self):
            return {"window": ("int", 24, 1000, True)}
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user's strategy module, importable in this process and (via PYTHONPATH) in the daemon's."""
    directory = tmp_path_factory.mktemp("plugins")
    (directory / f"{PLUGIN_MODULE}.py").write_text(PLUGIN)
    sys.path.insert(0, str(directory))
    yield directory
    sys.path.remove(str(directory))
    sys.modules.pop(PLUGIN_MODULE, None)


@pytest.fixture(scope="module")
def market_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hourly bars for 605 days: exactly the default train, backtest and forward windows."""
    path = tmp_path_factory.mktemp("data") / "prices.csv"
    generate_synthetic_market(seed=7).write_csv(path)
    return path


@dataclass
class Project:
    """A user's directory: gauntlet.yaml, the study's storage, the data; and a Dagster instance."""

    root: Path
    dagster_home: Path
    plugin_dir: Path

    @property
    def config(self) -> Path:
        return self.root / "gauntlet.yaml"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.root / 'optuna.db'}"

    def write_config(self, **changes: Any) -> None:
        """gauntlet.yaml with paths relative to it, as a user writes it; ``changes`` replace sections.
        Its data file does not grow, so paper sessions replay its forward window (a holdout)."""
        config = {
            "home": "state",
            "optuna": {"storage": "sqlite:///optuna.db", "studies": [STUDY]},
            "sensor": {"interval_seconds": 2},
            "market": {"file": "data/prices.csv"},
            "strategies": {"plugins": [PLUGIN_PATH], "entry_points": False},
            **HOLDOUT_SECTIONS,
            **changes,
        }
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def add_trials(self, windows: list[int]) -> list[str]:
        """COMPLETE trials of the plug-in strategy; returns their partition keys."""
        study = optuna.create_study(
            study_name=STUDY, storage=self.optuna_url, load_if_exists=True, direction="maximize"
        )
        distributions = {"window": optuna.distributions.IntDistribution(1, 2000, log=True)}
        keys = []
        for window in windows:
            study.add_trial(
                optuna.trial.create_trial(
                    params={"window": window}, distributions=distributions, value=0.5, user_attrs={"strategy": STRATEGY}
                )
            )
            keys.append(trial_partition_key(STUDY, len(study.trials) - 1))
        return keys

    def daemon_env(self) -> dict[str, str]:
        # Only what the project sets: a GAUNTLET_* variable of the caller's shell (`make test`
        # exports GAUNTLET_HOME) would override the file.
        env = {name: value for name, value in os.environ.items() if not name.startswith("GAUNTLET_")}
        pythonpath = [str(self.plugin_dir), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {
            **env,
            "GAUNTLET_CONFIG": str(self.config),
            "DAGSTER_HOME": str(self.dagster_home),
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
        }

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))


@pytest.fixture
def project(tmp_path: Path, plugin_dir: Path, market_csv: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    root = tmp_path / "my_project"
    (root / "data").mkdir(parents=True)
    shutil.copy(market_csv, root / "data" / "prices.csv")
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GAUNTLET_CONFIG", str(root / "gauntlet.yaml"))
    # dagster.yaml reads DAGSTER_HOME, and `gauntlet run` opens dg.DagsterInstance.get().
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    # Create the SQLite storages once, before several daemon threads race to create them.
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    created = Project(root=root, dagster_home=dagster_home, plugin_dir=plugin_dir)
    created.write_config()
    return created


def _materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def _materialization_count(instance: dg.DagsterInstance, asset: str, key: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=10
    ).records
    return len(records)


def _trial_runs_finished(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_run_records(dg.RunsFilter(job_name="trial_job"))
    return all(r.dagster_run.status in FINISHED_STATUSES for r in runs)


@contextlib.contextmanager
def _daemon(project: Project) -> Iterator[None]:
    """`dagster-daemon run` on the project's configuration, stopped (and its log closed) on exit."""
    with (project.root / "daemon.log").open("ab") as log:
        process = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=project.daemon_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield
        finally:
            stop_process(process)


def _log(project: Project) -> str:
    return (project.root / "daemon.log").read_text(errors="replace")[-3000:]


def test_your_own_study_through_config_check_run_and_the_daemon(project: Project, capsys):
    first, second = project.add_trials([240, 96])

    assert config_main(["check"]) == 0
    checked = capsys.readouterr().out
    assert "# gauntlet config check: valid" in checked
    assert PLUGIN_PATH in checked and str(project.root / "data" / "prices.csv") in checked

    assert run_main(["--study", STUDY, "--trial", "0"]) == 0
    ran = capsys.readouterr().out
    assert "✓ market_data" in ran and "✓ cge_scenarios" in ran
    assert "✓ optuna_trial" in ran and "✓ backtest_results" in ran
    summary = next(line for line in ran.splitlines() if line.startswith(f"{first}: "))
    assert summary.split(" — ")[0] in {f"{first}: completed", f"{first}: rejected", f"{first}: pending"}
    with project.instance() as instance:
        assert _materialized(instance, "backtest_results") == {first}
        runs = instance.get_run_records(dg.RunsFilter(job_name="trial_job"))
        assert [r.dagster_run.tags["dagster/partition"] for r in runs] == [first]
        assert runs[0].dagster_run.tags["gauntlet/source"] == "gauntlet run"

    with _daemon(project), project.instance() as instance:
        try:
            wait_while_the_daemon_works(instance, lambda: second in _materialized(instance, "backtest_results"), what="the daemon")
            # Stopping the daemon stops its runs too: let the trial's run finish first.
            wait_while_the_daemon_works(instance, lambda: _trial_runs_finished(instance), what="the trial's run to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_log(project)}") from exc
    with project.instance() as instance:
        # The daemon took the trial `gauntlet run` had not, and left the other alone.
        assert _materialization_count(instance, "optuna_trial", first) == 1


def test_gauntlet_run_until_a_stage_through_a_gate_with_dry_run_and_over_all_new_trials(project: Project, capsys):
    first, second, broken = project.add_trials([240, 96, 1])  # window 1: the strategy refuses it

    # The calibrated default thresholds: a backtest Sharpe ratio under 3 stops the trial at gate 1.
    assert run_main(["--study", STUDY, "--trial", "0"]) == 0
    out = capsys.readouterr().out
    assert "✓ backtest_results" in out and "✗ backtest_gate" in out and "cge_stress_report" not in out
    assert f"{first}: rejected — backtest_gate: sharpe" in out and "< min 3 (short by" in out

    project.write_config(gates={"backtest": {"enabled": False}})
    assert run_main(["--study", STUDY, "--trial", "0", "--until", "backtest_results"]) == 0
    out = capsys.readouterr().out
    assert "✓ backtest_results" in out and "cge_stress_report" not in out.split("✓ backtest_results")[1]
    assert f"{first}: stopped — after backtest_results (--until)" in out

    # Thresholds of the user's own: no strategy trades a million times in the backtest window.
    project.write_config(gates={"backtest": {"min_trades": 1_000_000}})
    assert run_main(["--study", STUDY, "--trial", "0"]) == 0
    out = capsys.readouterr().out
    assert "✗ backtest_gate" in out and "n_trades" in out and "< min 1e+06" in out
    rejected = next(line for line in out.splitlines() if line.startswith(f"{first}: rejected — backtest_gate: "))
    assert "n_trades 121 < min 1e+06" in rejected

    # Every gate switched off passes visibly (deployment still asks for a required grade: any
    # grade here), and a dry run records what it would have done.
    every_grade = ["A", "B", "C", "D", "F"]
    off = {"enabled": False}
    project.write_config(gates={"backtest": off, "cge": off, "paper": {**off, "required_grades": every_grade}})
    assert run_main(["--study", STUDY, "--trial", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.endswith("  disabled")] == [
        "backtest_results",
        "cge_stress_report",
        "paper_trading_grade",
    ]
    assert f"{first}: completed — deployment dry_run: dry run, would have been promoted" in out

    # Its outcome as one JSON document on stdout; the lines a person reads on stderr.
    assert run_main(["--study", STUDY, "--trial", "0", "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    [trial] = document["trials"]
    assert (trial["partition_key"], trial["status"]) == (first, "completed")
    assert [step["step"] for step in trial["steps"]][:2] == ["optuna_trial", "backtest_results"]
    assert document["summary"]["completed"] == 1 and document["exit_status"] == 0
    assert f"{first}: completed — deployment dry_run" in captured.err

    assert run_main(["--all-new"]) == 1  # one of the two new trials cannot be evaluated
    out = capsys.readouterr().out
    assert f"[1/2] {second}" in out and f"[2/2] {broken}" in out and "1/2 done, about" in out
    assert f"{second}: completed" in out
    failure = next(line for line in out.splitlines() if line.startswith(f"{broken}: "))
    assert failure.startswith(f"{broken}: failed — TrialDataError: [trial {broken}, stage backtest_results]")
    assert "params for strategy 'byo_channel_breakout' are invalid" in failure
    assert "2 trials: 1 completed, 1 failed" in out
    with project.instance() as instance:
        assert _materialized(instance, "deployment_record") == {first, second}
        assert broken not in _materialized(instance, "backtest_results")

    assert run_main(["--study", STUDY, "--trial", "7"]) == 1
    err = capsys.readouterr().err
    assert "TrialDataError" in err and f"study '{STUDY}' has no trial numbered 7 (it has 3 trial(s), numbered 0 to 2)" in err
    assert run_main(["--study", "not_a_study", "--trial", "0"]) == 1
    assert "study 'not_a_study' is not watched" in capsys.readouterr().err
    assert run_main(["--trial", "0"]) == 2
