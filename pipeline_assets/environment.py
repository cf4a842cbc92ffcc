"""The one place where Gauntlet's resources are built, from `Settings`.

`Settings` are the effective, non-secret settings: ``gauntlet.yaml`` with the ``GAUNTLET_*``
overrides applied (`pipeline_assets.config`), read once when the definitions load. The
environment (``local`` or ``production``) only decides where the locations the configuration
leaves out are: under ``home`` locally, from ``GAUNTLET_OPTUNA_STORAGE``-style variables in
production. A location written as ``${VAR}`` is passed to its resource as ``dg.EnvVar("VAR")``,
resolved when a run starts, never at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field

from pipeline_assets.config import REPO_ROOT, Environment, GauntletConfig, default_location, load_config, reference_name
from resources.artifacts import LocalArtifactStoreResource
from resources.deployment_policy import DeploymentPolicyResource
from resources.gate_policy import GatePolicyResource
from resources.io_manager import ArtifactIOManager
from resources.market_data import FileMarketDataResource, SyntheticMarketDataResource
from resources.notifier import (
    CompositeNotifierResource,
    DesktopNotifierResource,
    GateAlerts,
    JsonLinesNotifierResource,
    WebhookNotifierResource,
)
from resources.optuna_study import OptunaStudyResource
from resources.paper_broker import ClockMode, LocalPaperBrokerResource
from resources.registry import SqlDeploymentRegistryResource
from resources.strategy_plugins import StrategyPluginsResource
from simulations.deployment import AtCapacity, RankingMetric

__all__ = ["REPO_ROOT", "Environment", "Settings", "build_resources"]

#: The configuration's defaults, so that `Settings(...)` built directly (tests, benchmarks)
#: means what an empty gauntlet.yaml means.
_DEFAULT = GauntletConfig()


class Settings(BaseModel):
    """Non-secret settings, read once when definitions load (`from_environ`).

    A location left as None takes the environment's default (see `default_location`); a
    location may be ``${VAR}``, read through ``dg.EnvVar`` when a run starts.
    """

    environment: Environment = Environment.LOCAL
    home: Path = Field(default=REPO_ROOT / ".gauntlet")
    optuna_storage: str | None = None
    studies: list[str] = Field(default_factory=list)
    sensor_interval_seconds: int = Field(default=_DEFAULT.sensor.interval_seconds, ge=1)
    max_trials_per_run: int = Field(default=_DEFAULT.sensor.max_trials_per_run, ge=1)
    market_file: str | None = None
    market_symbol: str | None = None
    market_seed: int = _DEFAULT.market.synthetic.seed
    market_days: int = Field(default=_DEFAULT.market.synthetic.days, gt=0)
    train_days: float = Field(default=_DEFAULT.market.windows.train_days, gt=0)
    backtest_days: float = Field(default=_DEFAULT.market.windows.backtest_days, gt=0)
    forward_days: float = Field(default=_DEFAULT.market.windows.forward_days, gt=0)
    fee_bps: float = Field(default=_DEFAULT.market.fee_bps, ge=0)
    slippage_bps: float = Field(default=_DEFAULT.market.slippage_bps, ge=0)
    gap_tolerance_bars: float | None = Field(default=_DEFAULT.market.gap_tolerance_bars, ge=1)
    calendar: str = _DEFAULT.market.calendar
    #: Window starts (ISO timestamps) when the configuration gives dates instead of days.
    window_starts: dict[str, str] = Field(default_factory=dict)
    gate_policy_file: str | None = None
    #: Thresholds changed inline, in the shape of GatePolicy (only the keys set).
    gate_policy: dict[str, Any] = Field(default_factory=dict)
    strategy_plugins: list[str] = Field(default_factory=list)
    strategy_entry_points: bool = _DEFAULT.strategies.entry_points
    #: The directory `linear_model` reads its weights from, or a ``${VAR}``; None: it reads none.
    model_dir: str | None = None
    paper_clock: ClockMode = _DEFAULT.paper.clock
    paper_speed: float = Field(default=_DEFAULT.paper.speed, gt=0)
    database: str | None = None
    live_capacity: int = Field(default=_DEFAULT.deployment.live_capacity, ge=1)
    auto_promote: bool = _DEFAULT.deployment.auto_promote
    at_capacity: AtCapacity = _DEFAULT.deployment.at_capacity
    ranking_metric: RankingMetric = _DEFAULT.deployment.ranking_metric
    dry_run: bool = _DEFAULT.deployment.dry_run
    artifact_dir: str | None = None
    alert_log: str | None = None
    #: A ``${VAR}`` reference to the webhook URL (it may hold a token); None: no webhook.
    alert_webhook: str | None = None
    desktop_alerts: bool = _DEFAULT.notifier.desktop
    gate_alerts: GateAlerts = _DEFAULT.notifier.gate_alerts

    @classmethod
    def from_config(cls, config: GauntletConfig) -> Settings:
        """The settings a validated configuration stands for."""
        market, deployment, notifier = config.market, config.deployment, config.notifier
        return cls(
            environment=config.environment,
            home=config.home,
            optuna_storage=config.optuna.storage,
            studies=config.optuna.studies,
            sensor_interval_seconds=config.sensor.interval_seconds,
            max_trials_per_run=config.sensor.max_trials_per_run,
            market_file=market.file,
            market_symbol=market.symbol,
            market_seed=market.synthetic.seed,
            market_days=market.synthetic.days,
            train_days=market.windows.train_days,
            backtest_days=market.windows.backtest_days,
            forward_days=market.windows.forward_days,
            fee_bps=market.fee_bps,
            slippage_bps=market.slippage_bps,
            gap_tolerance_bars=market.gap_tolerance_bars,
            calendar=market.calendar,
            window_starts=market.windows.dates.as_dict() if market.windows.dates else {},
            gate_policy_file=config.gates_file,
            gate_policy=config.gates.model_dump(mode="json", exclude_unset=True),
            strategy_plugins=config.strategies.plugins,
            strategy_entry_points=config.strategies.entry_points,
            model_dir=config.strategies.model_dir,
            paper_clock=config.paper.clock,
            paper_speed=config.paper.speed,
            database=deployment.database,
            live_capacity=deployment.live_capacity,
            auto_promote=deployment.auto_promote,
            at_capacity=deployment.at_capacity,
            ranking_metric=deployment.ranking_metric,
            dry_run=deployment.dry_run,
            artifact_dir=config.artifacts.dir,
            alert_log=notifier.log,
            alert_webhook=notifier.webhook,
            desktop_alerts=notifier.desktop,
            gate_alerts=notifier.gate_alerts,
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, import_plugins: bool = True) -> Settings:
        """Settings from ``GAUNTLET_CONFIG``'s file with the ``GAUNTLET_*`` overrides.

        Raises `ConfigurationError` (one line per problem) when the configuration is invalid;
        ``import_plugins=False`` leaves the strategy plug-ins unimported (see `load_config`).
        """
        return cls.from_config(load_config(environ, import_plugins=import_plugins).config)

    def _location(self, key: str, configured: str | None) -> str:
        return configured or default_location(key, self.environment, self.home)

    @property
    def optuna_url(self) -> str:
        """The Optuna storage URL, or a ``${VAR}`` reference to it."""
        return self._location("optuna.storage", self.optuna_storage)

    @property
    def database_url(self) -> str:
        """Gauntlet's own tables (registry, paper sessions): a URL or a ``${VAR}`` reference."""
        return self._location("deployment.database", self.database)

    @property
    def artifacts_location(self) -> str:
        """The artifact directory, or a ``${VAR}`` reference to it."""
        return self._location("artifacts.dir", self.artifact_dir)

    @property
    def alert_log_location(self) -> str:
        """The JSON-lines alert log, or a ``${VAR}`` reference to it."""
        return self._location("notifier.log", self.alert_log)


