"""`StrategyPluginsResource`: users' own strategies, registered before any trial is evaluated.

Two ways in: import paths (``"package.module:MyStrategy"``) in configuration, and the
``gauntlet.strategies`` entry-point group of installed packages. Each object must have the
`simulations.strategies.Strategy` protocol; its ``name`` is what a trial's ``strategy``
user_attr refers to. The resource also gives the built-in ``linear_model`` the one directory it
may read model artifacts from (``model_dir``); without one it reads none.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import dagster as dg
from pydantic import Field

from simulations.errors import ConfigurationError, TrialDataError
from simulations.strategies import (
    LinearModelStrategy,
    get_strategy,
    load_strategy_from_import_path,
    register_strategy,
    strategy_names,
)

ENTRY_POINT_GROUP = "gauntlet.strategies"


class StrategyPluginsResource(dg.ConfigurableResource):
    """Registers plug-in strategies in the process that evaluates trials."""

    import_paths: list[str] = Field(
        default_factory=list, description="Strategies as 'package.module:object' import paths."
    )
    use_entry_points: bool = Field(
        default=True, description=f"Also register strategies from the '{ENTRY_POINT_GROUP}' entry points."
    )
    model_dir: str | None = Field(
        default=None,
        description="The only directory (with its subfolders) linear_model reads artifacts from; None: none.",
    )

    def register(self) -> list[str]:
        """Register every plug-in (idempotent) and linear_model's model directory; return the plug-ins' names."""
        # Replaced on every setup: the process may have run with another configuration before.
        register_strategy(strategy=LinearModelStrategy(model_dir=self.model_dir), replace=True)
        paths = list(self.import_paths)
        if self.use_entry_points:
            paths += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
        names = []
        for path in paths:
            try:
                strategy = load_strategy_from_import_path(import_path=path)
            except TrialDataError as exc:
                raise ConfigurationError(f"strategy plug-in {path!r} cannot be loaded: {exc.cause}") from exc
            # Every run sets the resource up again: the same plug-in class is already there.
            known = strategy.name in strategy_names() and type(get_strategy(name=strategy.name)) is type(strategy)
            if not known:
                register_strategy(strategy=strategy)
            names.append(strategy.name)
        return names

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.register()
