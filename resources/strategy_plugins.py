"""`StrategyPluginsResource`: users' own strategies, resolved into the registry trials are evaluated with.

Two ways in: import paths (``"package.module:MyStrategy"``) in configuration, and the
``gauntlet.strategies`` entry-point group of installed packages. Each object must have the
`simulations.strategies.Strategy` protocol; its ``name`` is what a trial's ``strategy``
user_attr refers to. The resource also gives the built-in ``linear_model`` the one directory it
may read model artifacts from (``model_dir``); without one it reads none.

Nothing is registered anywhere: `registry` returns a `StrategyRegistry` value, which the trial
step, the paper broker and the paper-session sensor pass to what they evaluate.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import dagster as dg
from pydantic import Field

from simulations.errors import ConfigurationError, TrialDataError
from simulations.strategies import (
    BUILT_IN_STRATEGIES,
    LinearModelStrategy,
    StrategyRegistry,
    load_strategy_from_import_path,
)

ENTRY_POINT_GROUP = "gauntlet.strategies"


class StrategyPluginsResource(dg.ConfigurableResource):
    """The strategies trials may name: the built-ins and the configured plug-ins."""

    import_paths: list[str] = Field(
        default_factory=list, description="Strategies as 'package.module:object' import paths."
    )
    use_entry_points: bool = Field(
        default=True, description=f"Also load strategies from the '{ENTRY_POINT_GROUP}' entry points."
    )
    model_dir: str | None = Field(
        default=None,
        description="The only directory (with its subfolders) linear_model reads artifacts from; None: none.",
    )

    def registry(self) -> StrategyRegistry:
        """The built-ins, ``linear_model`` reading from ``model_dir``, and every plug-in.

        Raises
        ------
        ConfigurationError
            Naming the import path of a plug-in that cannot be loaded, lacks the protocol, or
            takes a name already in use.
        """
        registry = BUILT_IN_STRATEGIES.with_strategies(LinearModelStrategy(model_dir=self.model_dir), replace=True)
        paths = list(self.import_paths)
        if self.use_entry_points:
            paths += [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
        for path in paths:
            try:
                strategy = load_strategy_from_import_path(import_path=path)
            except TrialDataError as exc:
                raise ConfigurationError(f"strategy plug-in {path!r} cannot be loaded: {exc.cause}") from exc
            if strategy.name in registry.names() and type(registry.get(name=strategy.name)) is type(strategy):
                continue  # configured and installed as an entry point too: the same strategy
            try:
                registry = registry.with_strategies(strategy)
            except ConfigurationError as exc:
                raise ConfigurationError(f"strategy plug-in {path!r}: {exc.cause}") from exc
        return registry
