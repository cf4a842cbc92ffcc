"""gauntlet.yaml: validated with messages a user can act on, overridden by GAUNTLET_* variables,
secrets only as ${VAR} references, and the one source of the resources."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from gauntlet import config
from gauntlet.config_check import config_main
from gauntlet.config import DEFAULT_CONFIG_PATH, GauntletConfig, load_config, location
from gauntlet.environment import build_resources
from resources.gate_policy import GatePolicyResource
from simulations.errors import ConfigurationError
from simulations.gates import GatePolicy
from simulations.market import generate_synthetic_market
from tests.simulations.previous_system import PREVIOUS_SYSTEM_FILE
from tests.simulations.test_calendars import fx_hourly

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2"


def _config(tmp_path: Path, text: str, **environ: str) -> dict[str, str]:
    """An environment whose GAUNTLET_CONFIG is ``text`` written to tmp_path/gauntlet.yaml."""
    path = tmp_path / "gauntlet.yaml"
    path.write_text(text)
    return {"GAUNTLET_CONFIG": str(path), **environ}


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_config(environ)
    return caught.value.cause.splitlines()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages name files relative to the working directory; variables given here only.
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("GAUNTLET_")]:
        monkeypatch.delenv(name)


def test_the_demo_configuration_is_the_built_in_default():
    loaded = load_config({})
    assert loaded.path == DEFAULT_CONFIG_PATH
    demo = loaded.config
    assert demo.home == ROOT / ".gauntlet"
    # The file spells out the defaults, except the demo's gate thresholds (the previous
    # system's); the locations it leaves out are filled under home.
    assert demo.gates_file == str(PREVIOUS_SYSTEM_FILE)
    assert loaded.defaulted == {"optuna.storage", "deployment.database", "artifacts.dir", "notifier.log"}
    defaults = GauntletConfig(home=ROOT / ".gauntlet", gates_file=str(PREVIOUS_SYSTEM_FILE))
    for section in ("environment", "sensor", "market", "strategies", "gates", "paper"):
        assert getattr(demo, section) == getattr(defaults, section), section
    # The sections with locations, as the resources built from them.
    assert build_resources(demo) == build_resources(defaults)
    assert location(demo, "optuna.storage") == f"sqlite:///{ROOT / '.gauntlet' / 'optuna.db'}"


def test_without_the_file_the_built_in_defaults_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An installed package has no gauntlet.yaml beside it: the same settings, from the defaults."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "absent.yaml")
    loaded = load_config({})
    assert loaded.path is None
    with_file = load_config({"GAUNTLET_CONFIG": str(DEFAULT_CONFIG_PATH)}).config
    # Without the demo's gates_file, the calibrated default thresholds apply.
    assert loaded.config == with_file.model_copy(update={"gates_file": None})


def test_variables_override_the_file_and_relative_paths_follow_their_source(tmp_path: Path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "prices.csv").write_text("")
    environ = _config(
        tmp_path / "project",
        "home: state\noptuna: {storage: 'sqlite:///studies.db', studies: [x]}\n"
        "sensor: {interval_seconds: 30, max_trials_per_run: 50}\nmarket: {file: prices.csv}\n",
        GAUNTLET_SENSOR_INTERVAL="2",
        GAUNTLET_STUDIES="alpha, beta",
        GAUNTLET_HOME="elsewhere",
    )
    loaded = load_config(environ).config
    assert loaded.sensor.interval_seconds == 2 and loaded.sensor.max_trials_per_run == 50
    assert loaded.optuna.studies == ["alpha", "beta"]
    assert loaded.home == tmp_path / "elsewhere"  # a variable: relative to the working directory
    assert location(loaded, "optuna.storage") == f"sqlite:///{tmp_path / 'project' / 'studies.db'}"  # to the file
    assert loaded.market.file == str(tmp_path / "project" / "prices.csv")
    assert location(loaded, "deployment.database") == f"sqlite:///{tmp_path / 'elsewhere' / 'gauntlet.db'}"


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        (
            "sensor:\n  interval_seconds: soon\n",
            {},
            "gauntlet.yaml: sensor.interval_seconds = 'soon': expected an integer",
        ),
        (
            "sensor:\n  intervall_seconds: 5\n",
            {},
            "gauntlet.yaml: sensor.intervall_seconds: unknown key; did you mean 'interval_seconds'?",
        ),
        (
            "gates:\n  cge:\n    min_share_profitble: 0.5\n",
            {},
            "gauntlet.yaml: gates.cge.min_share_profitble: unknown key; did you mean 'min_share_profitable'?",
        ),
        ("colour: blue\n", {}, "gauntlet.yaml: colour: unknown key; expected one of: environment, home, optuna,"),
        (
            "gates:\n  cge:\n    min_share_profitable: 1.5\n",
            {},
            "gauntlet.yaml: gates.cge.min_share_profitable = 1.5: expected a value ≤ 1",
        ),
        ("paper:\n  clock: fast\n", {}, "gauntlet.yaml: paper.clock = 'fast': expected 'replay' or 'wall'"),
        ("paper:\n  mode: replay\n", {}, "gauntlet.yaml: paper.mode = 'replay': expected 'forward' or 'holdout'"),
        (
            "paper:\n  clock: wall\n",
            {},
            "gauntlet.yaml: paper: paper.clock paces a holdout replay; a forward session trades bars as they arrive",
        ),
        (
            "",
            {"GAUNTLET_DEPLOY_PAPER_MODES": "forward,live"},
            "GAUNTLET_DEPLOY_PAPER_MODES = 'live' (deployment.paper_modes[1]): expected 'forward' or 'holdout'",
        ),
        (
            "",
            {"GAUNTLET_SENSOR_INTERVAL": "soon"},
            "GAUNTLET_SENSOR_INTERVAL = 'soon' (sensor.interval_seconds): expected an integer",
        ),
        (
            "optuna:\n  storage: ${OPTUNA_URL}\n",
            {},
            "gauntlet.yaml: optuna.storage = '${OPTUNA_URL}': environment variable OPTUNA_URL is not set",
        ),
        (
            "environment: production\n",
            {"GAUNTLET_DATABASE_URL": "x", "GAUNTLET_ARTIFACT_DIR": "x", "GAUNTLET_ALERT_LOG": "x"},
            "gauntlet.yaml: optuna.storage = '${GAUNTLET_OPTUNA_STORAGE}' (the production default): "
            "environment variable GAUNTLET_OPTUNA_STORAGE is not set",
        ),
        (
            "strategies:\n  plugins: [no_such_module:Strategy]\n",
            {},
            "gauntlet.yaml: strategies.plugins[0] = 'no_such_module:Strategy': cannot be loaded: "
            "ModuleNotFoundError: No module named 'no_such_module' (is the module's directory on PYTHONPATH?)",
        ),
        (
            "strategies:\n  plugins: [simulations.strategies:NoSuchStrategy]\n",
            {},
            "gauntlet.yaml: strategies.plugins[0] = 'simulations.strategies:NoSuchStrategy': cannot be loaded: "
            "AttributeError",
        ),
        ("market:\n  file: prices.csv\n", {}, "gauntlet.yaml: market.file = '{tmp}/prices.csv': no such file"),
        (
            "market:\n  synthetic: {days: 100}\n",
            {},
            "gauntlet.yaml: market: the windows need 605 days (train 365 + backtest 180 + forward 60) "
            "but synthetic.days is 100",
        ),
        (
            "artifacts:\n  dir: ${BASE}/artifacts\n",
            {},
            "gauntlet.yaml: artifacts.dir = '${BASE}/artifacts': a ${VAR} reference must be the whole value",
        ),
        (
            "gates: {cge: {enabled: false}}\ngates_file: policy.yaml\n",
            {},
            "gauntlet.yaml: set either gates (thresholds inline) or gates_file (a GatePolicy YAML file), not both",
        ),
        ("sensor: [\n", {}, "gauntlet.yaml: not valid YAML at line 2, column 1"),
        (
            "sensor: {}\nsensor: {}\n",
            {},
            "gauntlet.yaml: not valid YAML at line 2, column 1: key 'sensor' appears twice",
        ),
        ("- a\n- b\n", {}, "gauntlet.yaml: expected a mapping of sections (environment, home,"),
    ],
)
def test_an_invalid_configuration_names_the_key_the_value_and_the_expectation(tmp_path, text, environ, expected):
    problems = _problems(_config(tmp_path, text, **environ))
    assert any(p.startswith(expected.replace("{tmp}", str(tmp_path))) for p in problems), problems


def test_an_exchange_calendar_is_looked_up_unless_the_command_reads_no_market(tmp_path: Path):
    """The definitions and ``config check`` look an exchange's calendar up (and name it as the
    exchange_calendars package does); status and the registry's commands leave it as written."""
    assert load_config(_config(tmp_path, "market:\n  calendar: xnys\n")).config.market.calendar == "XNYS"
    assert _problems(_config(tmp_path, "market:\n  calendar: NOWHERE\n")) == [
        "gauntlet.yaml: market.calendar = 'NOWHERE': market.calendar = 'NOWHERE' is not a calendar: use '24/7' "
        "(crypto), '24/5' (FX) or an exchange code such as 'XNYS', 'XNAS', 'XLON' (python -c 'import "
        "exchange_calendars; print(exchange_calendars.get_calendar_names())' lists them)"
    ]
    unchecked = load_config(_config(tmp_path, "market:\n  calendar: NOWHERE\n"), look_up_calendars=False)
    assert unchecked.config.market.calendar == "NOWHERE"


