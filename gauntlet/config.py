"""``gauntlet.yaml``: Gauntlet's one configuration file, validated when the definitions load.

The file is the one ``GAUNTLET_CONFIG`` names; by default the repository's ``gauntlet.yaml``
(the demo configuration). An installed package without that file uses the built-in defaults,
which equal the demo file (a test keeps them equal). ``GAUNTLET_*`` environment variables
override single keys on top of the file (`ENV_OVERRIDES`), so scripts and tests change one
value without writing a file. Relative paths are relative to the file that holds them (to the
working directory for a variable).

Validation collects every problem and raises one `ConfigurationError`, one line per problem,
naming where the value came from (the file and key, or the variable), the value and what was
expected; an unknown key gets a "did you mean" suggestion. `build_definitions` raises it, so
the Dagster UI shows it as the code location's error.

Secrets never appear in the file. A location that may hold credentials (the Optuna storage,
Gauntlet's database, the alert webhook) is a literal without a password or a whole ``${VAR}``
reference; the resources read a reference through ``dg.EnvVar("VAR")`` when a run starts, and
loading checks only that ``VAR`` is set. ``gauntlet config check`` (`gauntlet.config_check`) runs the same
validation and prints the effective configuration with secrets masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from pipeline_assets.trial_keys import DEFAULT_SENSOR_INTERVAL_SECONDS, MAX_TRIALS_PER_RUN
from resources.database import mask_url, url_has_secret
from simulations.policy_file import load_gate_policy
from simulations.calendar_codes import calendar_code
from simulations.constants import (
    DEFAULT_BACKTEST_DAYS,
    DEFAULT_CALENDAR,
    DEFAULT_FEE_BPS,
    DEFAULT_FORWARD_DAYS,
    DEFAULT_GAP_TOLERANCE_BARS,
    DEFAULT_INSTRUMENT,
    DEFAULT_LIVE_CAPACITY,
    DEFAULT_MARKET_SEED,
    DEFAULT_PAPER_CLOCK_SPEED,
    DEFAULT_SLIPPAGE_BPS,
    DEFAULT_SYNTHETIC_DAYS,
    DEFAULT_TRAIN_DAYS,
    INSTRUMENT_NAME_PATTERN,
    TABLE_NAME_PATTERN,
)
from simulations.errors import ConfigurationError, TrialDataError
from simulations.gates import GatePolicy
from simulations.schema import unknown_key_message
from simulations.vocabulary import AtCapacity, ClockMode, GateAlerts, PaperMode, RankingMetric
from simulations.window_dates import WindowDates

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "GAUNTLET_CONFIG"
DEFAULT_CONFIG_PATH = REPO_ROOT / "gauntlet.yaml"
DEFAULT_HOME = ".gauntlet"


_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")


class Environment(StrEnum):
    """Where Gauntlet runs: it picks where the locations left out of the configuration are."""

    LOCAL = "local"
    PRODUCTION = "production"


def reference_name(value: str | None) -> str | None:
    """``VAR`` when ``value`` is exactly ``${VAR}``, else None."""
    match = _REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return match["name"] if match else None


def mask_secrets(value: str) -> str:
    """``value`` with any password in it replaced by ``***`` (URLs as SQLAlchemy parses them)."""
    return mask_url(value) if _looks_like_url(value) else value


def _looks_like_url(value: str) -> bool:
    # A scheme (``postgresql+psycopg2://``, ``s3://``) makes a value URL-valued, whatever its key.
    return "://" in value


_LITERAL_PASSWORD = "a password in the URL is not allowed here: put the URL in an environment variable and write ${VAR}"


def _whole_reference(value: str) -> str:
    if "${" in value and reference_name(value) is None:
        raise ValueError("a ${VAR} reference must be the whole value: put the whole URL or path in the variable")
    return value


def _no_literal_password(value: str) -> str:
    # Parsed as SQLAlchemy parses it: a pattern misses passwords holding "/", ":" or "@".
    if reference_name(_whole_reference(value)) is None and _looks_like_url(value) and url_has_secret(value):
        raise ValueError(_LITERAL_PASSWORD)
    return value


def _reference_only(value: str) -> str:
    if reference_name(value) is None:
        raise ValueError("a webhook URL may carry a token: put it in an environment variable and write ${VAR}")
    return value


#: A path, or a whole ``${VAR}`` read when a run starts.
Location = Annotated[str, AfterValidator(_whole_reference)]
#: A URL without a password, or a whole ``${VAR}`` holding one.
SecretUrl = Annotated[str, AfterValidator(_no_literal_password)]
#: Only a ``${VAR}`` reference.
SecretReference = Annotated[str, AfterValidator(_reference_only)]


def _empty_is_default(value: Any) -> Any:
    # A section whose keys are all commented out is `null` in YAML: it means "the defaults".
    return {} if value is None else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section(cls, data: Any) -> Any:
        return _empty_is_default(data)


class OptunaConfig(_Section):
    """Where the studies are and which to watch."""

    storage: SecretUrl | None = None
    studies: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


class SensorConfig(_Section):
    """How often the sensor looks for new trials and how many go into one run."""

    interval_seconds: int = Field(default=DEFAULT_SENSOR_INTERVAL_SECONDS, ge=1)
    max_trials_per_run: int = Field(default=MAX_TRIALS_PER_RUN, ge=1)


#: Validation context key: False skips looking an exchange's calendar up (`load_config`).
_LOOK_UP_CALENDARS = "look_up_calendars"


def _calendar_code(code: str, info: ValidationInfo) -> str:
    try:
        return calendar_code(code=code, look_up_exchanges=(info.context or {}).get(_LOOK_UP_CALENDARS, True))
    except ConfigurationError as exc:
        raise ValueError(exc.cause) from None


class SyntheticMarketConfig(_Section):
    """The seeded synthetic market, used when no file is given."""

    seed: int = DEFAULT_MARKET_SEED
    days: int = Field(default=DEFAULT_SYNTHETIC_DAYS, gt=0)


class WindowsConfig(_Section):
    """The train, backtest and forward windows: three start dates, or lengths in days pinned to
    dates (back from the end of the data) the first time the market is built."""

    train_days: float = Field(default=DEFAULT_TRAIN_DAYS, gt=0)
    backtest_days: float = Field(default=DEFAULT_BACKTEST_DAYS, gt=0)
    forward_days: float = Field(default=DEFAULT_FORWARD_DAYS, gt=0)
    train_start: AwareDatetime | None = None
    backtest_start: AwareDatetime | None = None
    forward_start: AwareDatetime | None = None

    @model_validator(mode="after")
    def _all_dates_or_none(self) -> WindowsConfig:
        starts = {
            "train_start": self.train_start,
            "backtest_start": self.backtest_start,
            "forward_start": self.forward_start,
        }
        given = [name for name, value in starts.items() if value is not None]
        if given and len(given) < len(starts):
            raise ValueError(
                f"give all three window starts or none; missing {[n for n in starts if n not in given]} "
                "(e.g. train_start: 2023-01-01T00:00:00Z, backtest_start: 2024-01-01T00:00:00Z, "
                "forward_start: 2024-07-01T00:00:00Z)"
            )
        if given:
            try:
                WindowDates(**starts)
            except ConfigurationError as exc:
                raise ValueError(exc.cause) from None
        return self

    @property
    def dates(self) -> WindowDates | None:
        """The configured start dates, when given as dates."""
        if self.train_start is None:
            return None
        return WindowDates(self.train_start, self.backtest_start, self.forward_start)

    @property
    def total_days(self) -> float:
        return self.train_days + self.backtest_days + self.forward_days


class TableConfig(_Section):
    """A database table of bars: the database's URL (secrets through ``${VAR}``) and the table."""

    url: SecretUrl
    name: str = Field(pattern=TABLE_NAME_PATTERN)


