"""Drive the real sensor and jobs the way the daemon does, in process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from pipeline_assets.definitions import build_definitions
from pipeline_assets.environment import Settings, build_resources
from pipeline_assets.partitions import trials_partitions_def
from resources.optuna_study import OptunaStudyResource


def local_resources(optuna_url: str, home: str | Path, **overrides) -> dict:
    """The local environment's resources under ``home``, reading ``optuna_url``."""
    resources = build_resources(Settings(home=Path(home)))
    resources["optuna_study"] = OptunaStudyResource(storage_url=optuna_url)
    resources.update(overrides)
    return resources


def local_definitions(optuna_url: str, home: str | Path, **overrides) -> dg.Definitions:
    return build_definitions(settings=Settings(home=Path(home)), resources=local_resources(optuna_url, home, **overrides))


def materialize_shared(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    result = defs.resolve_job_def("shared_job").execute_in_process(instance=instance)
    assert result.success


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


def materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def partitions(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(trials_partitions_def.name))
