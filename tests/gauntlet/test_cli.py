"""`gauntlet` as an operator uses it: status, live, stop/resume, retire, rollback, retry, health.

One small study is processed once per module (a trial rejected by gate 1, one promoted, one
whose strategy does not exist so its run fails, and one trial of a second study); each test
works on its own copy of that Gauntlet home and Dagster instance, calling ``main(argv)`` in
process with ``DAGSTER_HOME`` and ``GAUNTLET_HOME`` pointing at the copy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from gauntlet.cli import main
from gauntlet.commands import DAEMON_HEARTBEAT_SLACK_SECONDS
from resources.dagster_private import (
    BACKFILL_ID_TAG,
    DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    FINISHED_STATUSES,
    DaemonHeartbeat,
)
from gauntlet.config import GauntletConfig, location
from gauntlet.environment import build_resources
from pipeline_assets.shared_assets import MARKET_DATA, recorded_window_dates
from gauntlet.status import attribute_failure, run_partitions
from resources.database import engine_for
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, demo_gate_policy, local_definitions, write_demo_gate_policy
from tests.e2e.conftest import stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
# With at least 100 backtest trades required, SLOW fails gate 1 and GOOD passes every gate.
STRICT = {"backtest": {"min_trades": 100}}
SLOW = {"lookback": 480, "vol_lookback": 720, "target_bar_vol": 0.003}
GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
REJECTED, PROMOTED, BROKEN, OTHER = "demo__t00000000", "demo__t00000001", "demo__t00000002", "alt__t00000000"


def _process(home: Path) -> None:
    """Run the sensor and the runs it requests until idle, as the daemon would."""
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        defs = local_definitions(_optuna_url(home), home, gate_policy=demo_gate_policy(STRICT))
        Ticker(defs, instance).tick_until_idle()


def _optuna_url(home: Path) -> str:
    return location(GauntletConfig(home=home), "optuna.storage")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template") / "gauntlet"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    write_demo_gate_policy(home / "gate_policy.yaml", STRICT)
    url = _optuna_url(home)
    add_complete_trials(url, "demo", [0.1, 0.5], params=[SLOW, GOOD])
    add_complete_trials(url, "demo", [0.2], params=[SLOW], strategy="nonexistent")
    add_complete_trials(url, "alt", [0.3], params=[SLOW])
    with pytest.MonkeyPatch.context() as patch:
        # dagster.yaml places the instance's storage under $DAGSTER_HOME.
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        _process(home)
    # Close pooled connections so the copies below see every write in the database files.
    engine_for(location(GauntletConfig(home=home), "deployment.database")).dispose()
    return home


@dataclass
class Home:
    path: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> dict:
        code, out, err = self.run(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def registry(self):
        return build_resources(GauntletConfig(home=self.path))["registry"]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.path / "dagster"))


@pytest.fixture
def home(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Home:
    path = tmp_path / "gauntlet"
    shutil.copytree(template, path)
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(path / "dagster"))
    monkeypatch.setenv("GAUNTLET_HOME", str(path))
    monkeypatch.setenv("GAUNTLET_GATE_POLICY", str(path / "gate_policy.yaml"))
    monkeypatch.setenv("USER", "tester")
    return Home(path=path, capsys=capsys)


def _trials(payload: dict) -> dict[str, dict]:
    return {t["partition_key"]: t for t in payload["trials"]}


def _line(out: str, key: str) -> str:
    [line] = [line for line in out.splitlines() if line.startswith(key)]
    return line


# -- status ---------------------------------------------------------------------------------------
def test_status_shows_each_trials_stage_verdicts_decision_and_last_error(home):
    code, out, _ = home.run("status")
    assert code == 0
    assert _line(out, REJECTED).split()[:6] == [REJECTED, "backtested", "FAIL", "-", "-", "-"]
    assert _line(out, PROMOTED).split()[:6] == [PROMOTED, "decided", "pass", "pass", "pass", "promoted"]
    assert "ERROR backtest_results: unknown strategy 'nonexistent'" in _line(out, BROKEN)

    trials = _trials(home.json("status"))
    assert trials[REJECTED]["gates"] == {
        "backtest_gate": "failed",
        "cge_gate": "not_evaluated",
        "paper_trading_gate": "not_evaluated",
    }
    assert trials[REJECTED]["last_error"] is None  # a rejection is a result, not a failure
    assert set(trials[PROMOTED]["gates"].values()) == {"passed"}
    assert trials[PROMOTED]["decision"]["decision"] == "promoted"
    # Its paper session: a holdout replay of the 60-day forward window (these tests' setting).
    paper = trials[PROMOTED]["paper"]
    assert {k: paper[k] for k in ("mode", "started_after", "market_days", "bars", "state")} == {
        "mode": "holdout", "started_after": None, "market_days": 60, "bars": 60 * 24, "state": "graded"
    }
    first, last = (dt.datetime.fromisoformat(paper[k]) for k in ("first_bar", "last_bar"))
    assert last - first == dt.timedelta(days=60) - dt.timedelta(hours=1)
    assert trials[PROMOTED]["decision"]["paper_mode"] == "holdout"
    assert trials[REJECTED]["paper"] is None  # gate 1 stopped it: no session
    broken = trials[BROKEN]
    assert broken["stage"] == "snapshot" and broken["decision"] is None
    # The batch run failed because of this trial alone: its neighbours carry no error.
    assert broken["last_error"]["stage"] == "backtest_results"
    assert "unknown strategy 'nonexistent'" in broken["last_error"]["message"]


def test_status_filters_by_study_stage_and_failure(home):
    assert list(_trials(home.json("status", "--study", "alt"))) == [OTHER]
    assert list(_trials(home.json("status", "--stage", "decided"))) == [PROMOTED]
    # Failed: rejected by a gate or errored; rows by study, then trial number.
    assert list(_trials(home.json("status", "--failed"))) == [OTHER, REJECTED, BROKEN]
    assert list(_trials(home.json("status", "--study", "demo", "--stage", "backtested"))) == [REJECTED]
    summary = home.json("status", "--study", "demo", "--failed")["summary"]
    assert (summary["trials"], summary["rejected"], summary["errored"]) == (2, 1, 1)
    code, _, err = home.run("status", "--stage", "nowhere")
    assert code == 2 and "invalid choice" in err


def test_failed_status_says_which_threshold_rejected_each_trial_by_how_much(home):
    rejection = _trials(home.json("status", "--failed"))[REJECTED]["rejection"]
    assert rejection["gate"] == "backtest_gate"
    [check] = [c for c in rejection["failed_checks"] if c["threshold"] == "n_trades"]
    assert check["value"] < 100 and check["rule"] == ">= 100" and check["limit"] == 100
    assert check["margin"] == check["value"] - 100
    assert f"n_trades {check['value']:g} < min 100 (short by {100 - check['value']:g})" in rejection["reason"]
    code, out, _ = home.run("status", "--failed")
    assert code == 0
    assert f"REJECTED by backtest_gate: {rejection['reason']}" in _line(out, REJECTED)
    assert "ERROR backtest_results: unknown strategy 'nonexistent'" in _line(out, BROKEN)
    assert [line.split()[0] for line in out.splitlines()[2:5]] == [OTHER, REJECTED, BROKEN]
    assert "2 rejected by a gate, 1 with a failed run" in out.splitlines()[-1]
    assert _trials(home.json("status"))[PROMOTED]["rejection"] is None
    # The plain view reads no evaluation event (it stays fast on 10,000 trials): verdicts only.
    assert "REJECTED by" not in home.run("status")[1]


# -- registry commands ------------------------------------------------------------------------------
def test_live_shows_the_promoted_trial(home):
    payload = home.json("live")
    assert [e["partition_key"] for e in payload["live"]] == [PROMOTED]
    code, out, _ = home.run("live")
    assert code == 0 and "emergency stop: off" in out and PROMOTED in out


def test_stop_holds_the_next_decision_and_resume_clears_it(home):
    code, out, _ = home.run("stop", "--reason", "market halt")
    assert code == 0 and "emergency stop: ON" in out and "user:tester" in out
    add_complete_trials(_optuna_url(home.path), "demo", [0.6], params=[GOOD])
    _process(home.path)
    held = _trials(home.json("status"))["demo__t00000003"]
    assert held["stage"] == "decided" and held["decision"]["decision"] == "held_emergency_stop"
    assert home.json("resume", "--reason", "halt over", "--by", "user:ops")["stopped"] is False
    history = home.registry().control_history()
    assert [(e.action, e.by, e.reason) for e in history[:2]] == [
        ("stop_cleared", "user:ops", "halt over"),
        ("stop_set", "user:tester", "market halt"),
    ]
    assert [e["partition_key"] for e in home.json("live")["live"]] == [PROMOTED]


def test_stop_requires_a_reason(home):
    code, _, err = home.run("stop")
    assert code == 2 and "--reason" in err


def test_retire_takes_the_trial_down_and_a_second_retire_is_a_typed_error(home):
    record = home.json("retire", PROMOTED, "--reason", "drawdown")
    assert record["decision"] == "retired" and record["decided_by"] == "user:tester"
    assert home.registry().live() == []
    code, _, err = home.run("retire", PROMOTED, "--reason", "again")
    assert code == 1 and "RegistryError" in err and "is not live" in err


def test_rollback_undoes_the_live_promotion(home):
    record = home.json("rollback", "--reason", "bad fills")
    assert record["decision"] == "rolled_back" and record["partition_key"] == PROMOTED
    assert home.registry().live() == []
    assert home.registry().decisions(partition_key=PROMOTED)[0].decision == "rolled_back"


# -- windows ----------------------------------------------------------------------------------------
def test_windows_shows_each_studys_windows_as_pinned_in_the_instance(home):
    with home.instance() as instance:
        dates, _ = recorded_window_dates(instance, "default")
        built = instance.get_latest_materialization_event(MARKET_DATA).asset_materialization.metadata
    recorded = {row.data["window"]: row.data for row in built["windows"].value.records}
    windows = {
        name: {"start": recorded[name]["start"], "end": recorded[name]["end"], "bars": int(recorded[name]["bars"])}
        for name in ("train", "backtest", "forward")
    }
    assert home.json("windows") == {
        "studies": [
            {"study": study, "instrument": "default", "symbol": "SYN", "windows": windows} for study in ("alt", "demo")
        ]
    }
    code, out, _ = home.run("windows")
    assert code == 0
    assert out.splitlines()[:3] == [
        "studies alt, demo, each judged on:",
        "instrument default (SYN): synthetic market, seed 20260101, 605 days of hourly bars",
        "dates pinned in the Dagster instance by market_data (its window_dates metadata): "
        + ", ".join(f"{k} {v}" for k, v in dates.as_dict().items()),
    ]
    assert f"tune on bars up to {windows['train']['end']}" in out


def test_windows_before_the_first_build_and_after_the_windows_change(home, tmp_path, monkeypatch):
    (tmp_path / "gauntlet.yaml").write_text("market:\n  windows: {backtest_days: 170}\n")
    monkeypatch.setenv("GAUNTLET_CONFIG", str(tmp_path / "gauntlet.yaml"))
    code, out, _ = home.run("windows")
    assert code == 0
    assert "the windows' configuration changed since market_data pinned its dates: dates the next build will pin now" in out
    assert home.json("windows")["studies"][0]["windows"]["backtest"]["bars"] == 170 * 24

    # A new instance and a Gauntlet home without a study yet: every study gets these windows.
    fresh = tmp_path / "fresh"
    (fresh / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", fresh / "dagster" / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(fresh / "dagster"))
    monkeypatch.setenv("GAUNTLET_HOME", str(fresh))
    code, out, _ = home.run("windows")
    assert code == 0 and out.startswith("studies *, each judged on:\n")
    assert "market_data has not been built: dates the first build would pin now" in out
    assert [s["study"] for s in home.json("windows")["studies"]] == ["*"]
    monkeypatch.setenv("GAUNTLET_STUDIES", "btc, eth")
    assert [s["study"] for s in home.json("windows")["studies"]] == ["btc", "eth"]


def test_config_names_the_file_on_any_command_and_the_demo_configuration_is_announced(home, tmp_path, monkeypatch):
    monkeypatch.delenv("GAUNTLET_CONFIG", raising=False)
    code, _, err = home.run("live")
    assert code == 0
    assert err.startswith("gauntlet: using the demo configuration (") and "--config PATH" in err

    own = tmp_path / "mine.yaml"
    own.write_text("market:\n  windows: {backtest_days: 170}\n")
    for argv in (["--config", str(own), "windows", "--json"], ["windows", f"--config={own}", "--json"]):
        code, out, err = home.run(*argv)
        assert code == 0 and "demo configuration" not in err
        assert json.loads(out)["studies"][0]["windows"]["backtest"]["bars"] == 170 * 24
    code, out, _ = home.run("--config", str(own), "config", "check")
    assert code == 0 and f"# file: {own}" in out
    assert "GAUNTLET_CONFIG" not in os.environ  # set for the one command only

    code, _, err = home.run("--config", str(tmp_path / "missing.yaml"), "live")
    assert code == 1 and "no such file" in err
    code, _, err = home.run("live", "--config")
    assert code == 2 and "--config needs a path" in err
    code, out, _ = home.run("--help")
    assert code == 0 and "--config PATH" in out


@pytest.mark.postgres
def test_status_reads_the_instance_where_dagster_yaml_puts_it_on_postgresql(tmp_path, monkeypatch, capsys, pg_database):
    """`status` reads the instance's tables itself: where the instance's dagster.yaml says, as Dagster does."""
    dagster_home = tmp_path / "gauntlet" / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url:\n      env: GAUNTLET_TEST_DAGSTER_PG_URL\n"
    )
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GAUNTLET_TEST_DAGSTER_PG_URL", pg_database)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("GAUNTLET_HOME", str(dagster_home.parent))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions("trials", [REJECTED, PROMOTED])
        instance.report_runless_asset_event(dg.AssetMaterialization("optuna_trial", partition=PROMOTED))
    assert main(["status", "--json"]) == 0
    trials = _trials(json.loads(capsys.readouterr().out))
    assert {key: trial["stage"] for key, trial in trials.items()} == {REJECTED: "detected", PROMOTED: "snapshot"}
    assert not any(path.suffix == ".db" for path in dagster_home.rglob("*")), "read SQLite instead of PostgreSQL"


# -- errors -----------------------------------------------------------------------------------------
def test_a_missing_dagster_home_is_a_typed_error(home, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME")
    code, out, err = home.run("status")
    assert code == 1 and out == ""
    assert "ConfigurationError" in err and "DAGSTER_HOME is not set" in err


def test_the_kill_switch_works_without_the_dagster_instance(home, monkeypatch):
    """stop, resume and live need only the registry: no DAGSTER_HOME, no Dagster instance."""
    monkeypatch.delenv("DAGSTER_HOME")
    code, out, err = home.run("stop", "--reason", "incident 42")
    assert code == 0, err
    assert out.startswith("emergency stop: ON since") and "incident 42" in out
    assert home.json("live")["emergency_stop"]["stopped"] is True
    code, out, err = home.run("resume", "--reason", "resolved")
    assert (code, out.strip()) == (0, "emergency stop: off"), err


def test_health_reports_unreachable_storages(home, tmp_path, monkeypatch):
    monkeypatch.setenv("GAUNTLET_HOME", str(tmp_path / "no" / "such" / "home"))
    code, out, _ = home.run("health", "--json")
    checks = {c["component"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    for component in ("deployment registry", "paper venue"):
        assert not checks[component]["healthy"]
        assert "unable to open database file" in checks[component]["detail"], checks[component]
    # The Optuna storage is read-only: a missing file is named, never created.
    assert not checks["optuna storage"]["healthy"]
    assert "StorageNotFoundError" in checks["optuna storage"]["detail"] and "does not exist" in checks["optuna storage"]["detail"]


# -- retry and health against a running daemon --------------------------------------------------------
def _fix_strategy(home: Path, number: int) -> None:
    """Patch the study: the trial's strategy attribute names a strategy that exists."""
    engine = sa.create_engine(_optuna_url(home))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "update trial_user_attributes set value_json = '\"momentum\"' where key = 'strategy' and trial_id = "
                "(select t.trial_id from trials t join studies s on s.study_id = t.study_id "
                "where s.study_name = 'demo' and t.number = :number)"
            ),
            {"number": number},
        )
    engine.dispose()