def test_a_missing_file_or_an_invalid_policy_file_is_named(tmp_path: Path):
    assert _problems({"GAUNTLET_CONFIG": "nowhere.yaml"}) == [
        f"GAUNTLET_CONFIG = 'nowhere.yaml': no such file ({tmp_path / 'nowhere.yaml'})"
    ]
    (tmp_path / "policy.yaml").write_text("cge: {min_share_profitable: 2}\n")
    (problem,) = _problems(_config(tmp_path, "", GAUNTLET_GATE_POLICY="policy.yaml"))
    policy = tmp_path / "policy.yaml"
    assert problem.startswith(f"GAUNTLET_GATE_POLICY = '{policy}' (gates_file): gate policy is invalid")


def test_every_problem_is_one_line(tmp_path: Path):
    problems = _problems(_config(tmp_path, "sensor: {interval_seconds: 0}\npaper: {speed: fast}\nextra: 1\n"))
    where = [p.split(":")[1].strip() for p in problems]
    assert where == ["sensor.interval_seconds = 0", "paper.speed = 'fast'", "extra"]


def test_a_literal_secret_is_refused_without_being_repeated(tmp_path: Path):
    problems = _problems(
        _config(
            tmp_path,
            f"optuna:\n  storage: postgresql+psycopg2://gauntlet:{SECRET}@db/optuna\n"
            f"notifier:\n  webhook: https://hooks.example.com/{SECRET}\n",
        )
    )
    assert problems == [
        "gauntlet.yaml: optuna.storage = 'postgresql+psycopg2://gauntlet:***@db/optuna': a password in the URL "
        "is not allowed here: put the URL in an environment variable and write ${VAR}",
        "gauntlet.yaml: notifier.webhook = '***': a webhook URL may carry a token: put it in an environment "
        "variable and write ${VAR}",
    ]


