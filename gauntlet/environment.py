"""The one place where Gauntlet's resources are built, from the validated configuration.

The configuration (`gauntlet.config.GauntletConfig`: ``gauntlet.yaml`` with the
``GAUNTLET_*`` overrides applied) is the one schema of every setting; the resources here are
built from its sections directly. The environment (``local`` or ``production``) only decides
where the locations the configuration leaves out are: under ``home`` locally, from
``GAUNTLET_OPTUNA_STORAGE``-style variables in production (`gauntlet.config.location`).
A location written as ``${VAR}`` is passed to its resource as ``dg.EnvVar("VAR")``, resolved
when a run starts, never at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from gauntlet.config import REPO_ROOT, Environment, GauntletConfig, MarketConfig, location, reference_name
from resources.artifacts import LocalArtifactStoreResource
from resources.deployment_policy import DeploymentPolicyResource
from resources.gate_policy import GatePolicyResource
from resources.io_manager import ArtifactIOManager
from resources.market_data import (
    FileMarketDataResource,
    InstrumentsResource,
    MarketDataResource,
    SyntheticMarketDataResource,
    TableMarketDataResource,
)
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

__all__ = ["REPO_ROOT", "Environment", "build_resources", "instruments_resource", "market_resource"]


def _value(where: str) -> str | dg.EnvVar:
    """A location as a resource value: a ``${VAR}`` reference is read when a run starts."""
    name = reference_name(where)
    return dg.EnvVar(name) if name else where


def _shared_dir(artifacts: str) -> str | dg.EnvVar:
    name = reference_name(artifacts)
    # A variable's value is known only when a run starts, so no subdirectory can be appended:
    # the shared assets then live in the artifact directory itself.
    return dg.EnvVar(name) if name else str(Path(artifacts) / "shared")


def market_resource(market: MarketConfig) -> MarketDataResource:
    """The market source ``market`` configures: its file or table, else the seeded synthetic market."""
    windows = market.windows
    costs_and_windows: dict[str, Any] = {
        "train_days": windows.train_days,
        "backtest_days": windows.backtest_days,
        "forward_days": windows.forward_days,
        "symbol": market.symbol,
        "fee_bps": market.fee_bps,
        "slippage_bps": market.slippage_bps,
        "calendar": market.calendar,
        **(windows.dates.as_dict() if windows.dates else {}),
    }
    if market.file:
        return FileMarketDataResource(path=market.file, gap_tolerance_bars=market.gap_tolerance_bars, **costs_and_windows)
    if market.table:
        return TableMarketDataResource(
            database_url=_value(market.table.url),
            table=market.table.name,
            gap_tolerance_bars=market.gap_tolerance_bars,
            **costs_and_windows,
        )
    return SyntheticMarketDataResource(seed=market.synthetic.seed, n_days=market.synthetic.days, **costs_and_windows)


def instruments_resource(config: GauntletConfig) -> InstrumentsResource:
    """Every instrument ``config`` describes (``market`` and ``instruments``), and which study trades which."""
    markets = {name: market_resource(market) for name, market in config.markets().items()}
    return InstrumentsResource(
        files={n: m for n, m in markets.items() if isinstance(m, FileMarketDataResource)},
        tables={n: m for n, m in markets.items() if isinstance(m, TableMarketDataResource)},
        synthetic={n: m for n, m in markets.items() if isinstance(m, SyntheticMarketDataResource)},
        studies={name: list(instrument.studies) for name, instrument in config.instruments.items()},
    )


def build_resources(config: GauntletConfig) -> dict[str, Any]:
    """Every resource Gauntlet's definitions use, for ``config``."""
    database = _value(location(config, "deployment.database"))
    artifacts = location(config, "artifacts.dir")
    log = _value(location(config, "notifier.log"))
    deployment, notifier, strategies = config.deployment, config.notifier, config.strategies
    return {
        "optuna_study": OptunaStudyResource(
            storage_url=_value(location(config, "optuna.storage")), studies=config.optuna.studies
        ),
        "artifacts": LocalArtifactStoreResource(base_dir=_value(artifacts)),
        "shared_io_manager": ArtifactIOManager(base_dir=_shared_dir(artifacts)),
        "instruments": instruments_resource(config),
        "gate_policy": GatePolicyResource(
            path=config.gates_file, overrides=config.gate_overrides()
        ),
        "paper_broker": LocalPaperBrokerResource(
            database_url=database, mode=config.paper.mode, clock=config.paper.clock, speed=config.paper.speed
        ),
        "registry": SqlDeploymentRegistryResource(database_url=database, live_capacity=deployment.live_capacity),
        "deployment_policy": DeploymentPolicyResource(
            auto_promote=deployment.auto_promote,
            at_capacity=deployment.at_capacity,
            ranking_metric=deployment.ranking_metric,
            dry_run=deployment.dry_run,
            paper_modes=deployment.paper_modes,
        ),
        "strategy_plugins": StrategyPluginsResource(
            import_paths=strategies.plugins,
            use_entry_points=strategies.entry_points,
            model_dir=_value(strategies.model_dir) if strategies.model_dir else None,
        ),
        "notifier": CompositeNotifierResource(
            gate_alerts=notifier.gate_alerts,
            log=JsonLinesNotifierResource(path=log),
            webhook=WebhookNotifierResource(url=_value(notifier.webhook), ledger_path=log) if notifier.webhook else None,
            desktop=DesktopNotifierResource(ledger_path=log) if notifier.desktop else None,
        ),
    }
