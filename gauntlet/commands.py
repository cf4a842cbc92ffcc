"""The commands of `gauntlet` that run against the Dagster instance (`gauntlet.cli` parses them,
`gauntlet.terminal` runs them): retry, windows and health, with the instance of
``$DAGSTER_HOME`` and the resources ``build_resources(load_config().config)`` builds, exactly as
the definitions do. ``status`` (`gauntlet.status_command`) and the registry's commands
(`gauntlet.registry_commands`) need no Dagster.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import sqlalchemy.exc

from gauntlet.config import GauntletConfig, load_config
from resources.dagster_private import (
    DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    DEFAULT_SENSOR_DAEMON_INTERVAL,
    DagsterHomeNotSetError,
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    PartitionBackfill,
    TickStatus,
    make_new_backfill_id,
)
from gauntlet.environment import build_resources
from pipeline_assets.trial_keys import study_key_prefix
from gauntlet.status_command import read_report, trial_note
from gauntlet.terminal import Output, table
from pipeline_assets.stage_table import TRIAL_ASSET_KEYS
from resources.database import translate_db_error
from simulations.errors import ConfigurationError, PipelineError, StorageNotFoundError

#: Tags on every retry backfill (and so on its runs): what asked for it, and who.
RETRY_TAG = "gauntlet/retry"
REQUESTED_BY_TAG = "gauntlet/requested_by"

#: A sensor whose last tick is older than this many intervals (and than the floor) is stale:
#: the daemon's own heartbeat tolerance is 30 minutes, a stale sensor shows a dead or hung
#: daemon within minutes.
SENSOR_STALE_INTERVALS = 10
SENSOR_STALE_FLOOR_SECONDS = 300.0
#: A daemon beats every DEFAULT_HEARTBEAT_INTERVAL_SECONDS (30 s); a beat later than that and
#: this slack (a loop delayed on a busy machine) is overdue: the daemon stopped or hangs.
#: Dagster's own tolerance (30 minutes) would call a stopped daemon healthy for half an hour.
DAEMON_HEARTBEAT_SLACK_SECONDS = 15.0


class Context:
    """The environment's configuration, the Dagster instance and, on demand, initialized resources."""

    def __init__(self, config: GauntletConfig, instance: dg.DagsterInstance, stack: contextlib.ExitStack) -> None:
        self.config = config
        self.instance = instance
        self._stack = stack
        self._resource_defs = build_resources(config)

    def resources(self, *names: str) -> Any:
        """The named resources, initialized as in a run (``dg.EnvVar`` resolved now)."""
        try:
            return self._stack.enter_context(dg.build_resources({n: self._resource_defs[n] for n in names}))
        except dg.DagsterInvalidConfigError as exc:
            raise ConfigurationError(f"resources {', '.join(names)} are misconfigured: {exc}") from exc

    def definitions(self) -> dg.Definitions:
        """Gauntlet's definitions with these resources (sensors and asset graph)."""
        # Imported here: loading the definitions validates the configuration, and `gauntlet
        # config check` must be able to report an invalid one instead of failing on import.
        from pipeline_assets.definitions import build_definitions

        return build_definitions(config=self.config, resources=self._resource_defs)


def _ago(timestamp: float) -> str:
    seconds = dt.datetime.now(dt.UTC).timestamp() - timestamp
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