#: Literal passwords the old pattern (`[^/@]+` up to the `@`) let through or printed: a `/`, an
#: `@` (URL-encoded, as SQLAlchemy requires), a `:`, and an unencoded `@` (whose tail SQLAlchemy
#: would parse as part of the host).
HARD_PASSWORDS = ["s3cr/et99", "p%40ssw0rd", "pa:ss:w0rd", "x7@q9@z3"]


@pytest.mark.parametrize("password", HARD_PASSWORDS)
@pytest.mark.parametrize(
    "key, text",
    [
        ("optuna.storage", "optuna:\n  storage: 'postgresql+psycopg2://gauntlet:{pw}@db:5432/optuna'\n"),
        ("deployment.database", "deployment:\n  database: 'postgresql+psycopg2://gauntlet:{pw}@db/gauntlet'\n"),
        ("optuna.storage", "optuna:\n  storage: 'postgresql+psycopg2://db/optuna?sslmode=require&password={pw}'\n"),
        # Any URL-valued key, also one that is a location rather than a database.
        ("artifacts.dir", "artifacts:\n  dir: 's3://AKIAEXAMPLE:{pw}@bucket/gauntlet'\n"),
    ],
)
def test_a_literal_password_is_found_by_parsing_the_url_and_never_printed(tmp_path, capsys, password, key, text):
    environ = _config(tmp_path, text.format(pw=password))
    problems = _problems(environ)
    assert len(problems) == 1 and problems[0].startswith(f"gauntlet.yaml: {key} = "), problems
    assert "password in the URL is not allowed here" in problems[0]
    secret_parts = {password, password.replace("%40", "@"), "q9@z3"}
    assert not any(part in problems[0] for part in secret_parts), problems[0]

    os.environ.update(environ)
    try:
        assert config_main(["check"]) == 1
        assert config_main(["check", "--json"]) == 1
    finally:
        os.environ.pop("GAUNTLET_CONFIG")
    out, err = capsys.readouterr()
    assert not any(part in out + err for part in secret_parts)


