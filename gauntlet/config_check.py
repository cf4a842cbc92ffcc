"""``gauntlet config check``: the configuration as it applies, and the data it points at.

The schema and its loading are `gauntlet.config` (the definitions read them too); this
command validates them, loads the market data as `market_data` would, and prints the effective
configuration with secrets masked and the windows every study is judged on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import yaml

from gauntlet.config import effective_config, load_config
from gauntlet.environment import instruments_resource
from gauntlet.windows import configured_windows, windows_lines, windows_payload
from simulations.errors import ConfigurationError

EXIT_OK = 0
EXIT_INVALID = 1


def _invalid(as_json: bool, problems: list[str]) -> int:
    if as_json:
        print(json.dumps({"valid": False, "problems": problems}))
    else:
        print("gauntlet config check: the configuration is invalid", file=sys.stderr)
        print("\n".join(problems), file=sys.stderr)
    return EXIT_INVALID


def _check(as_json: bool) -> int:
    environ = dict(os.environ)
    try:
        loaded = load_config(environ)
    except ConfigurationError as exc:
        return _invalid(as_json, exc.cause.splitlines())
    try:
        # Every instrument's data as market_data would load it: columns, calendar gaps, window
        # fit, bars per window; and every configured study routed to one instrument.
        windows = configured_windows(loaded.config)
        payload = windows_payload(loaded.config.optuna.studies, windows, instruments_resource(loaded.config))
    except ConfigurationError as exc:
        return _invalid(as_json, [f"market data: {line}" for line in exc.cause.splitlines()])
    data = effective_config(loaded, environ)
    source = str(loaded.path) if loaded.path else "built-in defaults (no gauntlet.yaml)"
    overrides = {variable: key for key, variable in loaded.overrides.items()}
    if as_json:
        print(json.dumps({"valid": True, "file": source, "overrides": overrides, "config": data, "windows": payload}))
        return EXIT_OK
    print(f"# gauntlet config check: valid\n# file: {source}")
    if overrides:
        print("# overridden by: " + ", ".join(f"{variable} ({key})" for variable, key in overrides.items()))
    print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    print("\n".join(f"# {line}" for line in ["windows:", *windows_lines(payload, windows)]))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gauntlet config", description="Gauntlet's configuration (gauntlet.yaml).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="validate the configuration and print it as it applies, secrets masked; exit 1 if invalid",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document instead of YAML")
    return parser


def config_main(argv: Sequence[str] | None = None) -> int:
    """``gauntlet config check [--json]``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and usage errors (2, already printed); returning the
        # status keeps this callable in process like every other outcome.
        return int(exc.code or 0)
    return _check(args.json)