# -- retry --------------------------------------------------------------------------------------
def cmd_retry(ctx: Context, args: argparse.Namespace) -> Output:
    """Re-request every failed trial as a new asset backfill over its partitions, one per study.

    Why a backfill: a sensor ``run_key`` that already ran is skipped forever (DESIGN.md), so
    the sensor can never retry a trial, and re-executing a failed batch run would rerun every
    trial of its range. A `PartitionBackfill` added with ``instance.add_backfill`` is what the
    UI's *Materialize* on selected partitions creates: it is stored in the instance, so it
    outlives this command; the backfill daemon turns it into new runs with fresh run ids,
    at most ``MAX_TRIALS_PER_RUN`` contiguous trials each (the asset's ``BackfillPolicy``);
    those runs go through the instance's run coordinator (queue, one run per study through
    the ``gauntlet/study`` tag) and show up in the UI under the backfill. Every trial asset is
    selected, so the snapshot is read from Optuna again (a patched trial is picked up) and the
    stages rerun; evaluation is deterministic and registry decisions idempotent, so nothing
    already recorded changes. A trial with a run in flight or a requested backfill is skipped,
    so retrying twice never doubles the work.
    """
    report = read_report(ctx.config, failed_runs=args.failed_runs).select(
        study_prefix=study_key_prefix(args.study) if args.study else None, errored=True
    )
    retry = [t for t in report.trials if not t.in_flight]
    skipped = [t.partition_key for t in report.trials if t.in_flight]
    by_prefix: dict[str, list[str]] = defaultdict(list)
    for trial in retry:
        by_prefix[trial.study or trial.partition_key].append(trial.partition_key)
    backfills: list[dict[str, Any]] = []
    if not args.dry_run and by_prefix:
        # The study's name (not its key prefix) is what the sensor tags runs with for the
        # per-study concurrency limit.
        from pipeline_assets.trial_assets import STUDY_TAG

        names = {study_key_prefix(n): n for n in ctx.resources("optuna_study").optuna_study.list_studies()}
        asset_graph = ctx.definitions().resolve_asset_graph()
        for prefix, keys in by_prefix.items():
            study = names.get(prefix, prefix)
            backfill = PartitionBackfill.from_asset_partitions(
                backfill_id=make_new_backfill_id(),
                asset_graph=asset_graph,
                partition_names=keys,
                asset_selection=list(TRIAL_ASSET_KEYS),
                backfill_timestamp=dt.datetime.now(dt.UTC).timestamp(),
                tags={STUDY_TAG: study, RETRY_TAG: "cli", REQUESTED_BY_TAG: args.by},
                dynamic_partitions_store=ctx.instance,
                all_partitions=False,
                title=f"gauntlet retry: {len(keys)} failed trial(s) of {study}",
                description=f"requested by {args.by} with `gauntlet retry`",
                run_config=None,
            )
            ctx.instance.add_backfill(backfill)
            backfills.append({"backfill_id": backfill.backfill_id, "study": study, "partition_keys": keys})
    payload = {
        "dry_run": args.dry_run,
        "trials": [t.to_json() for t in retry],
        "skipped_in_flight": skipped,
        "backfills": backfills,
    }
    verb = "would retry" if args.dry_run else "retrying"
    lines = [f"{verb} {t.partition_key}: {trial_note(t, full=True)}" for t in retry]
    lines += [f"backfill {b['backfill_id']}: {len(b['partition_keys'])} trial(s) of {b['study']}" for b in backfills]
    lines += [f"skipped {key}: a run or backfill is already in flight" for key in skipped]
    if not retry:
        lines.append("no failed trial to retry")
    return Output(lambda: payload, lambda: lines)


# -- windows ------------------------------------------------------------------------------------
def cmd_windows(ctx: Context, args: argparse.Namespace) -> Output:
    """Per watched study, its instrument and that instrument's train, backtest and forward windows (dates and bars now)."""
    from gauntlet.windows import every_instrument_windows, windows_lines, windows_payload

    instruments = ctx.resources("instruments").instruments
    windows = every_instrument_windows(
        instruments, ctx.instance, keys={name: ctx.config.market_key(name) for name in instruments.names()}
    )
    studies = list(ctx.config.optuna.studies)
    if not studies:
        # Every study in the storage is watched; before a trainer creates one, there is none yet.
        try:
            studies = ctx.resources("optuna_study").optuna_study.list_studies()
        except StorageNotFoundError:
            studies = []
    payload = windows_payload(studies, windows, instruments)
    return Output(lambda: payload, lambda: windows_lines(payload, windows))


# -- health -------------------------------------------------------------------------------------
def _check(name: str, probe: Callable[[], str]) -> dict[str, Any]:
    """Run one reachability probe; a typed error makes the component unhealthy, with its message."""
    try:
        return {"component": name, "healthy": True, "detail": probe()}
    except PipelineError as exc:
        return {"component": name, "healthy": False, "detail": f"{type(exc).__name__}: {exc}"}


def _daemon_checks(instance: dg.DagsterInstance) -> list[dict[str, Any]]:
    checks = []
    overdue_after = DEFAULT_HEARTBEAT_INTERVAL_SECONDS + DAEMON_HEARTBEAT_SLACK_SECONDS
    now = dt.datetime.now(dt.UTC).timestamp()
    for daemon_type, status in sorted(instance.get_daemon_statuses().items()):
        heartbeat = status.last_heartbeat
        healthy = bool(status.healthy)
        if heartbeat is None:
            detail = "no heartbeat: is dagster-daemon running?"
        elif now - heartbeat.timestamp > overdue_after:
            healthy = False
            detail = (
                f"heartbeat {_ago(heartbeat.timestamp)}, overdue (expected every {DEFAULT_HEARTBEAT_INTERVAL_SECONDS}s): "
                "has dagster-daemon stopped?"
            )
        else:
            detail = f"heartbeat {_ago(heartbeat.timestamp)}"
        if heartbeat and heartbeat.errors:
            detail += f"; last error: {heartbeat.errors[0].message.strip().splitlines()[0]}"
        checks.append({"component": f"daemon {daemon_type}", "healthy": healthy, "detail": detail})
    return checks