def _backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))]


@pytest.mark.e2e
def test_retry_relaunches_a_failed_trial_and_health_follows_the_daemon(home):
    code, out, _ = home.run("health", "--json")
    health = json.loads(out)
    assert code == 1 and not health["healthy"]
    daemons = [c for c in health["checks"] if c["component"].startswith("daemon ")]
    assert daemons and all(not c["healthy"] and "no heartbeat" in c["detail"] for c in daemons)

    _fix_strategy(home.path, 2)
    dry = home.json("retry", "--dry-run")
    assert [t["partition_key"] for t in dry["trials"]] == [BROKEN] and dry["backfills"] == []
    with home.instance() as instance:
        assert instance.get_backfills() == []
    [backfill] = home.json("retry")["backfills"]
    assert backfill["partition_keys"] == [BROKEN]
    again = home.json("retry")
    assert again["trials"] == [] and again["skipped_in_flight"] == [BROKEN]

    env = {**os.environ, "GAUNTLET_SENSOR_INTERVAL": "2", "PYTHONUNBUFFERED": "1"}
    with open(home.path / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with home.instance() as instance:
            wait_until(
                lambda: any(r.status in FINISHED_STATUSES for r in _backfill_runs(instance, backfill["backfill_id"])),
                timeout=180,
                what="the retry backfill's run to finish",
            )
            [run] = _backfill_runs(instance, backfill["backfill_id"])
        assert run.status == dg.DagsterRunStatus.SUCCESS, (home.path / "daemon.log").read_text()[-3000:]
        assert run.tags["gauntlet/study"] == "demo" and run.tags["gauntlet/retry"] == "cli"
        retried = _trials(home.json("status"))[BROKEN]
        assert retried["last_error"] is None and retried["stage"] == "backtested"
        assert retried["gates"]["backtest_gate"] == "failed"  # SLOW params: now a result, not an error

        def healthy() -> bool:
            return home.run("health")[0] == 0

        wait_until(healthy, timeout=60, interval=2, what="every daemon and sensor to report in")
        code, out, _ = home.run("health")
        assert code == 0 and out.strip().endswith("healthy")
    finally:
        stop_process(daemon)


def test_health_calls_a_daemon_unhealthy_once_its_heartbeat_is_overdue(home):
    # Heartbeats as dagster-daemon writes them: one fresh, one a heartbeat interval and the slack old.
    now = time.time()
    overdue = DEFAULT_HEARTBEAT_INTERVAL_SECONDS + DAEMON_HEARTBEAT_SLACK_SECONDS + 1
    with home.instance() as instance:
        daemons = sorted(instance.get_required_daemon_types())
        for daemon in daemons:
            instance.add_daemon_heartbeat(
                DaemonHeartbeat(timestamp=now, daemon_type=daemon, daemon_id="test", errors=[])
            )
    checks = {c["component"]: c for c in json.loads(home.run("health", "--json")[1])["checks"]}
    assert all(checks[f"daemon {d}"]["healthy"] for d in daemons), checks

    with home.instance() as instance:
        instance.add_daemon_heartbeat(
            DaemonHeartbeat(timestamp=now - overdue, daemon_type=daemons[0], daemon_id="test", errors=[])
        )
    code, out, _ = home.run("health")
    assert code == 1 and out.strip().endswith("UNHEALTHY")
    line = _line(out, f"daemon {daemons[0]}")
    assert "FAIL" in line and "overdue (expected every 30s): has dagster-daemon stopped?" in line


# -- the read model's parsing ---------------------------------------------------------------------------
def test_a_batch_failure_is_attributed_to_the_trials_it_names():
    text = (
        "dagster._core.definitions.events.Failure: 2 trial(s) failed:\n"
        "[trial s__t00000001, stage backtest_results] NaN Sharpe\n"
        "[trial s__t00000003, stage cge_stress_report] scenario 17 did not solve"
    )
    covered = ["s__t00000001", "s__t00000002", "s__t00000003"]
    assert attribute_failure(text, covered) == {
        "s__t00000001": ("backtest_results", "NaN Sharpe"),
        "s__t00000003": ("cge_stress_report", "scenario 17 did not solve"),
    }


def test_a_failure_naming_no_trial_is_every_covered_trials():
    text = "simulations.errors.MarketDataError: [stage market_data] prices.csv row 12: negative close"
    assert attribute_failure(text, ["a__t00000000", "a__t00000001"]) == {
        "a__t00000000": ("market_data", "prices.csv row 12: negative close"),
        "a__t00000001": ("market_data", "prices.csv row 12: negative close"),
    }
    assert attribute_failure("Run worker crashed", ["a__t00000000"]) == {"a__t00000000": (None, "Run worker crashed")}


def test_run_partitions_follow_the_dynamic_partition_order():
    keys = ["b__t00000000", "a__t00000005", "a__t00000006", "b__t00000001"]
    position = {k: i for i, k in enumerate(keys)}
    range_tags = {
        "dagster/asset_partition_range_start": "a__t00000005",
        "dagster/asset_partition_range_end": "b__t00000001",
    }
    assert run_partitions(range_tags, keys, position) == keys[1:]
    assert run_partitions({"dagster/partition": "b__t00000000"}, keys, position) == ["b__t00000000"]
    assert run_partitions({"dagster/partition": "gone__t00000000"}, keys, position) == []
    assert run_partitions({}, keys, position) == []


# -- calibrate --------------------------------------------------------------------------------------
def test_calibrate_reports_the_forward_paper_trading_horizon_curve(tmp_path, monkeypatch, capsys):
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GAUNTLET_HOME", str(tmp_path / "gauntlet"))
    chart = tmp_path / "horizon_curve.png"
    argv = ["calibrate", "--horizons-only", "--horizon-sessions", "300", "--seed", "3"]
    assert main([*argv, "--chart", str(chart)]) == 0
    text = capsys.readouterr().out
    heading, header, *table = text.splitlines()[:7]
    assert heading.startswith("Forward paper trading: the sequential test at confidence 0.99 (promoted once the e-value")
    assert header.split() == [
        "days", "false", "negatives:", "SR", "2", "not", "promoted",
        "false", "positives:", "SR", "0", "(the", "floor)", "promoted",
    ]
    assert [int(line.split()[0]) for line in table] == [7, 30, 60, 120, 250]
    assert all(line.split()[1].endswith("%") and line.split()[4].endswith("%") for line in table)
    assert "promoted in at most 1 % of sessions however long it trades" in text
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    assert main([*argv, "--json"]) == 0
    curve = json.loads(capsys.readouterr().out)["horizon_curve"]
    assert [row["days"] for row in curve["rows"]] == [7, 30, 60, 120, 250]
    assert {row["false_negative"]["sessions"] for row in curve["rows"]} == {300}
    assert (curve["sequential"]["confidence"], curve["threshold"], curve["seed"]) == (0.99, 100.0, 3)

    code = main([*argv, "--horizons", "30", "7"])
    assert code == 2 and "horizons must be strictly ascending market days, got [30, 7]; did you mean [7, 30]?" in (
        capsys.readouterr().err
    )
