"""Structural rules of DESIGN.md that must never silently erode."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipeline_assets.definitions import defs as load_definitions

ROOT = Path(__file__).resolve().parent.parent
#: The code location's definitions, built as Dagster builds them (the module only declares them).
defs = load_definitions()
PACKAGES = ["simulations", "resources", "pipeline_assets", "sensors", "gauntlet"]
OPTUNA_BOUNDARY = "resources/optuna_study.py"
# Imports point one way: simulations <- resources <- pipeline_assets <- sensors <- gauntlet (the
# operator's application, with its configuration); definitions.py sees everything.
ALLOWED_IMPORTS = {
    "simulations": {"simulations"},
    "resources": {"simulations", "resources"},
    "pipeline_assets": {"simulations", "resources", "pipeline_assets"},
    "sensors": {"simulations", "resources", "pipeline_assets", "sensors"},
    # The operator's application sits on top: it reads what the pipeline records.
    "gauntlet": {"simulations", "resources", "pipeline_assets", "sensors", "gauntlet"},
}
SEE_EVERYTHING = {"pipeline_assets/definitions.py"}
# Private Dagster APIs are imported in this one module only, so a Dagster upgrade touches one file.
DAGSTER_PRIVATE_ADAPTER = "resources/dagster_private.py"
DAGSTER_PRIVATE_SCOPE = [*PACKAGES, "tests", "bench", "scripts"]


def _may_import_optuna(rel: str) -> bool:
    """The resource boundary and the trainers (the demo's and the calibration's)."""
    return rel == OPTUNA_BOUNDARY or (rel.startswith("simulations/") and "train" in rel.rsplit("/", 1)[-1])


def _python_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_simulations_never_import_dagster():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "simulations").rglob("*.py")
        if any(m.split(".")[0] == "dagster" for m in _imported_modules(p))
    ]
    assert offenders == []


def test_only_the_resource_and_the_trainer_import_optuna():
    offenders = [
        str(p.relative_to(ROOT))
        for p in _python_files()
        if not _may_import_optuna(str(p.relative_to(ROOT)))
        and any(m.split(".")[0] == "optuna" for m in _imported_modules(p))
    ]
    assert offenders == []


def test_imports_point_one_way():
    offenders = []
    for path in _python_files():
        rel = str(path.relative_to(ROOT))
        if rel in SEE_EVERYTHING:
            continue
        package = rel.split("/")[0]
        for module in _imported_modules(path):
            top = module.split(".")[0]
            if top in PACKAGES and top not in ALLOWED_IMPORTS[package]:
                offenders.append(f"{rel} imports {module}")
    assert offenders == []


def _private_dagster_imports(path: Path) -> list[str]:
    """`dagster._…` and `dagster_shared…` imports anywhere in the file, including inside functions."""
    private = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(m.startswith("dagster._") or m.split(".")[0] == "dagster_shared" for m in modules):
            private.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {modules[0]}")
    return private


def test_the_operator_application_lives_in_gauntlet():
    """Command lines (argparse), the configuration file (YAML) and the read models are gauntlet/'s;
    pipeline_assets/ keeps assets, checks, partitions, jobs and definitions (the demo trainer's
    arguments and the gate policy files a resource reads aside)."""
    exempt = {"simulations/train.py", "simulations/policy_file.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("pipeline_assets", "resources", "sensors", "simulations")
        for path in sorted((ROOT / package).rglob("*.py"))
        if {"argparse", "yaml"} & _imported_modules(path) and str(path.relative_to(ROOT)) not in exempt
    ]
    assert offenders == []


def test_importing_the_definitions_reads_no_configuration():
    """The code location's definitions are built when Dagster loads them, not at import."""
    probe = (
        "import pipeline_assets.definitions as d\n"
        "from simulations.errors import ConfigurationError\n"
        "try:\n    d.defs()\nexcept ConfigurationError as exc:\n    assert 'no such file' in str(exc), exc\n"
        "else:\n    raise AssertionError('built with a missing configuration file')\n"
    )
    env = {**os.environ, "GAUNTLET_CONFIG": str(ROOT / "missing" / "gauntlet.yaml")}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_command_line_parses_before_importing_dagster():
    """`gauntlet --help` and usage errors answer without Dagster, the stage table or the resources."""
    probe = (
        "import sys, gauntlet.cli as cli\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'pipeline_assets', 'polars', 'scipy'})\n"
        "assert not heavy, heavy\n"
        "assert cli.main(['--help']) == 0 and cli.main(['status', '--nonsense']) == 2\n"
        "assert 'dagster' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _loaded_after(setup: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a new interpreter has imported once it has run ``setup``."""
    probe = f"import json, sys\n{setup}\nprint(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_operator_commands_import_only_what_they_run():
    """What every command imports (`gauntlet.commands`) leaves out the heavy libraries only the
    calibration, the synthetic market, scenario drawing and exchange calendars use: each costs a
    person at a terminal half a second or more, on every command."""
    heavy = ("scipy.stats", "scipy.signal", "pandas", "exchange_calendars", "pipeline_assets.calibration_assets")
    assert _loaded_after("import gauntlet.commands", heavy) == []


def test_the_definitions_leave_out_what_only_calibration_and_scenario_building_use():
    """Every run worker, code server and daemon loads the definitions: scipy.stats and
    scipy.optimize (about 0.7 s together) are imported only by the calibration and the CGE
    solver, when they run."""
    heavy = ("scipy.stats", "scipy.optimize", "scipy.signal", "pandas", "exchange_calendars")
    assert _loaded_after("import pipeline_assets.definitions as d\nd.defs()", heavy) == []


def test_only_the_adapter_imports_private_dagster_apis():
    offenders = [
        offence
        for package in DAGSTER_PRIVATE_SCOPE
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) != DAGSTER_PRIVATE_ADAPTER
        for offence in _private_dagster_imports(path)
    ]
    assert offenders == []


