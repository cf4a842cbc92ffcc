"""``gauntlet status``: one line per trial, read straight from the instance, the registry and the
paper sessions.

The command an operator runs first answers without Dagster or the numerics: the configuration
names Gauntlet's database, ``$DAGSTER_HOME/dagster.yaml`` names the instance's storage, and the
read model (`gauntlet.status`) reads both as SQL. `gauntlet retry` reads the same report.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gauntlet.config import GauntletConfig, load_config
from gauntlet.registry_commands import registry_database
from gauntlet.status import StatusReport, TrialStatus, read_status
from gauntlet.terminal import Output, stop_line, table
from pipeline_assets.trial_keys import study_key_prefix
from resources.dagster_storage import DagsterTables, storage_of
from resources.paper_sessions import PaperSessionsDatabase
from resources.registry_store import RegistryDatabase
from simulations.errors import ConfigurationError
from simulations.gates import PaperGatePolicy
from simulations.policy_file import load_gate_policy

_VERDICT_CELL = {"passed": "pass", "failed": "FAIL", "not_evaluated": "-", "running": "run"}
_TEXT_ERROR_CHARS = 100


@dataclass(frozen=True)
class StatusSources:
    """What the report is read from: the instance's tables, the registry, the paper sessions,
    and the paper gate's policy (to say what a paper session waits for)."""

    tables: DagsterTables
    registry: RegistryDatabase
    paper_sessions: PaperSessionsDatabase
    paper: PaperGatePolicy


def _instance_settings(home: Path) -> dict[str, Any] | None:
    """``<home>/dagster.yaml`` as Dagster loads it (safe YAML); None when there is none."""
    path = home / "dagster.yaml"
    if not path.is_file():
        return None
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"the Dagster instance's settings {path} cannot be read: {exc}") from exc
    if settings is not None and not isinstance(settings, dict):
        raise ConfigurationError(f"the Dagster instance's settings {path} must be a mapping")
    return settings


@contextlib.contextmanager
def status_sources(config: GauntletConfig) -> Iterator[StatusSources]:
    """The sources of ``config``'s environment and of the instance at ``$DAGSTER_HOME``, opened."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ConfigurationError(
            "DAGSTER_HOME is not set: point it at the Dagster instance directory (`make up` uses $GAUNTLET_HOME/dagster)"
        )
    registry = registry_database(config)
    paper = load_gate_policy(path=config.gates_file, overrides=config.gate_overrides()).paper
    storage = storage_of(Path(home), config=_instance_settings(Path(home)), environ=os.environ)
    with DagsterTables(storage) as tables:
        yield StatusSources(
            tables=tables,
            registry=registry,
            # The sessions live in the registry's database (`deployment.database`).
            paper_sessions=PaperSessionsDatabase(database_url=registry.database_url),
            paper=paper,
        )


def read_report(config: GauntletConfig, *, failed_runs: int, rejection_reasons: bool = False) -> StatusReport:
    """Every trial's status under ``config`` (`gauntlet.status.read_status`)."""
    with status_sources(config) as sources:
        return read_status(
            sources.tables,
            registry=sources.registry,
            paper_sessions=sources.paper_sessions,
            paper=sources.paper,
            failed_runs=failed_runs,
            rejection_reasons=rejection_reasons,
        )


def trial_note(trial: TrialStatus, *, full: bool) -> str:
    """Pending reasons, why a gate rejected the trial, and its last error (cut unless ``full``)."""
    notes = list(trial.pending)
    if trial.rejection:
        notes.append(f"REJECTED by {trial.rejection.gate}: {trial.rejection.reason}")
    if trial.last_error:
        error = trial.last_error
        text = f"ERROR {error.stage or 'run'}: {error.message}"
        notes.append(text if full or len(text) <= _TEXT_ERROR_CHARS else text[: _TEXT_ERROR_CHARS - 1] + "…")
    return "; ".join(notes)


def cmd_status(args: argparse.Namespace) -> Output:
    """One line per trial, by study and trial number: stage, each gate's verdict, decision,
    pending reasons, and with ``--failed`` why each gate rejected and the whole last error.

    Strategy plug-ins are not imported: the status must show while a plug-in is broken.
    """
    config = load_config(import_plugins=False, look_up_calendars=False).config
    report = read_report(config, failed_runs=args.failed_runs, rejection_reasons=args.failed or args.json).select(
        study_prefix=study_key_prefix(args.study) if args.study else None,
        stages=args.stage or (),
        failed=args.failed,
    )

    def render() -> list[str]:
        rows = [
            [
                t.partition_key,
                t.stage,
                *(_VERDICT_CELL[v] for v in t.gates.values()),
                t.decision.decision if t.decision else "-",
                trial_note(t, full=args.failed),
            ]
            for t in report.trials
        ]
        summary = report.summary()
        stages = ", ".join(f"{n} {s}" for s, n in summary["by_stage"].items() if n)
        return [
            stop_line(report.emergency_stop),
            *table(["TRIAL", "STAGE", "BACKTEST", "CGE", "PAPER", "DECISION", "PENDING / LAST ERROR"], rows),
            f"{summary['trials']} trial(s): {stages or 'none'}; {summary['rejected']} rejected by a gate, "
            f"{summary['errored']} with a failed run, {summary['in_flight']} in flight "
            f"(errors from the last {args.failed_runs} failed runs)",
        ]

    return Output(report.to_json, render)