class MarketConfig(_Section):
    """Market data every trial is evaluated on, and the trading costs: a file or directory of
    files, a database table, or else the seeded synthetic market."""

    file: str | None = None
    table: TableConfig | None = None
    symbol: str | None = None
    calendar: Annotated[str, AfterValidator(_calendar_code)] = DEFAULT_CALENDAR
    gap_tolerance_bars: float | None = Field(default=DEFAULT_GAP_TOLERANCE_BARS, ge=1)
    synthetic: SyntheticMarketConfig = SyntheticMarketConfig()
    windows: WindowsConfig = WindowsConfig()
    fee_bps: float = Field(default=DEFAULT_FEE_BPS, ge=0)
    slippage_bps: float = Field(default=DEFAULT_SLIPPAGE_BPS, ge=0)

    @model_validator(mode="after")
    def _windows_fit_the_synthetic_market(self) -> MarketConfig:
        if self.file is not None and self.table is not None:
            raise ValueError("give file or table, not both: the bars come from one source")
        # A file's or table's length is known only when it is read (market_data validates it then).
        if self.file is None and self.table is None and self.windows.dates is None and self.windows.total_days > self.synthetic.days:
            w = self.windows
            raise ValueError(
                f"the windows need {w.total_days:g} days (train {w.train_days:g} + backtest "
                f"{w.backtest_days:g} + forward {w.forward_days:g}) but synthetic.days is {self.synthetic.days}"
            )
        return self