def test_no_swallowed_errors():
    patterns = [
        re.compile(r"except\s*:\s*(pass|\.\.\.)?\s*$"),
        re.compile(r"except\s+(Base)?Exception(\s+as\s+\w+)?\s*:\s*(pass|\.\.\.|return\s+(0|0\.0|None|nan))\s*$"),
    ]
    offenders = []
    for path in _python_files():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if any(p.search(stripped) for p in patterns):
                offenders.append(f"{path.relative_to(ROOT)}:{i + 1}")
            elif stripped.startswith("except") and stripped.endswith(":") and nxt in {"pass", "return 0", "return 0.0", "return None"}:
                offenders.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert offenders == []


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert "trial_job" in {j.name for j in repo.get_all_jobs()}
    sensor = defs.resolve_sensor_def("optuna_trial_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_every_asset_has_a_one_line_description_and_a_group():
    for spec in defs.resolve_all_asset_specs():
        assert spec.description and "\n" not in spec.description.strip(), spec.key
        assert spec.group_name in {"trials", "shared", "reporting"}, spec.key


def test_naming_conventions():
    for check_key in defs.resolve_asset_graph().asset_check_keys:
        assert check_key.name.endswith("_gate"), check_key
    for sensor in defs.sensors or []:
        assert sensor.name.endswith("_sensor"), sensor.name


@pytest.mark.parametrize("calendar", ["24/7", "XNYS"])
def test_status_and_the_registry_commands_answer_without_dagster_or_the_numerics(tmp_path, calendar):
    """``gauntlet status`` is what an operator runs first and ``gauntlet stop`` what they run in a
    hurry: they read the instance, the registry and the paper sessions as SQL, so they import
    neither Dagster nor numpy, polars, scipy or Optuna (each costs a person at a terminal a
    noticeable part of a second, Dagster about one), nor, for an exchange's calendar, pandas."""
    probe = (
        "import sys, gauntlet.cli as cli\n"
        "code = max(cli.main(argv) for argv in (['status'], ['live'], ['stop', '--reason', 'probe'], "
        "['resume', '--reason', 'probe']))\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_shared', 'numpy', 'polars', "
        "'scipy', 'optuna', 'pandas', 'exchange_calendars'})\n"
        "assert code == 0, code\n"
        "assert not heavy, heavy\n"
    )
    config = tmp_path / "gauntlet.yaml"
    config.write_text(f"market:\n  calendar: {calendar}\n")
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("GAUNTLET_")},
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "GAUNTLET_HOME": str(tmp_path),
        "GAUNTLET_ENV": "local",
        "GAUNTLET_CONFIG": str(config),
    }
    (tmp_path / "dagster").mkdir()
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "0 trial(s): none" in result.stdout
    assert "nothing is live" in result.stdout and "emergency stop: ON since" in result.stdout