def _value(location: str) -> str | dg.EnvVar:
    """A location as a resource value: a ``${VAR}`` reference is read when a run starts."""
    name = reference_name(location)
    return dg.EnvVar(name) if name else location


def _shared_dir(artifacts: str) -> str | dg.EnvVar:
    name = reference_name(artifacts)
    # A variable's value is known only when a run starts, so no subdirectory can be appended:
    # the shared assets then live in the artifact directory itself.
    return dg.EnvVar(name) if name else str(Path(artifacts) / "shared")


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource Gauntlet's definitions use, for ``settings``."""
    costs_and_windows = {
        "train_days": settings.train_days,
        "backtest_days": settings.backtest_days,
        "forward_days": settings.forward_days,
        "symbol": settings.market_symbol,
        "fee_bps": settings.fee_bps,
        "slippage_bps": settings.slippage_bps,
        "calendar": settings.calendar,
        **settings.window_starts,
    }
    market = (
        FileMarketDataResource(
            path=settings.market_file, gap_tolerance_bars=settings.gap_tolerance_bars, **costs_and_windows
        )
        if settings.market_file
        else SyntheticMarketDataResource(seed=settings.market_seed, n_days=settings.market_days, **costs_and_windows)
    )
    database = _value(settings.database_url)
    log = _value(settings.alert_log_location)
    return {
        "optuna_study": OptunaStudyResource(storage_url=_value(settings.optuna_url), studies=settings.studies),
        "artifacts": LocalArtifactStoreResource(base_dir=_value(settings.artifacts_location)),
        "shared_io_manager": ArtifactIOManager(base_dir=_shared_dir(settings.artifacts_location)),
        "market": market,
        "gate_policy": GatePolicyResource(path=settings.gate_policy_file, overrides=settings.gate_policy),
        "paper_broker": LocalPaperBrokerResource(
            database_url=database, clock=settings.paper_clock, speed=settings.paper_speed, market=market
        ),
        "registry": SqlDeploymentRegistryResource(database_url=database, live_capacity=settings.live_capacity),
        "deployment_policy": DeploymentPolicyResource(
            auto_promote=settings.auto_promote,
            at_capacity=settings.at_capacity,
            ranking_metric=settings.ranking_metric,
            dry_run=settings.dry_run,
        ),
        "strategy_plugins": StrategyPluginsResource(
            import_paths=settings.strategy_plugins,
            use_entry_points=settings.strategy_entry_points,
            model_dir=_value(settings.model_dir) if settings.model_dir else None,
        ),
        "notifier": CompositeNotifierResource(
            gate_alerts=settings.gate_alerts,
            log=JsonLinesNotifierResource(path=log),
            webhook=(
                WebhookNotifierResource(url=_value(settings.alert_webhook), ledger_path=log)
                if settings.alert_webhook
                else None
            ),
            desktop=DesktopNotifierResource(ledger_path=log) if settings.desktop_alerts else None,
        ),
    }