def _sensor_check(instance: dg.DagsterInstance, sensor: dg.SensorDefinition, states: list[InstigatorState]) -> dict[str, Any]:
    name = f"sensor {sensor.name}"
    ticks = [
        tick
        for state in states
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
    ]
    if states and all(s.status == InstigatorStatus.STOPPED for s in states):
        return {"component": name, "healthy": False, "detail": "stopped: start it in the UI (Automation)"}
    if not ticks:
        return {"component": name, "healthy": False, "detail": "never ticked: is dagster-daemon running?"}
    last = max(ticks, key=lambda t: t.timestamp)
    interval = sensor.minimum_interval_seconds or DEFAULT_SENSOR_DAEMON_INTERVAL
    age = dt.datetime.now(dt.UTC).timestamp() - last.timestamp
    detail = f"last tick {last.status.value} {_ago(last.timestamp)}"
    if last.status == TickStatus.FAILURE and last.error is not None:
        return {"component": name, "healthy": False, "detail": f"{detail}: {last.error.message.strip().splitlines()[0]}"}
    if age > max(SENSOR_STALE_INTERVALS * interval, SENSOR_STALE_FLOOR_SECONDS):
        return {"component": name, "healthy": False, "detail": f"{detail}, expected every {interval}s"}
    return {"component": name, "healthy": True, "detail": detail}


def cmd_health(ctx: Context, args: argparse.Namespace) -> Output:
    """Daemon heartbeats, sensors' last ticks, Optuna storage, registry and paper venue; non-zero if unhealthy.

    Daemon health is Dagster's own rule (``instance.get_daemon_statuses``: a heartbeat within
    its tolerance for every required daemon). Sensor ticks are read from the instigator
    states the daemon stores (``instance.all_instigator_state``) by origin and selector id.
    """
    from sensors.all_sensors import build_sensors

    res = ctx.resources("optuna_study", "registry", "paper_broker")
    checks = _daemon_checks(ctx.instance)
    states: dict[str, list[InstigatorState]] = defaultdict(list)
    for state in ctx.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        states[state.name].append(state)
    # The sensors as the code location builds them, without loading the code location.
    checks += [_sensor_check(ctx.instance, sensor, states[sensor.name]) for sensor in build_sensors(**ctx.config.sensor.model_dump())]

    def registry() -> str:
        res.registry.ping()
        stop = res.registry.emergency_stop()
        return f"reachable; {len(res.registry.live())} live; emergency stop {'ON' if stop.stopped else 'off'}"

    checks += [
        # check(): a missing storage, schema or watched study is unhealthy, not "0 studies".
        _check("optuna storage", lambda: f"reachable; {len(res.optuna_study.check())} study(ies)"),
        _check("deployment registry", registry),
        _check("paper venue", lambda: f"reachable; {len(res.paper_broker.sessions())} session(s)"),
    ]
    healthy = all(c["healthy"] for c in checks)
    rows = [[c["component"], "ok" if c["healthy"] else "FAIL", c["detail"]] for c in checks]
    lines = [*table(["COMPONENT", "STATUS", "DETAIL"], rows), "healthy" if healthy else "UNHEALTHY"]
    return Output(lambda: {"healthy": healthy, "checks": checks}, lambda: lines, ok=healthy)


# -- wiring -------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_context() -> Iterator[Context]:
    """The Dagster instance of ``$DAGSTER_HOME`` and the environment's resources, closed on exit.

    Strategy plug-ins are not imported: no command here runs a strategy, and ``health`` must
    work while a plug-in is broken. `retry` loads the definitions, which check them, before
    asking for runs.
    """
    config = load_config(import_plugins=False).config
    try:
        instance = dg.DagsterInstance.get()
    except DagsterHomeNotSetError as exc:
        raise ConfigurationError(
            "DAGSTER_HOME is not set: point it at the Dagster instance directory "
            "(`make up` uses $GAUNTLET_HOME/dagster)"
        ) from exc
    except (dg.DagsterInvariantViolationError, dg.DagsterInvalidConfigError) as exc:
        raise ConfigurationError(f"the Dagster instance cannot be opened: {exc}") from exc
    with instance, contextlib.ExitStack() as stack:
        try:
            yield Context(config, instance, stack)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Gauntlet's own databases raise typed errors already: a raw database error comes
            # from the Dagster instance's storage (its SQLite files or PostgreSQL).
            raise translate_db_error(
                exc, what="Dagster instance", url=os.environ.get("DAGSTER_HOME", "$DAGSTER_HOME")
            ) from exc


#: The commands parsed by `gauntlet.cli` that run here, by the name its parser gives them.
HANDLERS: dict[str, Callable[[Context, argparse.Namespace], Output]] = {
    "retry": cmd_retry,
    "health": cmd_health,
    "windows": cmd_windows,
}


def run_in_instance(args: argparse.Namespace) -> Output:
    """Run the parsed command with the Dagster instance and the resources open (`gauntlet.terminal`)."""
    with open_context() as ctx:
        return HANDLERS[args.handler](ctx, args)