InstrumentName = Annotated[str, Field(pattern=INSTRUMENT_NAME_PATTERN)]


class InstrumentConfig(MarketConfig):
    """Another instrument, as ``market`` describes the default one, and the studies that trade it."""

    studies: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


class StrategiesConfig(_Section):
    """Users' strategies: import paths, the ``gauntlet.strategies`` entry points, and the one
    directory `linear_model` may read its weights from (left out: it reads none)."""

    plugins: list[str] = Field(default_factory=list)
    entry_points: bool = True
    model_dir: Location | None = None


class PaperConfig(_Section):
    """How paper sessions meet the market: forward from the newest bar, or a labelled holdout replay at its clock."""

    mode: PaperMode = "forward"
    clock: ClockMode = "replay"
    speed: float = Field(default=DEFAULT_PAPER_CLOCK_SPEED, gt=0)

    @model_validator(mode="after")
    def _clock_of_a_holdout(self) -> PaperConfig:
        if self.mode == "forward" and self.model_fields_set & {"clock", "speed"} and self.clock != "replay":
            raise ValueError(
                "paper.clock paces a holdout replay; a forward session trades bars as they arrive: "
                "leave clock out, or set mode: holdout"
            )
        return self


class DeploymentConfig(_Section):
    """Gauntlet's database (registry and paper sessions) and how passing trials are promoted."""

    database: SecretUrl | None = None
    live_capacity: int = Field(default=DEFAULT_LIVE_CAPACITY, ge=1)
    auto_promote: bool = True
    at_capacity: AtCapacity = "keep_incumbent"
    ranking_metric: RankingMetric = "sharpe"
    dry_run: bool = False
    paper_modes: list[PaperMode] = Field(default_factory=lambda: ["forward"], min_length=1)


class ArtifactsConfig(_Section):
    """Where per-trial artifacts and the shared assets are written."""

    dir: Location | None = None


class NotifierConfig(_Section):
    """Where alerts go, and how gate rejections are alerted (`GateAlerts`)."""

    log: Location | None = None
    webhook: SecretReference | None = None
    desktop: bool = False
    gate_alerts: GateAlerts = "digest"


class GauntletConfig(_Section):
    """The whole of ``gauntlet.yaml``."""

    environment: Environment = Environment.LOCAL
    home: Path = Path(DEFAULT_HOME)
    optuna: OptunaConfig = OptunaConfig()
    sensor: SensorConfig = SensorConfig()
    market: MarketConfig = MarketConfig()
    instruments: dict[InstrumentName, InstrumentConfig] = Field(default_factory=dict)
    strategies: StrategiesConfig = StrategiesConfig()
    gates: Annotated[GatePolicy, BeforeValidator(_empty_is_default)] = GatePolicy()
    gates_file: str | None = None
    paper: PaperConfig = PaperConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    artifacts: ArtifactsConfig = ArtifactsConfig()
    notifier: NotifierConfig = NotifierConfig()

    @model_validator(mode="after")
    def _one_gate_policy(self) -> GauntletConfig:
        if self.gates_file is not None and self.gates.model_fields_set:
            raise ValueError("set either gates (thresholds inline) or gates_file (a GatePolicy YAML file), not both")
        if DEFAULT_INSTRUMENT in self.instruments:
            raise ValueError(
                f"instruments.{DEFAULT_INSTRUMENT}: that name is the instrument `market` describes; name it otherwise"
            )
        return self

    def gate_overrides(self) -> dict[str, Any]:
        """The thresholds set inline under ``gates``, as overrides of ``gates_file`` (`load_gate_policy`)."""
        return self.gates.model_dump(mode="json", exclude_unset=True)

    def markets(self) -> dict[str, MarketConfig]:
        """Every instrument's market by name: `DEFAULT_INSTRUMENT` (``market``), then ``instruments``."""
        return {DEFAULT_INSTRUMENT: self.market, **self.instruments}

    def market_key(self, instrument: str) -> str:
        """The dotted key of ``instrument``'s section, for messages that name the key to change."""
        return "market" if instrument == DEFAULT_INSTRUMENT else f"instruments.{instrument}"


