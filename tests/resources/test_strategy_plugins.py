"""A user's own strategy, plugged in by import path, goes through the real pipeline."""

import sys
import textwrap

import optuna
import pytest

from resources.strategy_plugins import StrategyPluginsResource
from simulations.errors import ConfigurationError
from simulations.strategies import BUILT_IN_STRATEGIES
from tests.dagster_helpers import Ticker, local_definitions, materialized

PLUGIN = textwrap.dedent(
    '''
    import numpy as np
    from pydantic import BaseModel, ConfigDict, Field


    class TrendParams(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        window: int = Field(ge=2, le=2000)


    class SlowTrend:
        """Long above the moving average, short below it."""

        name = "slow_trend_plugin"
        params_model = TrendParams

        def positions(self, *, close, params):
            close = np.asarray(close, dtype=float)
            c = np.cumsum(close, axis=-1)
            w = params.window
            mean = np.full_like(close, np.nan)
            mean[..., w - 1 :] = (c[..., w - 1 :] - np.concatenate([np.zeros(close.shape[:-1] + (1,)), c[..., :-w]], axis=-1)) / w
            out = np.where(np.isnan(mean), 0.0, np.sign(close - np.nan_to_num(mean)))
            return out

        def search_space(self):
            return {"window": ("int", 24, 1000, True)}
    '''
)


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_strategies.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_strategies:SlowTrend"
    sys.modules.pop("my_strategies", None)


def test_a_plugged_in_strategy_goes_through_the_gates(plugin_module, optuna_url, tmp_path, shared_instance):
    study = optuna.create_study(study_name="mine", storage=optuna_url)
    dist = {"window": optuna.distributions.IntDistribution(24, 1000, log=True)}
    study.add_trial(
        optuna.trial.create_trial(params={"window": 240}, distributions=dist, value=0.4, user_attrs={"strategy": "slow_trend_plugin"})
    )
    plugins = StrategyPluginsResource(import_paths=[plugin_module])
    ticker = Ticker(local_definitions(optuna_url, tmp_path, strategy_plugins=plugins), shared_instance)
    ticker.tick_until_idle()
    assert all(r.success for r in ticker.results)
    assert materialized(shared_instance, "backtest_results") == {"mine__t00000000"}
    # The plug-in lives in the registry the resource gave the run, not in any global one.
    assert "slow_trend_plugin" in plugins.registry().names()
    assert "slow_trend_plugin" not in BUILT_IN_STRATEGIES.names()


def test_the_registry_is_the_built_ins_with_the_model_directory_and_the_plugins(plugin_module, tmp_path):
    registry = StrategyPluginsResource(import_paths=[plugin_module], model_dir=str(tmp_path), use_entry_points=False).registry()
    assert registry.names() == ("linear_model", "mean_reversion", "momentum", "slow_trend_plugin")
    assert registry.get(name="linear_model").model_dir == str(tmp_path)
    assert BUILT_IN_STRATEGIES.get(name="linear_model").model_dir is None
    # The same plug-in named twice (configured, and installed as an entry point) is one strategy.
    twice = StrategyPluginsResource(import_paths=[plugin_module, plugin_module], use_entry_points=False).registry()
    assert twice.names() == registry.names()


def test_a_broken_import_path_is_a_configuration_error_naming_it():
    with pytest.raises(ConfigurationError, match="no_such_module:Thing"):
        StrategyPluginsResource(import_paths=["no_such_module:Thing"], use_entry_points=False).registry()
    with pytest.raises(ConfigurationError, match="must look like"):
        StrategyPluginsResource(import_paths=["not-a-path"], use_entry_points=False).registry()
