"""A database password given the way the README says (a whole ``${VAR}``, here the
``GAUNTLET_*`` variables) appears nowhere: not in `gauntlet config check`, `run`, `health`,
`status` or `live`, not in run config, events, metadata or the alert log, not in the resource
configuration the UI shows, not in an error about an unreachable server (issue 20, item 2).

The password holds a literal ``/``, an ``@`` (URL-encoded, as SQLAlchemy requires) and a ``:``.
The local PostgreSQL server trusts the loopback, so it accepts the URL whatever the password.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from gauntlet.cli import main
from tests.conftest import add_complete_trials
from tests.graphql_support import graphql_workspace, write_code_location

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Zq/9@Kx:7s3cr"
IN_URL = PASSWORD.replace("@", "%40")
#: Every form the password could be printed in.
FORMS = (PASSWORD, IN_URL, "Zq/9", "Kx:7s3cr")

RESOURCES_QUERY = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList { results { name configuredValues { key value type } } }
  }
}
"""


def _with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{IN_URL}@", 1)


def _assert_no_password(where: str, text: str) -> None:
    leaked = [form for form in FORMS if form in text]
    assert leaked == [], f"{where} shows {leaked}"


@pytest.mark.postgres
def test_a_password_in_a_variable_is_never_shown(
    make_pg_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    optuna_url, registry_url = _with_password(make_pg_database()), _with_password(make_pg_database())
    good = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}
    add_complete_trials(optuna_url, "sec", [0.5], params=[good])
    add_complete_trials(optuna_url, "sec", [0.2], params=[good], strategy="nonexistent")  # its run fails

    home = tmp_path / "gauntlet"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("GAUNTLET_HOME", str(home))
    monkeypatch.setenv("GAUNTLET_OPTUNA_STORAGE", optuna_url)
    monkeypatch.setenv("GAUNTLET_DATABASE_URL", registry_url)

    outputs = {}
    for argv in (["config", "check"], ["config", "check", "--json"], ["run", "--study", "sec", "--all-new"]):
        main(argv)
        outputs[" ".join(argv)] = capsys.readouterr()
    for argv in (["health", "--json"], ["status"], ["live"]):
        main(argv)
        outputs[" ".join(argv)] = capsys.readouterr()
    assert "✓ backtest_results" in outputs["run --study sec --all-new"].out
    health = {c["component"]: c for c in json.loads(outputs["health --json"].out)["checks"]}
    assert health["optuna storage"]["healthy"] and health["deployment registry"]["healthy"]

    # Errors about the servers name them with the password masked.
    monkeypatch.setenv("GAUNTLET_DATABASE_URL", registry_url.replace(":5432/", ":1/"))
    monkeypatch.setenv("GAUNTLET_OPTUNA_STORAGE", optuna_url.rsplit("/", 1)[0] + "/no_such_database")
    main(["health", "--json"])
    outputs["health, servers unreachable"] = capsys.readouterr()
    unreachable = {c["component"]: c for c in json.loads(outputs["health, servers unreachable"].out)["checks"]}
    assert not unreachable["deployment registry"]["healthy"] and "postgres:***@" in unreachable["deployment registry"]["detail"]
    assert not unreachable["optuna storage"]["healthy"] and "postgres:***@" in unreachable["optuna storage"]["detail"]
    for command, captured in outputs.items():
        _assert_no_password(f"gauntlet {command}", captured.out + captured.err)
    monkeypatch.setenv("GAUNTLET_DATABASE_URL", registry_url)
    monkeypatch.setenv("GAUNTLET_OPTUNA_STORAGE", optuna_url)

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
        for run in runs:
            _assert_no_password(f"run {run.run_id} config and tags", repr(run.run_config) + repr(run.tags))
            _assert_no_password(f"run {run.run_id} events", repr(instance.all_logs(run.run_id)))
        # The failure alert, as the daemon's sensor sends it.
        from pipeline_assets.definitions import build_definitions
        from gauntlet.config import load_config
        from gauntlet.environment import build_resources

        config = load_config().config
        defs = build_definitions(config=config, resources=build_resources(config))
        sensor = defs.resolve_sensor_def("run_failure_alert_sensor")
        with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
            sensor(context)
        assert '"kind":"run_failed"' in (home / "alerts.jsonl").read_text()

        # What the UI shows of the resources: the variables' names, never their values.
        location = write_code_location(tmp_path / "location", "from pipeline_assets.definitions import defs\n")
        with graphql_workspace(instance, location) as ui:
            shown = ui.query(
                RESOURCES_QUERY,
                {"selector": {"repositoryLocationName": "gauntlet", "repositoryName": "__repository__"}},
            )
    results = shown["allTopLevelResourceDetailsOrError"]["results"]
    configured = {r["name"]: {v["key"]: v for v in r["configuredValues"]} for r in results}
    assert configured["registry"]["database_url"] == {
        "key": "database_url",
        "value": "GAUNTLET_DATABASE_URL",
        "type": "ENV_VAR",
    }
    assert configured["optuna_study"]["storage_url"]["type"] == "ENV_VAR"
    _assert_no_password("the UI's resource configuration", json.dumps(shown))

    # Nothing stored by Dagster or Gauntlet holds it: instance, artifacts, alert log.
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert len(stored) > 10
    for path in stored:
        _assert_no_password(str(path.relative_to(home)), path.read_bytes().decode("latin-1"))