#: Locations left out of the configuration: under ``home`` locally; in production the variable
#: of the same name (resolved through dg.EnvVar when a run starts), as before there was a file.
_LOCAL_LOCATIONS = {
    "optuna.storage": "sqlite:///{home}/optuna.db",
    "deployment.database": "sqlite:///{home}/gauntlet.db",
    "artifacts.dir": "{home}/artifacts",
    "notifier.log": "{home}/alerts.jsonl",
}
_PRODUCTION_LOCATIONS = {
    "optuna.storage": "GAUNTLET_OPTUNA_STORAGE",
    "deployment.database": "GAUNTLET_DATABASE_URL",
    "artifacts.dir": "GAUNTLET_ARTIFACT_DIR",
    "notifier.log": "GAUNTLET_ALERT_LOG",
}
#: Every key that may be a ``${VAR}`` reference.
REFERENCE_KEYS = (*_LOCAL_LOCATIONS, "notifier.webhook", "strategies.model_dir")
#: References whose values are secrets: `config check` never prints them.
SECRET_KEYS = ("optuna.storage", "deployment.database", "notifier.webhook")
_PATH_KEYS = frozenset({"home", "market.file", "gates_file", "artifacts.dir", "notifier.log", "strategies.model_dir"})
_URL_KEYS = frozenset({"optuna.storage", "deployment.database", "market.table.url"})
#: Keys of every instrument's section that are made absolute as the same key of `market` is.
_INSTRUMENT_LOCATION_KEYS = ("file", "table.url")
_FILE_URL_PREFIXES = ("sqlite:///", "journal:")


def default_location(key: str, environment: Environment, home: Path) -> str:
    """Where location ``key`` is when the configuration leaves it out."""
    if environment == Environment.PRODUCTION:
        return "${" + _PRODUCTION_LOCATIONS[key] + "}"
    return _LOCAL_LOCATIONS[key].format(home=home)


def location(config: GauntletConfig, key: str) -> str:
    """Location ``key`` (e.g. ``optuna.storage``) as it applies: configured, else the environment's default.

    A URL, a path or a ``${VAR}`` reference (read through ``dg.EnvVar`` when a run starts).
    """
    section, field = key.split(".")
    return getattr(getattr(config, section), field) or default_location(key, config.environment, config.home)


def resolved_location(config: GauntletConfig, key: str, environ: Mapping[str, str]) -> str:
    """Location ``key`` now: a ``${VAR}`` reference replaced by the variable's value, for a
    command that opens it itself (resources read the variable when a run starts).

    Raises
    ------
    ConfigurationError
        If the reference names a variable that is not set.
    """
    where = location(config, key)
    name = reference_name(where)
    if name is None:
        return where
    value = environ.get(name)
    if not value:
        raise ConfigurationError(
            f"{key} is ${{{name}}} but {name} is not set: export it, or set {key} in the configuration"
        )
    return value


class Override(NamedTuple):
    """An environment variable that replaces one key of the file."""

    variable: str
    key: str
    #: ``value`` (the text, validated like the file's), ``path`` (relative to the working
    #: directory), ``list`` (comma-separated) or ``reference`` (the key becomes ``${variable}``:
    #: the value may be a secret and is read only when a run starts).
    kind: Literal["value", "path", "list", "reference"]


