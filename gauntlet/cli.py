"""``gauntlet``: operate Gauntlet from a terminal or a monitoring probe.

Commands (each takes ``--json`` for machine-readable output and ``--config PATH`` for the
gauntlet.yaml to use; when none is named, a stderr line says the demo configuration applies)::

    gauntlet config check
    gauntlet windows
    gauntlet run --study S --trial N | --all-new [--until STAGE] [--dry-run]
    gauntlet status [--study S] [--stage STAGE ...] [--failed] [--failed-runs N]
    gauntlet live
    gauntlet stop --reason R [--by user:NAME]        gauntlet resume --reason R [--by user:NAME]
    gauntlet retire PARTITION_KEY --reason R [--by user:NAME]
    gauntlet rollback --reason R [--by user:NAME]
    gauntlet retry [--study S] [--dry-run]
    gauntlet health

This module is the command line itself: the argument tree, parsed before anything heavy is
imported, so ``gauntlet --help`` and a usage error answer at once. `gauntlet.terminal` runs a
parsed command: ``status`` in `gauntlet.status_command`, which reads the instance, the registry
and the paper sessions as SQL without Dagster; ``live``, ``stop``, ``resume``, ``retire`` and
``rollback`` in `gauntlet.registry_commands`, on the registry alone; every other one in
`gauntlet.commands`, which opens the Dagster instance of ``$DAGSTER_HOME`` and builds the
resources with ``build_resources(load_config().config)``, exactly as the definitions do.
Exit status: 0 on success, 1 when a command fails with a typed `PipelineError` (printed on
stderr) or when ``health`` finds something unhealthy, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

#: Failed runs read for a trial's last error: the cost stays bounded however long the history is.
DEFAULT_FAILED_RUNS = 50
#: Commands that parse their own arguments (`config check` must work on an invalid configuration),
#: as ``module:function``: each imports only what it runs (``calibrate`` the whole calibration,
#: ``run`` the definitions), and only when it runs.
OWN_PARSERS = {
    "config": "gauntlet.config_check:config_main",
    "run": "gauntlet.run:run_main",
    "calibrate": "gauntlet.calibrate:calibrate_main",
}


class UsageError(Exception):
    """A command line that cannot be parsed (exit status 2)."""


def default_actor() -> str:
    """``user:$USER``, the registry's actor format; ``cli`` when no user is known."""
    user = os.environ.get("USER")
    return f"user:{user}" if user else "cli"



def split_config_option(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``--config PATH`` (or ``--config=PATH``) wherever it is in ``argv``, and the rest.

    Raises
    ------
    UsageError
        If ``--config`` has no value.
    """
    rest: list[str] = []
    config: str | None = None
    items = iter(argv)
    for item in items:
        if item == "--config":
            config = next(items, None)
            if not config:
                raise UsageError("--config needs a path: --config PATH")
        elif item.startswith("--config="):
            config = item.removeprefix("--config=")
        else:
            rest.append(item)
    return config, rest


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    actor = argparse.ArgumentParser(add_help=False)
    actor.add_argument("--reason", required=True, help="why (one line, kept in the registry's log)")
    actor.add_argument("--by", default=default_actor(), help="who: user:<name> (default: user:$USER) or cli")
    history = argparse.ArgumentParser(add_help=False)
    history.add_argument(
        "--failed-runs",
        type=_positive_int,
        default=DEFAULT_FAILED_RUNS,
        help=f"read the last error from this many most recent failed runs (default {DEFAULT_FAILED_RUNS})",
    )

    parser = argparse.ArgumentParser(
        prog="gauntlet",
        description="Operate the Gauntlet pipeline. Every command takes --config PATH: the gauntlet.yaml to use "
        "(default: $GAUNTLET_CONFIG, else the repository's demo configuration).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "config", add_help=False, help="`config check [--json]`: validate gauntlet.yaml, print it with secrets masked"
    )
    commands.add_parser(
        "run",
        add_help=False,
        help="--study S --trial N | --all-new [--until STAGE] [--dry-run] [--json]: a trial through now",
    )
    commands.add_parser(
        "calibrate", add_help=False, help="false-positive and false-negative rates of the gates on simulated studies"
    )
    status = commands.add_parser("status", parents=[common, history], help="one line per trial")
    status.add_argument("--study", help="only this study's trials")
    # The stage names come from the stage table, checked when the command runs (importing the
    # table here would make every `--help` as slow as a command).
    status.add_argument("--stage", action="append", metavar="STAGE", help="only trials at this stage (repeatable)")
    status.add_argument(
        "--failed",
        action="store_true",
        help="only trials a gate rejected (with the thresholds failed) or whose last run failed (with the whole error)",
    )
    status.set_defaults(handler="status")

    commands.add_parser("live", parents=[common], help="what is deployed").set_defaults(handler="live")
    commands.add_parser("stop", parents=[common, actor], help="set the emergency stop").set_defaults(handler="stop")
    commands.add_parser("resume", parents=[common, actor], help="clear the emergency stop").set_defaults(
        handler="resume"
    )
    retire = commands.add_parser("retire", parents=[common, actor], help="take a live trial down")
    retire.add_argument("partition_key", help="the live trial's partition key, e.g. demo__t00000042")
    retire.set_defaults(handler="retire")
    commands.add_parser("rollback", parents=[common, actor], help="undo the latest live promotion").set_defaults(
        handler="rollback"
    )

    retry = commands.add_parser("retry", parents=[common, history], help="re-request failed trials")
    retry.add_argument("--study", help="only this study's failed trials")
    retry.add_argument("--dry-run", action="store_true", help="list what would be retried, request nothing")
    retry.add_argument("--by", default=default_actor(), help="who asks (recorded as a backfill tag)")
    retry.set_defaults(handler="retry")

    commands.add_parser("health", parents=[common], help="daemon, sensors, storages; exit 1 if unhealthy").set_defaults(
        handler="health"
    )
    commands.add_parser(
        "windows", parents=[common], help="each study's instrument and train, backtest and forward windows"
    ).set_defaults(handler="windows")
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    try:
        config, rest = split_config_option(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"gauntlet: {exc}", file=sys.stderr)
        return 2
    args = None
    if rest[:1] not in ([name] for name in OWN_PARSERS):
        try:
            args = build_parser().parse_args(rest)
        except SystemExit as exc:
            # argparse exits on --help (0) and on usage errors (2, message already printed);
            # returning the status keeps main() callable in process, like every other outcome.
            return int(exc.code or 0)
    # Imported only now: the commands need the configuration and, but for status and the
    # registry's commands, Dagster.
    from gauntlet.terminal import run_command

    return run_command(rest, args, config=config)


if __name__ == "__main__":
    sys.exit(main())