def test_masking_follows_sqlalchemys_parse():
    from resources.database import mask_url, redact, url_has_secret

    assert mask_url("postgresql+psycopg2://u:s3cr/et99@h:5432/db") == "postgresql+psycopg2://u:***@h:5432/db"
    assert mask_url("postgresql://u:p%40ss:w0rd@h/db") == "postgresql://u:***@h/db"
    assert mask_url("postgresql://:pw@h/db") == "postgresql://:***@h/db"  # no user name
    assert mask_url("postgresql://u:pa@ss@h/db") == "postgresql://u:***@h/db"  # an unencoded @
    assert mask_url("postgresql://h/db?sslmode=require&password=x") == "postgresql://h/db?sslmode=require&password=***"
    # Not parseable, so where the password ends is unknown: nothing of it is shown.
    assert "pw" not in mask_url("postgresql+psycopg2//u:pw@h/db")
    assert "pw" not in mask_url("postgresql://u:pw@h:notaport/db")
    assert mask_url("sqlite:////data/optuna.db") == "sqlite:////data/optuna.db"
    assert mask_url("journal:/data/optuna.log") == "journal:/data/optuna.log"
    assert url_has_secret("postgresql://u:s3cr/et99@h/db") and not url_has_secret("postgresql://u@h/db")
    assert redact("invalid dsn: password=s3cr/et99 host=h", "postgresql://u:s3cr/et99@h/db") == (
        "invalid dsn: password=*** host=h"
    )


def test_the_model_directory_is_checked_and_reaches_the_strategy_plugins_resource(tmp_path: Path):
    assert _problems(_config(tmp_path, "strategies: {model_dir: models}\n")) == [
        f"gauntlet.yaml: strategies.model_dir = '{tmp_path / 'models'}': no such directory"
    ]
    (tmp_path / "models").mkdir()
    resources = build_resources(load_config(_config(tmp_path, "strategies: {model_dir: models}\n")).config)
    assert resources["strategy_plugins"].model_dir == str(tmp_path / "models")
    # Left out, linear_model reads no artifact at all.
    assert build_resources(load_config(_config(tmp_path, "")).config)["strategy_plugins"].model_dir is None
    overridden = load_config(_config(tmp_path, "", GAUNTLET_MODEL_DIR="models")).config
    assert overridden.strategies.model_dir == str(tmp_path / "models")


def test_secret_references_become_env_vars_read_only_when_a_run_starts(tmp_path: Path):
    environ = _config(
        tmp_path,
        "optuna: {storage: '${OPTUNA_URL}'}\ndeployment: {database: '${DB_URL}'}\nnotifier: {webhook: '${HOOK}'}\n",
        OPTUNA_URL=f"postgresql+psycopg2://gauntlet:{SECRET}@db/optuna",
        DB_URL=f"postgresql+psycopg2://gauntlet:{SECRET}@db/gauntlet",
        HOOK=f"https://hooks.example.com/{SECRET}",
    )
    resources = build_resources(load_config(environ).config)
    values = {
        "OPTUNA_URL": resources["optuna_study"].storage_url,
        "DB_URL": resources["registry"].database_url,
        "HOOK": resources["notifier"].webhook.url,
    }
    assert all(isinstance(v, dg.EnvVar) and v.env_var_name == name for name, v in values.items())
    assert resources["paper_broker"].database_url.env_var_name == "DB_URL"
    assert SECRET not in repr(resources)


