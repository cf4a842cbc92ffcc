"""The benchmark figures: name -> (measure, unit, target, "lower"|"higher" is better)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.studies import bulk_study


def _sensor_tick_ms(n_trials: int, n_new: int = 10, repeats: int = 5) -> float:
    """Median wall time of one `optuna_trial_sensor` tick that finds ``n_new`` new trials."""
    import dagster as dg

    from pipeline_assets.definitions import build_definitions
    from pipeline_assets.environment import Settings
    from resources.artifacts import LocalArtifactStoreResource
    from resources.optuna_study import OptunaStudyResource
    from sensors.optuna_trial_sensor import encode_cursor
    from resources.optuna_study import StudyCursor

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        watermark = bulk_study(url, "bench", n_trials) - n_new
        defs = build_definitions(
            settings=Settings(),
            resources={
                "optuna_study": OptunaStudyResource(storage_url=url),
                "artifacts": LocalArtifactStoreResource(base_dir=tmp),
            },
        )
        sensor = defs.resolve_sensor_def("optuna_trial_sensor")
        cursor = encode_cursor({"bench": StudyCursor(watermark=watermark)})
        timings = []
        with dg.instance_for_test(temp_dir=tmp) as instance:
            for i in range(repeats + 1):
                context = dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=defs, resources=defs.resources
                )
                started = time.perf_counter()
                result = sensor(context)
                elapsed = time.perf_counter() - started
                assert sum(int(r.tags["gauntlet/trials"]) for r in result.run_requests) == n_new
                if i:  # the first tick opens the storage: the daemon pays that once
                    timings.append(elapsed)
        return statistics.median(timings) * 1000


def _tick_ratio() -> float:
    return _sensor_tick_ms(10_000) / _sensor_tick_ms(100)


FIGURES: dict[str, tuple[Callable[[], float], str, float | None, str]] = {
    "sensor_tick_100_trials_10_new_ms": (lambda: _sensor_tick_ms(100), "ms", None, "lower"),
    "sensor_tick_10000_trials_10_new_ms": (lambda: _sensor_tick_ms(10_000), "ms", None, "lower"),
    "sensor_tick_ratio_10000_vs_100": (_tick_ratio, "ratio", 2.0, "lower"),
}
