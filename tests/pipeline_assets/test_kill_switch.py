"""The kill switch does not depend on user code (issue 20, item 6).

With a strategy plug-in configured that fails to import, `gauntlet stop`, `resume`, `live`,
`status` and `health` still work, and none of them imports it: the plug-in writes a marker
file when it is imported, and the marker never appears. `stop` runs as a real `gauntlet`
process, as an operator would run it in an emergency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gauntlet.cli import main
from gauntlet.config import GauntletConfig
from gauntlet.environment import build_resources

ROOT = Path(__file__).resolve().parents[2]
GAUNTLET = Path(sys.executable).parent / "gauntlet"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "gauntlet"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken_strategies.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            Path({str(tmp_path / "imported")!r}).touch()
            raise RuntimeError("this plug-in is broken")
            """
        )
    )
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("GAUNTLET_HOME", str(home))
    monkeypatch.setenv("GAUNTLET_STRATEGY_PLUGINS", "broken_strategies:Strategy")
    monkeypatch.syspath_prepend(str(plugins))
    monkeypatch.setenv("PYTHONPATH", str(plugins))
    return home


def test_stop_resume_live_status_and_health_never_import_plugins(home: Path, tmp_path: Path, capsys):
    # The pipeline itself refuses the configuration: the plug-in is broken.
    assert main(["config", "check"]) == 1
    assert "broken_strategies:Strategy" in capsys.readouterr().err
    (tmp_path / "imported").unlink()

    stop = subprocess.run(
        [str(GAUNTLET), "stop", "--reason", "market halt", "--by", "user:oncall", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert stop.returncode == 0, stop.stderr
    assert json.loads(stop.stdout)["stopped"] is True
    registry = build_resources(GauntletConfig(home=home))["registry"]
    assert registry.emergency_stop().stopped

    assert main(["live", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["emergency_stop"]["stopped"] is True
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == []
    # Unhealthy (no daemon runs here), but it answers, and names no plug-in problem.
    assert main(["health", "--json"]) == 1
    out, err = capsys.readouterr()
    components = {c["component"] for c in json.loads(out)["checks"]}
    assert {"deployment registry", "sensor optuna_trial_sensor"} <= components
    # stderr says which configuration applies (the demo's here), and nothing about the plug-in.
    assert err.splitlines() == [err.splitlines()[0]] and err.startswith("gauntlet: using the demo configuration")
    assert main(["resume", "--reason", "halt over", "--by", "user:oncall"]) == 0
    assert "emergency stop: off" in capsys.readouterr().out.lower()
    assert not registry.emergency_stop().stopped

    assert not (tmp_path / "imported").exists(), "a command imported the strategy plug-in"
