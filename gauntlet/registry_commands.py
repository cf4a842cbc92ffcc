"""The registry's commands, ``live``, ``stop``, ``resume``, ``retire`` and ``rollback``: run on the
registry's SQL store (`resources.registry_store`) directly, without Dagster, so the emergency stop
takes effect as soon as it is typed and works while the Dagster instance is down.

Strategy plug-ins are not imported: the kill switch must work while a plug-in is broken.
"""

from __future__ import annotations

import argparse
import os

from gauntlet.config import GauntletConfig, load_config, resolved_location
from gauntlet.terminal import Output, stop_line, table
from resources.registry_store import DecisionRecord, RegistryDatabase


def registry_database(config: GauntletConfig) -> RegistryDatabase:
    """The registry ``config`` names (``deployment.database``, a ``${VAR}`` read now)."""
    return RegistryDatabase(
        database_url=resolved_location(config, "deployment.database", os.environ),
        live_capacity=config.deployment.live_capacity,
    )


def _registry() -> RegistryDatabase:
    return registry_database(load_config(import_plugins=False, look_up_calendars=False).config)


def cmd_live(args: argparse.Namespace) -> Output:
    """What is deployed, oldest first, and the emergency stop."""
    registry = _registry()
    live, stop = registry.live(), registry.emergency_stop()
    rows = [
        [
            e.partition_key,
            e.grade or "-",
            f"{e.ranking_metrics.get('sharpe', float('nan')):.2f}",
            f"{e.ranking_metrics.get('total_return', float('nan')):+.2%}",
            e.promoted_at.isoformat(timespec="seconds"),
            f"#{e.decision_id}",
        ]
        for e in live
    ]
    lines = [
        stop_line(stop),
        *(
            table(["TRIAL", "GRADE", "SHARPE", "RETURN", "PROMOTED AT", "DECISION"], rows)
            if live
            else ["nothing is live"]
        ),
    ]
    payload = {"emergency_stop": stop.model_dump(mode="json"), "live": [e.model_dump(mode="json") for e in live]}
    return Output(lambda: payload, lambda: lines)


def _set_stop(args: argparse.Namespace, *, stopped: bool) -> Output:
    state = _registry().set_emergency_stop(stopped=stopped, by=args.by, reason=args.reason)
    return Output(lambda: state.model_dump(mode="json"), lambda: [stop_line(state)])


def cmd_stop(args: argparse.Namespace) -> Output:
    """Set the emergency stop: every later decision holds its promotion (``held_emergency_stop``)."""
    return _set_stop(args, stopped=True)


def cmd_resume(args: argparse.Namespace) -> Output:
    """Clear the emergency stop."""
    return _set_stop(args, stopped=False)


def _decision_output(record: DecisionRecord) -> Output:
    line = f"{record.decision} {record.partition_key} (decision #{record.id} by {record.decided_by}): {record.reason}"
    return Output(lambda: record.model_dump(mode="json"), lambda: [line])


def cmd_retire(args: argparse.Namespace) -> Output:
    """Take a live trial down, freeing its slot."""
    return _decision_output(_registry().retire(partition_key=args.partition_key, by=args.by, reason=args.reason))


def cmd_rollback(args: argparse.Namespace) -> Output:
    """Undo the most recent promotion still live (restoring what it replaced, unless stopped)."""
    return _decision_output(_registry().rollback(by=args.by, reason=args.reason))