def test_config_check_prints_the_effective_configuration_with_secrets_masked(tmp_path, monkeypatch, capsys):
    environ = _config(
        tmp_path,
        "optuna: {storage: '${OPTUNA_URL}'}\ngates: {cge: {min_share_profitable: 0.5}}\nartifacts:\n",
        OPTUNA_URL=f"postgresql+psycopg2://gauntlet:{SECRET}@db/optuna",
        GAUNTLET_LIVE_CAPACITY="5",
    )
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert config_main(["check"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "storage: '*** (from ${OPTUNA_URL})'" in out
    assert "# overridden by: GAUNTLET_LIVE_CAPACITY (deployment.live_capacity)" in out
    assert f"dir: {tmp_path / '.gauntlet' / 'artifacts'}" in out  # an empty section keeps its defaults

    assert config_main(["check", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["config"]["gates"]["cge"]["min_share_profitable"] == 0.5
    assert payload["config"]["gates"]["cge"]["max_drawdown_multiple"] == 1.5
    assert payload["config"]["deployment"]["live_capacity"] == 5

    monkeypatch.setenv("GAUNTLET_SENSOR_INTERVAL", "soon")
    assert config_main(["check"]) == 1
    err = capsys.readouterr().err
    assert "GAUNTLET_SENSOR_INTERVAL = 'soon' (sensor.interval_seconds): expected an integer" in err
    assert config_main([]) == 2


def test_thresholds_come_from_the_file_or_replace_it_with_a_policy_file(tmp_path: Path):
    environ = _config(tmp_path, "gates:\n  cge: {min_share_profitable: 0.5}\n  paper: {required_grades: [A]}\n")
    policy = build_resources(load_config(environ).config)["gate_policy"].policy()
    assert policy.cge.min_share_profitable == 0.5 and policy.cge.max_drawdown_multiple == 1.5
    assert policy.paper.required_grades == {"A"}
    (tmp_path / "policy.yaml").write_text("backtest: {min_trades: 3}\n")
    replaced = load_config({**environ, "GAUNTLET_GATE_POLICY": "policy.yaml"}).config
    policy = build_resources(replaced)["gate_policy"].policy()
    assert policy.backtest.min_trades == 3 and policy.cge.min_share_profitable == 0.4


def test_one_threshold_of_one_phase_or_of_every_phase_is_one_line(tmp_path: Path):
    environ = _config(tmp_path, "gates:\n  backtest:\n    min_sharpe: 1.0\n    phases: {mature: {min_dsr: 0.3}}\n")
    policy = build_resources(load_config(environ).config)["gate_policy"].policy()
    phases = {phase.name: phase for phase in policy.backtest.phases}
    assert [p.min_sharpe for p in phases.values()] == [1.0] * 4  # every phase
    assert (phases["mature"].min_dsr, phases["late"].min_dsr) == (0.3, 0.10)  # one phase; the rest as they were
    assert phases["mature"].max_drawdown == GatePolicy().backtest.phases[-1].max_drawdown

    # In a launchpad override, a phase named merges into the policy file's phase of that name.
    resource = GatePolicyResource(path=str(PREVIOUS_SYSTEM_FILE), overrides={"backtest": {"phases": {"mid": {"max_loss": -0.3}}}})
    mid = {p.name: p for p in resource.policy().backtest.phases}["mid"]
    assert (mid.max_loss, mid.min_sharpe, mid.max_drawdown) == (-0.3, -0.5, 0.5)


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        ("backtest: {phases: {matur: {min_dsr: 0.3}}}", "backtest.phases has no phase 'matur'; did you mean 'mature'?"),
        ("backtest: {phases: {mature: {min_dssr: 0.3}}}", "min_dssr: unknown key; did you mean 'min_dsr'?"),
        ("cge: {min_share_profitabl: 0.5}", "cge.min_share_profitabl: unknown key; did you mean 'min_share_profitable'?"),
    ],
)
def test_a_mistyped_threshold_gets_a_did_you_mean(tmp_path: Path, gates: str, message: str):
    (problem,) = _problems(_config(tmp_path, f"gates:\n  {gates}\n"))
    assert message in problem, problem
    (tmp_path / "policy.yaml").write_text(gates + "\n")
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        GatePolicyResource(path=str(tmp_path / "policy.yaml")).policy()


def test_the_code_location_shows_the_configuration_error(tmp_path: Path):
    """What the UI shows for a broken gauntlet.yaml: `dagster definitions validate` loads it the same way."""
    (tmp_path / "dagster").mkdir()
    config = tmp_path / "gauntlet.yaml"
    config.write_text("sensor:\n  interval_seconds: soon\n")
    env = {n: v for n, v in os.environ.items() if not n.startswith("GAUNTLET_")}
    env.update(GAUNTLET_CONFIG=str(config), DAGSTER_HOME=str(tmp_path / "dagster"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{config}: sensor.interval_seconds = 'soon': expected an integer" in result.stdout + result.stderr


def _hourly(days: int = 40) -> pl.DataFrame:
    return generate_synthetic_market(seed=5, n_days=days)


#: Bad data, or windows that do not fit it, as `gauntlet config check` finds them: the message
#: names the key to change and a value, which is set before the check runs again.
DATA_CASES = {
    "weekend gaps on the default calendar": (
        lambda: fx_hourly(dt.datetime(2023, 10, 2, tzinfo=dt.UTC), dt.datetime(2023, 12, 1, tzinfo=dt.UTC)),
        {"windows": {"train_days": 30, "backtest_days": 15, "forward_days": 5}},
        r"rule missing_bars: .* set (market\.calendar) to ('24/5')",
    ),
    "a hole in 24/7 data": (
        lambda: _hourly().filter((pl.int_range(pl.len()) < 500) | (pl.int_range(pl.len()) >= 510)),
        {"windows": {"train_days": 20, "backtest_days": 10, "forward_days": 5}},
        r"row 501: rule missing_bars: .* (market\.gap_tolerance_bars) = 4 allows .*; (\d+) would accept every gap",
    ),
    "windows longer than the data": (
        _hourly,
        {"windows": {"train_days": 60, "backtest_days": 10, "forward_days": 5}},
        r"data covers 40\.00 days .* set (market\.windows\.train_days) to (\S+) or less",
    ),
    "a forward window of a few bars": (
        _hourly,
        {"windows": {"train_days": 20, "backtest_days": 5, "forward_days": 0.5}},
        r"the forward window holds 12 bar\(s\); it needs at least 30: .* (market\.windows\.forward_days) to (\S+) "
        r"or more",
    ),
    "several symbols and none chosen": (
        lambda: pl.concat([_hourly(), _hourly().with_columns(pl.lit("ETH").alias("symbol"))]),
        {"windows": {"train_days": 20, "backtest_days": 10, "forward_days": 5}},
        r"holds symbols \['ETH', 'SYN'\].* e\.g\. (market\.symbol): (ETH)",
    ),
}


def _check_market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, market: dict) -> dict:
    (tmp_path / "gauntlet.yaml").write_text(yaml.safe_dump({"market": market}))
    monkeypatch.setenv("GAUNTLET_CONFIG", str(tmp_path / "gauntlet.yaml"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code = config_main(["check", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == (0 if payload["valid"] else 1)
    return payload


@pytest.mark.parametrize("case", DATA_CASES)
def test_config_check_validates_the_data_and_names_a_key_and_a_value_that_works(tmp_path, monkeypatch, capsys, case):
    bars, market, expected = DATA_CASES[case]
    bars().write_csv(tmp_path / "prices.csv")
    market = {"file": "prices.csv", **market}
    payload = _check_market(tmp_path, monkeypatch, capsys, market)
    assert not payload["valid"]
    [problem] = payload["problems"]
    assert problem.startswith("market data: ")
    found = re.search(expected, problem)
    assert found, problem
    *parents, key = found.group(1).split(".")[1:]
    section = market
    for name in parents:
        section = section[name]
    section[key] = yaml.safe_load(found.group(2))

    payload = _check_market(tmp_path, monkeypatch, capsys, market)
    assert payload["valid"], payload
    [study] = payload["windows"]["studies"]
    assert study["study"] == "*" and all(window["bars"] >= 30 for window in study["windows"].values())


def test_config_check_names_the_file_and_column_a_file_lacks(tmp_path, monkeypatch, capsys):
    _hourly().drop("volume").write_csv(tmp_path / "prices.csv")
    payload = _check_market(tmp_path, monkeypatch, capsys, {"file": "prices.csv"})
    assert payload["problems"] == [
        f"market data: market: market file {tmp_path / 'prices.csv'}: rule missing_columns: missing ['volume']; found "
        "['timestamp', 'symbol', 'open', 'high', 'low', 'close']; required ['timestamp', 'open', 'high', 'low', "
        "'close', 'volume'] (plus an optional 'symbol')"
    ]


def test_windows_that_fit_nowhere_get_lengths_in_the_same_proportions(tmp_path, monkeypatch, capsys):
    _hourly().write_csv(tmp_path / "prices.csv")
    market = {"file": "prices.csv"}  # the default windows: 365 + 180 + 60 days
    [problem] = _check_market(tmp_path, monkeypatch, capsys, market)["problems"]
    found = re.search(r"set market\.windows\.train_days, backtest_days and forward_days to (\S+), (\S+) and (\S+) "
                      r"or less", problem)
    assert found, problem
    market["windows"] = dict(zip(("train_days", "backtest_days", "forward_days"), map(float, found.groups()),
                                 strict=True))
    assert _check_market(tmp_path, monkeypatch, capsys, market)["valid"]


def test_config_check_prints_the_windows_a_study_is_tuned_against(tmp_path, monkeypatch, capsys):
    (tmp_path / "gauntlet.yaml").write_text("optuna: {studies: [btc, eth]}\n")
    monkeypatch.setenv("GAUNTLET_CONFIG", str(tmp_path / "gauntlet.yaml"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert config_main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("# windows:") + 1
    assert out[start] == "# studies btc, eth, each judged on:"
    assert out[start + 1] == "# instrument default (SYN): synthetic market, seed 20260101, 605 days of hourly bars"
    assert out[start + 2].startswith("# market_data has not been built: dates the first build would pin now: "
                                     "train_start 2024-01-01T00:00:00+00:00, ")
    assert out[start + 3].split() == ["#", "train", "2024-01-01T00:00:00+00:00", "..", "2024-12-30T23:00:00+00:00",
                                      "8760", "bars"]
    assert out[-1] == ("# tune on bars up to 2024-12-30T23:00:00+00:00 (declare it in the trial's user attribute "
                       "'train_window_end')")
    assert yaml.safe_load("\n".join(out))["market"]["calendar"] == "24/7"  # still one YAML document
    assert config_main(["check", "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)["windows"]["studies"]
    assert [(s["study"], s["instrument"], s["symbol"]) for s in studies] == [("btc", "default", "SYN"), ("eth", "default", "SYN")]
    assert studies[0]["windows"] == studies[1]["windows"]


def test_relative_table_urls_and_instrument_files_follow_the_file_as_market_file_does(tmp_path: Path):
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "project" / "data" / "eurusd.csv").write_text("")
    environ = _config(
        tmp_path / "project",
        "market: {table: {url: 'sqlite:///bars.db', name: bars}}\n"
        "instruments:\n"
        "  eurusd: {file: data/eurusd.csv, studies: [fx*]}\n"
        "  btc: {table: {url: 'sqlite:///crypto/btc.db', name: btc_hourly}, studies: [btc*]}\n",
    )
    loaded = load_config(environ).config
    assert str(loaded.market.table.url) == f"sqlite:///{tmp_path / 'project' / 'bars.db'}"
    assert loaded.instruments["eurusd"].file == str(tmp_path / "project" / "data" / "eurusd.csv")
    assert str(loaded.instruments["btc"].table.url) == f"sqlite:///{tmp_path / 'project' / 'crypto' / 'btc.db'}"