ENV_OVERRIDES: tuple[Override, ...] = (
    Override("GAUNTLET_ENV", "environment", "value"),
    Override("GAUNTLET_HOME", "home", "path"),
    Override("GAUNTLET_OPTUNA_STORAGE", "optuna.storage", "reference"),
    Override("GAUNTLET_STUDIES", "optuna.studies", "list"),
    Override("GAUNTLET_SENSOR_INTERVAL", "sensor.interval_seconds", "value"),
    Override("GAUNTLET_MAX_TRIALS_PER_RUN", "sensor.max_trials_per_run", "value"),
    Override("GAUNTLET_MARKET_FILE", "market.file", "path"),
    Override("GAUNTLET_STRATEGY_PLUGINS", "strategies.plugins", "list"),
    Override("GAUNTLET_MODEL_DIR", "strategies.model_dir", "path"),
    Override("GAUNTLET_GATE_POLICY", "gates_file", "path"),
    Override("GAUNTLET_PAPER_MODE", "paper.mode", "value"),
    Override("GAUNTLET_PAPER_CLOCK", "paper.clock", "value"),
    Override("GAUNTLET_PAPER_SPEED", "paper.speed", "value"),
    Override("GAUNTLET_DATABASE_URL", "deployment.database", "reference"),
    Override("GAUNTLET_LIVE_CAPACITY", "deployment.live_capacity", "value"),
    Override("GAUNTLET_DRY_RUN", "deployment.dry_run", "value"),
    Override("GAUNTLET_DEPLOY_PAPER_MODES", "deployment.paper_modes", "list"),
    Override("GAUNTLET_ARTIFACT_DIR", "artifacts.dir", "reference"),
    Override("GAUNTLET_ALERT_LOG", "notifier.log", "reference"),
    Override("GAUNTLET_ALERT_WEBHOOK", "notifier.webhook", "reference"),
    Override("GAUNTLET_DESKTOP_ALERTS", "notifier.desktop", "value"),
)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where its values came from."""

    config: GauntletConfig
    #: The file read; None when the built-in defaults were used.
    path: Path | None
    #: Dotted key -> the environment variable that set it.
    overrides: dict[str, str]
    #: Locations the configuration left out, filled with the environment's default.
    defaulted: frozenset[str]


# --------------------------------------------------------------------------------- reading
class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML with every key at most once per mapping: plain YAML keeps the last silently."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key_node.value)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def config_path(environ: Mapping[str, str]) -> Path | None:
    """The file to read: ``GAUNTLET_CONFIG``, else the repository's, else None (built-in defaults)."""
    named = environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser().resolve()
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV} = {named!r}: no such file ({path})")
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def _read(path: Path, source: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot be read: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(f"{source}: not valid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        sections = ", ".join(GauntletConfig.model_fields)
        raise ConfigurationError(f"{source}: expected a mapping of sections ({sections}), got a {type(data).__name__}")
    return data


def _get(data: Mapping[str, Any], key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        child = data.setdefault(part, {})
        if not isinstance(child, dict):
            # The section itself is malformed (e.g. `sensor: 5`); validation reports it.
            return
        data = child
    data[last] = value


def _absolute(key: str, value: Any, base: Path) -> Any:
    """A relative path (or SQLite / journal URL) made absolute against ``base``."""
    if not isinstance(value, str) or "${" in value:
        return value
    if key in _PATH_KEYS and not _looks_like_url(value):
        # A URL is kept as written: made a path, its "://" and any password check would be lost.
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else base / path)
    if key in _URL_KEYS:
        for prefix in _FILE_URL_PREFIXES:
            rest = value[len(prefix) :]
            if value.startswith(prefix) and rest and not rest.startswith("/") and rest != ":memory:":
                return prefix + str(base / Path(rest).expanduser())
    return value


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for override in ENV_OVERRIDES:
        text = environ.get(override.variable)
        if not text:
            continue
        if override.kind == "list":
            value: Any = [item.strip() for item in text.split(",") if item.strip()]
        elif override.kind == "reference":
            value = "${" + override.variable + "}"
        elif override.kind == "path":
            value = _absolute(override.key, text, Path.cwd())
        else:
            value = text
        if override.key == "gates_file":
            # A policy file replaces the file's inline thresholds as a whole: mixing the two
            # would make it unclear which threshold wins.
            raw.pop("gates", None)
        _set(raw, override.key, value)
        overrides[override.key] = override.variable
    return overrides


# ------------------------------------------------------------------------------ describing
_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "path_type": "a path",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "frozen_set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", "≥"),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "≤"),
}
#: Longest value quoted in a message: a whole path fits; a pasted blob does not.
_MAX_SHOWN = 300


