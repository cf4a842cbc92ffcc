"""Drive the real sensor and jobs the way the daemon does, in process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from pipeline_assets.definitions import build_definitions
from gauntlet.config import GauntletConfig
from gauntlet.environment import build_resources
from pipeline_assets.partitions import trials_partitions_def
from pipeline_assets.shared_assets import build_shared_assets
from resources.market_data import (
    DEFAULT_INSTRUMENT,
    FileMarketDataResource,
    InstrumentsResource,
    MarketDataResource,
    SyntheticMarketDataResource,
    TableMarketDataResource,
)
from resources.gate_policy import GatePolicyResource
from resources.dagster_storage import DagsterTables, storage_of
from resources.optuna_study import OptunaStudyResource
from tests.simulations.previous_system import PREVIOUS_SYSTEM_FILE

#: The demo's gate thresholds (the previous system's, gate_policies/previous_system.yaml): under
#: them trials of the default market reach every stage, which is what most tests exercise. The
#: calibrated defaults stop every such trial at gate 1.
DEMO_GATE_POLICY_FILE = str(PREVIOUS_SYSTEM_FILE)


def demo_gate_policy(overrides: dict) -> GatePolicyResource:
    """The demo's gate thresholds with ``overrides`` on top, as the launchpad sets them."""
    return GatePolicyResource(path=DEMO_GATE_POLICY_FILE, overrides=overrides)


def write_demo_gate_policy(path: Path, overrides: dict) -> Path:
    """``path``: a whole gate policy file, the demo's thresholds with ``overrides`` on top."""
    path.write_text(yaml.safe_dump(demo_gate_policy(overrides).policy().model_dump(mode="json")))
    return path


#: Paper trading as most pipeline tests run it: holdout sessions replaying a forward window the
#: test built beforehand, grades that may promote. Tests of forward sessions feed bars themselves.
HOLDOUT_SECTIONS: dict = {"paper": {"mode": "holdout"}, "deployment": {"paper_modes": ["forward", "holdout"]}}
#: The same, as the GAUNTLET_* variables a daemon started by a test reads.
HOLDOUT_ENVIRONMENT = {"GAUNTLET_PAPER_MODE": "holdout", "GAUNTLET_DEPLOY_PAPER_MODES": "forward,holdout"}


def demo_config(home: str | Path, **sections) -> GauntletConfig:
    """The local configuration under ``home`` with the demo's gate thresholds, as `make up` runs,
    paper-trading holdout sessions (`HOLDOUT_SECTIONS`); ``sections`` as in gauntlet.yaml (e.g.
    ``sensor={"max_trials_per_run": 5}``), replacing those."""
    return GauntletConfig(home=Path(home), gates_file=DEMO_GATE_POLICY_FILE, **{**HOLDOUT_SECTIONS, **sections})


def local_resources(optuna_url: str, home: str | Path, **overrides) -> dict:
    """The local environment's resources under ``home``, reading ``optuna_url``; ``market=`` makes
    that market the one instrument every study trades."""
    resources = build_resources(demo_config(home))
    resources["optuna_study"] = OptunaStudyResource(storage_url=optuna_url)
    if "market" in overrides:
        overrides.update(single_instrument(overrides.pop("market")))
    resources.update(overrides)
    return resources


def local_definitions(optuna_url: str, home: str | Path, **overrides) -> dg.Definitions:
    return build_definitions(config=demo_config(home), resources=local_resources(optuna_url, home, **overrides))


def one_instrument(market: MarketDataResource) -> InstrumentsResource:
    """``market`` as the one instrument, `DEFAULT_INSTRUMENT`, every study trades."""
    kind = {FileMarketDataResource: "files", TableMarketDataResource: "tables", SyntheticMarketDataResource: "synthetic"}
    return InstrumentsResource(**{kind[type(market)]: {DEFAULT_INSTRUMENT: market}})


def shared_assets(market: MarketDataResource | None = None) -> list:
    """The shared assets with the one `DEFAULT_INSTRUMENT` (the default synthetic market unless ``market``)."""
    return build_shared_assets(one_instrument(market or SyntheticMarketDataResource()))


def single_instrument(market: MarketDataResource) -> dict:
    """Resources making ``market`` the one instrument every study trades."""
    return {"instruments": one_instrument(market)}


def materialize_shared(defs: dg.Definitions, instance: dg.DagsterInstance, instrument: str = DEFAULT_INSTRUMENT) -> None:
    result = defs.resolve_job_def("shared_job").execute_in_process(instance=instance, partition_key=instrument)
    assert result.success


@dataclass(frozen=True)
class InstanceTemplate:
    """A closed Dagster instance and the Gauntlet home its runs wrote to, for tests to start from.

    Opening a new SQLite instance creates and migrates its storage, and building the shared assets
    solves the 200 CGE equilibria: each takes seconds, and a copy of the result is the same state.
    """

    root: Path

    @classmethod
    def build(cls, root: Path, prepare: Callable[[dg.DagsterInstance, Path], None] | None = None) -> InstanceTemplate:
        """The template under ``root``: a new instance, after ``prepare(instance, home)`` if given."""
        (root / "dagster").mkdir(parents=True)
        (root / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "dagster")) as instance:
            if prepare is not None:
                prepare(instance, root / "home")
        return cls(root)

    @contextmanager
    def open(self, instance_dir: Path, home: Path | None = None) -> Iterator[dg.DagsterInstance]:
        """A copy of the instance in ``instance_dir`` (which must not exist), the home's files copied into ``home``."""
        shutil.copytree(self.root / "dagster", instance_dir)
        if home is not None:
            shutil.copytree(self.root / "home", home, dirs_exist_ok=True)
        with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
            yield instance


def build_default_shared(instance: dg.DagsterInstance, home: Path) -> None:
    """The default market's shared assets, as `local_definitions` under ``home`` build them."""
    # The shared job reads no study: the storage is never opened, and is outside the home that is copied.
    materialize_shared(local_definitions(f"sqlite:///{home.parent / 'optuna.db'}", home), instance)


@dataclass
class Ticker:
    """Evaluates `optuna_trial_sensor`, applies its partition requests and runs its requests."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None
    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    def tick(self, *, execute: bool = True) -> dg.SensorResult:
        sensor = self.defs.resolve_sensor_def("optuna_trial_sensor")
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs, resources=self.defs.resources
        ) as context:
            result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        if result.cursor is not None:
            self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        if execute:
            for request in result.run_requests or []:
                self.results.append(execute_request(self.defs, self.instance, request))
        return result

    def tick_until_idle(self, max_ticks: int = 5) -> None:
        """Tick until a tick requests nothing (the shared assets come first)."""
        for _ in range(max_ticks):
            if not self.tick().run_requests:
                return
        raise AssertionError(f"sensor still requesting runs after {max_ticks} ticks")


def execute_request(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest, *, raise_on_error: bool = False
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name or "trial_job")
    tags = dict(request.tags)
    if request.partition_key:
        tags["dagster/partition"] = request.partition_key
    return job.execute_in_process(
        instance=instance, tags=tags, raise_on_error=raise_on_error, asset_selection=request.asset_selection
    )


def instance_tables(instance: dg.DagsterInstance) -> DagsterTables:
    """The tables of a test instance (SQLite under its root) as `gauntlet status` reads them."""
    return DagsterTables(storage_of(Path(instance.root_directory), config=None, environ=os.environ))


def materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def partitions(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(trials_partitions_def.name))
