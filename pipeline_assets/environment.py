"""The one place where the environment (local or production) picks Gauntlet's resources.

``GAUNTLET_ENV`` is ``local`` (default: everything under ``GAUNTLET_HOME``, SQLite) or
``production`` (every location and credential from environment variables through
``dg.EnvVar``, resolved when a run starts, never at import).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel, Field

from resources.artifacts import LocalArtifactStoreResource
from resources.deployment_policy import DeploymentPolicyResource
from resources.gate_policy import GatePolicyResource
from resources.io_manager import ArtifactIOManager
from resources.market_data import FileMarketDataResource, SyntheticMarketDataResource
from resources.notifier import (
    CompositeNotifierResource,
    DesktopNotifierResource,
    JsonLinesNotifierResource,
    WebhookNotifierResource,
)
from resources.optuna_study import OptunaStudyResource
from resources.paper_broker import LocalPaperBrokerResource
from resources.registry import SqlDeploymentRegistryResource
from resources.strategy_plugins import StrategyPluginsResource
from pipeline_assets.trial_assets import MAX_TRIALS_PER_RUN
from sensors.optuna_trial_sensor import DEFAULT_INTERVAL_SECONDS
from simulations.constants import DEFAULT_LIVE_CAPACITY

REPO_ROOT = Path(__file__).resolve().parent.parent


class Environment(StrEnum):
    """Where Gauntlet runs."""

    LOCAL = "local"
    PRODUCTION = "production"


class Settings(BaseModel):
    """Non-secret settings read once when definitions load."""

    environment: Environment = Environment.LOCAL
    home: Path = Field(default=REPO_ROOT / ".gauntlet")
    studies: list[str] = Field(default_factory=list)
    sensor_interval_seconds: int = Field(default=DEFAULT_INTERVAL_SECONDS, ge=1)
    max_trials_per_run: int = Field(default=MAX_TRIALS_PER_RUN, ge=1)
    market_file: str | None = None
    gate_policy_file: str | None = None
    live_capacity: int = Field(default=DEFAULT_LIVE_CAPACITY, ge=1)
    dry_run: bool = False
    strategy_plugins: list[str] = Field(default_factory=list)
    paper_clock: Literal["replay", "wall"] = "replay"
    paper_speed: float = Field(default=1.0, gt=0)
    # Whether GAUNTLET_ALERT_WEBHOOK is set; its value (a URL that may hold a token) is read
    # through dg.EnvVar by the notifier, never here.
    alert_webhook: bool = False
    desktop_alerts: bool = False

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``GAUNTLET_*`` variables, with the local defaults."""
        env = os.environ if environ is None else environ
        fields: dict[str, Any] = {}
        if env.get("GAUNTLET_ENV"):
            fields["environment"] = env["GAUNTLET_ENV"]
        if env.get("GAUNTLET_HOME"):
            fields["home"] = Path(env["GAUNTLET_HOME"])
        if env.get("GAUNTLET_STUDIES"):
            fields["studies"] = [s.strip() for s in env["GAUNTLET_STUDIES"].split(",") if s.strip()]
        if env.get("GAUNTLET_MARKET_FILE"):
            fields["market_file"] = env["GAUNTLET_MARKET_FILE"]
        if env.get("GAUNTLET_GATE_POLICY"):
            fields["gate_policy_file"] = env["GAUNTLET_GATE_POLICY"]
        if env.get("GAUNTLET_LIVE_CAPACITY"):
            fields["live_capacity"] = int(env["GAUNTLET_LIVE_CAPACITY"])
        if env.get("GAUNTLET_STRATEGY_PLUGINS"):
            fields["strategy_plugins"] = [p.strip() for p in env["GAUNTLET_STRATEGY_PLUGINS"].split(",") if p.strip()]
        if env.get("GAUNTLET_DRY_RUN"):
            fields["dry_run"] = env["GAUNTLET_DRY_RUN"].lower() in {"1", "true", "yes"}
        if env.get("GAUNTLET_PAPER_CLOCK"):
            fields["paper_clock"] = env["GAUNTLET_PAPER_CLOCK"]
        if env.get("GAUNTLET_PAPER_SPEED"):
            fields["paper_speed"] = float(env["GAUNTLET_PAPER_SPEED"])
        if env.get("GAUNTLET_ALERT_WEBHOOK"):
            fields["alert_webhook"] = True
        if env.get("GAUNTLET_DESKTOP_ALERTS"):
            fields["desktop_alerts"] = env["GAUNTLET_DESKTOP_ALERTS"].lower() in {"1", "true", "yes"}
        if env.get("GAUNTLET_MAX_TRIALS_PER_RUN"):
            fields["max_trials_per_run"] = int(env["GAUNTLET_MAX_TRIALS_PER_RUN"])
        if env.get("GAUNTLET_SENSOR_INTERVAL"):
            fields["sensor_interval_seconds"] = int(env["GAUNTLET_SENSOR_INTERVAL"])
        return cls(**fields)

    @property
    def optuna_url(self) -> str:
        """The demo study's storage in the local environment."""
        return f"sqlite:///{self.home / 'optuna.db'}"

    @property
    def database_url(self) -> str:
        """Gauntlet's own tables (registry, paper sessions) in the local environment."""
        return f"sqlite:///{self.home / 'gauntlet.db'}"


