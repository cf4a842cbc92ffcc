"""What every `gauntlet` command shares at the terminal: which configuration applies, what a
command prints (text or JSON) and its exit status, and which module runs it.

No Dagster here: a command's module is imported only when that command runs, so the commands
that need no Dagster (``status`` and the registry's) never load it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gauntlet.cli import OWN_PARSERS
from gauntlet.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, config_path
from resources.registry_store import ControlState
from simulations.errors import ConfigurationError, PipelineError
from simulations.stage_names import trial_stage_labels

EXIT_OK = 0
EXIT_FAILED = 1

#: The function that runs each command `gauntlet.cli` parses, as ``module:function`` taking
#: the parsed arguments; every other command runs against the Dagster instance.
RUNNERS = {
    "status": "gauntlet.status_command:cmd_status",
    **{name: f"gauntlet.registry_commands:cmd_{name}" for name in ("live", "stop", "resume", "retire", "rollback")},
}
DAGSTER_RUNNER = "gauntlet.commands:run_in_instance"


@dataclass(frozen=True)
class Output:
    """What a command prints: a JSON payload or text lines, and whether it succeeded.

    Both are made on demand: for 10,000 trials, building the unused one costs as much as the read.
    """

    payload: Callable[[], Any]
    render: Callable[[], list[str]]
    ok: bool = True


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """``rows`` under ``header`` in left-aligned columns."""
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]


def stop_line(stop: ControlState) -> str:
    """The emergency stop, on one line."""
    if not stop.stopped:
        return "emergency stop: off"
    return f"emergency stop: ON since {stop.at.isoformat() if stop.at else '?'} by {stop.by}: {stop.reason}"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one command.

    Reading 10,000 trials allocates a few hundred thousand short-lived objects, and each
    collection they trigger rescans the whole imported heap: measured, a quarter to a third of
    ``status`` when Dagster is loaded. Reference counting still frees them; the collector
    resumes when the command ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def configured(config: str | None) -> Iterator[None]:
    """``GAUNTLET_CONFIG`` set to ``config`` for one command (restored after), when given."""
    if config is None:
        yield
        return
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = config
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = previous


def _say_which_configuration(argv: Sequence[str]) -> None:
    """One stderr line when the repository's demo configuration is what applies."""
    if not argv or {"-h", "--help"} & set(argv):
        return
    try:
        path = config_path(os.environ)
    except ConfigurationError:
        return  # the command reports it
    if path == DEFAULT_CONFIG_PATH and not os.environ.get(CONFIG_ENV):
        print(
            f"gauntlet: using the demo configuration ({DEFAULT_CONFIG_PATH}); "
            f"--config PATH or {CONFIG_ENV} selects yours",
            file=sys.stderr,
        )


def _function(target: str) -> Callable[..., Any]:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def run_command(argv: Sequence[str], args: argparse.Namespace | None, *, config: str | None) -> int:
    """Run one command under ``config`` (None: ``$GAUNTLET_CONFIG`` or the demo's): ``args`` as
    `gauntlet.cli` parsed them, or None for a command that parses its own ``argv``."""
    stages = trial_stage_labels()
    unknown = [stage for stage in (getattr(args, "stage", None) or ()) if stage not in stages]
    if unknown:
        print(
            f"gauntlet {args.command}: argument --stage: invalid choice: {unknown[0]!r} (choose from {', '.join(stages)})",
            file=sys.stderr,
        )
        return 2
    with configured(config):
        _say_which_configuration(argv)
        if args is None:
            return _function(OWN_PARSERS[argv[0]])(argv[1:])
        return _run(_function(RUNNERS.get(args.handler, DAGSTER_RUNNER)), args)


def _run(runner: Callable[[argparse.Namespace], Output], args: argparse.Namespace) -> int:
    with collector_paused():
        try:
            output = runner(args)
        except PipelineError as exc:
            print(f"gauntlet {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if args.json:
            print(json.dumps(output.payload(), separators=(",", ":"), default=str))
        else:
            print("\n".join(output.render()))
    return EXIT_OK if output.ok else EXIT_FAILED