def _dotted(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(key: str, value: Any) -> str:
    """A value as it may appear in a message: passwords masked, a webhook never shown."""
    if key.startswith("notifier.webhook") and reference_name(value) is None:
        return "'***'"
    text = repr(mask_secrets(value) if isinstance(value, str) else value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _origin(key: str, overrides: Mapping[str, str]) -> str | None:
    for overridden, variable in overrides.items():
        if key == overridden or key.startswith((f"{overridden}.", f"{overridden}[")):
            return variable
    return None


def _where(key: str, value: Any, source: str, overrides: Mapping[str, str], *, show_value: bool = True) -> str:
    """``<file>: key = value`` or ``VARIABLE = value (key)``."""
    variable = _origin(key, overrides)
    shown = f" = {_shown(key, value)}" if show_value else ""
    if variable:
        return f"{variable}{shown} ({key})"
    return f"{source}: {key}{shown}" if key else source


def _expectation(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx['expected']}"
    if kind in _BOUNDS:
        name, symbol = _BOUNDS[kind]
        limit = ctx[name]
        return f"expected a value {symbol} {f'{limit:g}' if isinstance(limit, float) else limit}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return "required, but missing"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


def _describe(error: Mapping[str, Any], source: str, overrides: Mapping[str, str]) -> str:
    loc = error["loc"]
    key = _dotted(loc)
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        return f"{_where(key, value, source, overrides, show_value=False)}: {unknown_key_message(GauntletConfig, loc)}"
    scalar = value is None or isinstance(value, (str, int, float, bool))
    show = scalar and error["type"] != "missing"
    return f"{_where(key, value, source, overrides, show_value=show)}: {_expectation(error)}"


# ------------------------------------------------------------------------------ validating
def _with_default_locations(config: GauntletConfig) -> tuple[GauntletConfig, frozenset[str]]:
    updates: dict[str, dict[str, str]] = {}
    for key in _LOCAL_LOCATIONS:
        section, field = key.split(".")
        if getattr(getattr(config, section), field) is None:
            updates.setdefault(section, {})[field] = location(config, key)
    sections = {name: getattr(config, name).model_copy(update=fields) for name, fields in updates.items()}
    defaulted = frozenset(f"{name}.{field}" for name, fields in updates.items() for field in fields)
    return config.model_copy(update=sections), defaulted


def _plugin_problem(import_path: str) -> str | None:
    try:
        # Imported here: the strategies need numpy, and the commands that only read skip plug-ins.
        from simulations.strategies import load_strategy_from_import_path

        load_strategy_from_import_path(import_path=import_path)
    except TrialDataError as exc:
        cause = exc.cause.removeprefix(f"strategy import path {import_path!r} ").removeprefix("failed: ")
        hint = " (is the module's directory on PYTHONPATH?)" if isinstance(exc.__cause__, ImportError) else ""
        return f"cannot be loaded: {cause}{hint}"
    return None


def _string_values(data: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, value) of every string in ``data``, nested mappings and lists included."""
    if isinstance(data, str):
        yield key, data
    elif isinstance(data, Mapping):
        for name, value in data.items():
            yield from _string_values(value, f"{key}.{name}" if key else str(name))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _string_values(value, f"{key}[{index}]")


def _problems(loaded: LoadedConfig, source: str, environ: Mapping[str, str], *, import_plugins: bool) -> list[str]:
    """What the schema cannot see: unset variables, missing files, unloadable plug-ins."""
    config, overrides = loaded.config, loaded.overrides
    dumped = config.model_dump(mode="json")
    problems = [
        f"{_where(key, value, source, overrides)}: {_LITERAL_PASSWORD}"
        for key, value in _string_values(dumped)
        if _looks_like_url(value) and url_has_secret(value)
    ]
    for key in REFERENCE_KEYS:
        value = _get(dumped, key)
        name = reference_name(value)
        if name and not environ.get(name):
            where = (
                f"{source}: {key} = {value!r} (the production default)"
                if key in loaded.defaulted
                else _where(key, value, source, overrides)
            )
            state = "is empty" if name in environ else "is not set"
            problems.append(f"{where}: environment variable {name} {state}")
    model_dir = config.strategies.model_dir
    if model_dir and reference_name(model_dir) is None and not Path(model_dir).is_dir():
        problems.append(f"{_where('strategies.model_dir', model_dir, source, overrides)}: no such directory")
    for name, market in config.markets().items():
        if market.file and not Path(market.file).exists():
            key = f"{config.market_key(name)}.file"
            problems.append(f"{_where(key, market.file, source, overrides)}: no such file or directory")
        variable = reference_name(market.table.url) if market.table else None
        if variable and not environ.get(variable):
            key = f"{config.market_key(name)}.table.url"
            problems.append(f"{_where(key, market.table.url, source, overrides)}: environment variable {variable} is not set")
    for index, import_path in enumerate(config.strategies.plugins if import_plugins else []):
        problem = _plugin_problem(import_path)
        if problem:
            problems.append(f"{_where(f'strategies.plugins[{index}]', import_path, source, overrides)}: {problem}")
    if config.gates_file:
        try:
            load_gate_policy(path=config.gates_file, overrides={})
        except ConfigurationError as exc:
            problems.append(f"{_where('gates_file', config.gates_file, source, overrides)}: {exc.cause}")
    return problems


def load_config(
    environ: Mapping[str, str] | None = None, *, import_plugins: bool = True, look_up_calendars: bool = True
) -> LoadedConfig:
    """The validated configuration: the file, then the ``GAUNTLET_*`` overrides.

    ``import_plugins=False`` checks everything but whether the strategy plug-ins import: the
    operator's commands (stop, resume, live, status, health) run no strategy, and the kill
    switch must work while a plug-in is broken. Importing a plug-in runs its code.
    ``look_up_calendars=False`` leaves an exchange's calendar code as written, unchecked, for
    the commands that read no market (status and the registry's): looking it up imports pandas
    and exchange_calendars, most of a second; the definitions and ``config check`` look it up.

    Raises
    ------
    ConfigurationError
        One line per problem, each naming the key (or variable), the value and the expectation.
    """
    env = os.environ if environ is None else environ
    path = config_path(env)
    source = display_path(path) if path else "built-in defaults"
    raw = _read(path, source) if path else {}
    raw.setdefault("home", DEFAULT_HOME)
    base = path.parent if path else REPO_ROOT
    located = [(key, key) for key in (*_PATH_KEYS, *_URL_KEYS)]
    instruments = raw.get("instruments")
    for name in instruments if isinstance(instruments, dict) else ():
        located += [(f"instruments.{name}.{key}", f"market.{key}") for key in _INSTRUMENT_LOCATION_KEYS]
    for key, like in located:
        if _get(raw, key) is not None:
            _set(raw, key, _absolute(like, _get(raw, key), base))
    overrides = _apply_overrides(raw, env)
    try:
        config = GauntletConfig.model_validate(raw, context={_LOOK_UP_CALENDARS: look_up_calendars})
    except ValidationError as exc:
        # The lines say everything pydantic's error does, in the file's own terms; chaining it
        # would repeat it, less readably, wherever the error is shown (the UI among others).
        raise ConfigurationError("\n".join(_describe(e, source, overrides) for e in exc.errors())) from None
    config, defaulted = _with_default_locations(config)
    loaded = LoadedConfig(config=config, path=path, overrides=overrides, defaulted=defaulted)
    problems = _problems(loaded, source, env, import_plugins=import_plugins)
    if problems:
        raise ConfigurationError("\n".join(problems))
    return loaded


# --------------------------------------------------------------------------- as it applies
def effective_config(loaded: LoadedConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    """The configuration as it applies, as plain data: secrets masked, references explained."""
    data = loaded.config.model_dump(mode="json")
    if loaded.config.gates_file:
        data["gates"] = load_gate_policy(path=loaded.config.gates_file, overrides={}).model_dump(mode="json")
    # A set of grades dumps in arbitrary order; sorted, the output is the same on every call.
    data["gates"]["paper"]["required_grades"] = sorted(data["gates"]["paper"]["required_grades"])
    for key in REFERENCE_KEYS:
        name = reference_name(_get(data, key))
        if name is None:
            continue
        # Secrets are never printed; other referenced values (directories) are shown resolved.
        shown = "***" if key in SECRET_KEYS else environ.get(name, "")
        _set(data, key, f"{shown} (from ${{{name}}})")
    return data