def _notifier(settings: Settings, log_path: str | dg.EnvVar) -> CompositeNotifierResource:
    """Alerts to the JSON-lines log, plus the webhook and desktop when enabled; one ledger file."""
    return CompositeNotifierResource(
        log=JsonLinesNotifierResource(path=log_path),
        webhook=(
            WebhookNotifierResource(url=dg.EnvVar("GAUNTLET_ALERT_WEBHOOK"), ledger_path=log_path)
            if settings.alert_webhook
            else None
        ),
        desktop=DesktopNotifierResource(ledger_path=log_path) if settings.desktop_alerts else None,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources for ``settings.environment``."""
    market = (
        FileMarketDataResource(path=settings.market_file) if settings.market_file else SyntheticMarketDataResource()
    )
    policy = GatePolicyResource(path=settings.gate_policy_file)
    deployment = DeploymentPolicyResource(dry_run=settings.dry_run)
    plugins = StrategyPluginsResource(import_paths=settings.strategy_plugins)
    if settings.environment == Environment.PRODUCTION:
        return {
            "optuna_study": OptunaStudyResource(
                storage_url=dg.EnvVar("GAUNTLET_OPTUNA_STORAGE"), studies=settings.studies
            ),
            "artifacts": LocalArtifactStoreResource(base_dir=dg.EnvVar("GAUNTLET_ARTIFACT_DIR")),
            "shared_io_manager": ArtifactIOManager(base_dir=dg.EnvVar("GAUNTLET_ARTIFACT_DIR")),
            "market": market,
            "gate_policy": policy,
            "paper_broker": LocalPaperBrokerResource(
                database_url=dg.EnvVar("GAUNTLET_DATABASE_URL"),
                clock=settings.paper_clock,
                speed=settings.paper_speed,
                market=market,
            ),
            "registry": SqlDeploymentRegistryResource(
                database_url=dg.EnvVar("GAUNTLET_DATABASE_URL"), live_capacity=settings.live_capacity
            ),
            "deployment_policy": deployment,
        "strategy_plugins": plugins,
            "notifier": _notifier(settings, dg.EnvVar("GAUNTLET_ALERT_LOG")),
        }
    return {
        "optuna_study": OptunaStudyResource(storage_url=settings.optuna_url, studies=settings.studies),
        "artifacts": LocalArtifactStoreResource(base_dir=str(settings.home / "artifacts")),
        "shared_io_manager": ArtifactIOManager(base_dir=str(settings.home / "artifacts" / "shared")),
        "market": market,
        "gate_policy": policy,
        "paper_broker": LocalPaperBrokerResource(
            database_url=settings.database_url, clock=settings.paper_clock, speed=settings.paper_speed, market=market
        ),
        "registry": SqlDeploymentRegistryResource(database_url=settings.database_url, live_capacity=settings.live_capacity),
        "deployment_policy": deployment,
        "strategy_plugins": plugins,
        "notifier": _notifier(settings, str(settings.home / "alerts.jsonl")),
    }
