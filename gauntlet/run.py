"""``gauntlet run``: take one trial (or every new one) through the gauntlet now, in this process.

Each trial is one `trial_job` run in the Dagster instance of ``$DAGSTER_HOME``
(``dg.DagsterInstance.get()``, the daemon's), tagged with the trial's partition, so the UI
shows it like any other run. The shared assets are materialized first when missing or stale
(their source changed since), and the trial's partition is added when missing. For every stage
the command prints, from the run's
own events, one line: ✓ or ✗, the stage, its duration (between the stage's events and the
previous stage's) and the gate's deciding figure; then a summary per trial.

Exit status: 0 when every trial completed, stopped at a gate (a rejection is a result, its
reason printed) or waits for paper trading; 1 on an infrastructure error (the typed error and
its cause printed, as the run's failure recorded them); 2 on a usage error. With ``--json``
the lines go to stderr and stdout gets one JSON document: every trial's outcome and steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import typing
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import dagster as dg

from resources.dagster_private import PARTITION_NAME_TAG, DagsterHomeNotSetError, SerializableErrorInfo
from gauntlet.config import load_config
from gauntlet.environment import build_resources
from pipeline_assets.jobs import shared_job, trial_job
from pipeline_assets.partitions import trials_partitions_def
from pipeline_assets.trial_keys import trial_partition_key
from pipeline_assets.shared_assets import (
    SHARED_ASSET_KEYS,
    awaited_instrument,
    missing_instruments,
    stale_instruments,
)
from resources.market_data import InstrumentsResource
from pipeline_assets.optuna_trial_stage import OPTUNA_TRIAL
from pipeline_assets.stage_table import GATE_CHECKS, TRIAL_ASSET_KEYS
from pipeline_assets.trial_assets import DRY_RUN_TAG, STUDY_TAG
from resources.optuna_study import StudyCursor, StudySourceResource
from simulations.errors import ConfigurationError, PipelineError

# The shared assets return Output(data_version=...) knowingly (beta in Dagster 1.13); in a
# terminal the warning would repeat on every shared run this command starts.
warnings.filterwarnings("ignore", message="Parameter `data_version`", category=dg.BetaWarning)

EXIT_OK = 0
EXIT_FAILED = 1

#: Every trial stage, in pipeline order (the stage table); ``--until`` selects a prefix.
STAGES: tuple[dg.AssetKey, ...] = TRIAL_ASSET_KEYS
STAGE_NAMES: tuple[str, ...] = tuple(key.to_user_string() for key in STAGES)

#: Tag on the runs this command starts: that it did.
SOURCE_TAG = "gauntlet/source"
SOURCE = "gauntlet run"

#: Dagster's console logger would print every event; this command prints its own lines, and
#: every event is still recorded in the instance for the UI.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

Status = Literal["completed", "rejected", "pending", "stopped", "failed"]
_MARKS = {True: "✓", False: "✗", None: "…"}
_STEP_WIDTH = max(len(name) for name in (*STAGE_NAMES, *(check.name for check in GATE_CHECKS)))


@dataclass(frozen=True)
class StepLine:
    """One printed line: a stage or a gate, passed (✓), failed (✗) or pending (…)."""

    ok: bool | None
    step: str
    seconds: float | None = None
    text: str = ""

    def render(self) -> str:
        duration = f"{self.seconds:.2f}s" if self.seconds is not None else ""
        return f"  {_MARKS[self.ok]} {self.step:<{_STEP_WIDTH}} {duration:>7}  {self.text}".rstrip()

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "step": self.step, "seconds": self.seconds, "text": self.text}


@dataclass
class _Stage:
    """What one run recorded for one asset (of one partition)."""

    start: float
    end: float
    materialization: dg.AssetMaterialization | None = None
    observation: dg.AssetObservation | None = None
    check: dg.AssetCheckEvaluation | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class RunReading:
    """A run's events, per asset, and the first failure it recorded."""

    stages: dict[dg.AssetKey, _Stage] = field(default_factory=dict)
    failure: str | None = None


@dataclass(frozen=True)
class TrialOutcome:
    """Where one trial's run left it."""

    key: str
    run_id: str
    seconds: float
    lines: list[StepLine]
    status: Status
    detail: str

    def summary(self) -> str:
        return f"{self.key}: {self.status} — {self.detail} ({self.seconds:.1f}s, run {self.run_id})"

    def to_json(self) -> dict[str, Any]:
        return {
            "partition_key": self.key,
            "run_id": self.run_id,
            "seconds": self.seconds,
            "status": self.status,
            "detail": self.detail,
            "steps": [line.to_json() for line in self.lines],
        }


# ------------------------------------------------------------------------------ reading runs
def _payload(
    event: dg.DagsterEvent | None,
) -> dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckEvaluation | None:
    if event is None:
        return None
    if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
        return event.step_materialization_data.materialization
    if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
        return event.asset_observation_data.asset_observation
    if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        return event.asset_check_evaluation_data
    return None


def _error_text(error: SerializableErrorInfo) -> str:
    # Dagster wraps an exception raised in a step; the user's error is the innermost cause.
    while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
        error = error.cause
    text = error.message.strip()
    qualified, _, rest = text.partition(": ")
    if rest and error.cls_name and qualified.endswith(error.cls_name):
        text = rest
    return f"{error.cls_name}: {text}"


def _failure(event: dg.DagsterEvent) -> str | None:
    """The typed error an event records, with its cause, or None."""
    if event.event_type == dg.DagsterEventType.STEP_FAILURE:
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and user.description:
            # A PipelineError becomes a dg.Failure whose metadata names the error's type(s).
            kinds = user.metadata.get("error_type") or user.metadata.get("error_types")
            kind = kinds.value if kinds is not None else "Failure"
            return f"{', '.join(kind) if isinstance(kind, list) else kind}: {user.description}"
        return _error_text(data.error) if data.error else event.message
    if event.event_type == dg.DagsterEventType.RUN_FAILURE:
        data = event.job_failure_data
        return _error_text(data.error) if data.error else event.message
    if event.event_type == dg.DagsterEventType.ENGINE_EVENT and event.engine_event_data.error:
        return _error_text(event.engine_event_data.error)
    return None


def read_run(instance: dg.DagsterInstance, run_id: str, partition: str | None) -> RunReading:
    """The assets ``run_id`` recorded for ``partition`` (None: unpartitioned), with durations.

    A stage lasts from the previous stage's last event (for the first stage: from the event
    before it) to its own last event, so the durations add up to the step's computing time.
    """
    reading = RunReading()
    previous: float | None = None
    last_stage_end: float | None = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        payload = _payload(event)
        if payload is not None and payload.partition == partition:
            stage = reading.stages.get(payload.asset_key)
            if stage is None:
                start = last_stage_end if last_stage_end is not None else previous
                stage = reading.stages[payload.asset_key] = _Stage(start=start or entry.timestamp, end=entry.timestamp)
            stage.end = last_stage_end = entry.timestamp
            if isinstance(payload, dg.AssetMaterialization):
                stage.materialization = payload
            elif isinstance(payload, dg.AssetObservation):
                stage.observation = payload
            else:
                stage.check = payload
        elif event is not None and reading.failure is None:
            reading.failure = _failure(event)
        previous = entry.timestamp
    return reading


def _text(value: dg.MetadataValue | None) -> str:
    return str(value.value) if value is not None else ""


def _decision(materialization: dg.AssetMaterialization) -> str:
    """A deployment record's decision and why."""
    metadata = materialization.metadata
    return f"{_text(metadata.get('decision'))}: {_text(metadata.get('reason'))}"


def deciding_figure(check: dg.AssetCheckEvaluation) -> str:
    """The figure that decided a gate: the failed thresholds, or the closest one that passed."""
    metadata = check.metadata
    if _text(metadata.get("verdict")) == "disabled":
        return "disabled"
    if not check.passed:
        return check.description or "failed"
    table = metadata.get("thresholds")
    rows = [record.data for record in table.value.records] if isinstance(table, dg.TableMetadataValue) else []
    grade = _text(metadata.get("grade"))
    prefix = f"grade {grade}; " if grade else ""
    if not rows:
        return prefix + (check.description or "passed")
    # Margins are the signed distance to each threshold: the smallest is the closest call.
    row = min(rows, key=lambda r: float(r["margin"]))
    comparator, _, threshold = str(row["rule"]).partition(" ")
    bound = "≥ min" if comparator == ">=" else "≤ max"
    return f"{prefix}{row['threshold']} {float(row['value']):.4g} {bound} {float(threshold):.4g}"


def trial_lines(reading: RunReading) -> list[StepLine]:
    """One line per stage the run reached, and one more for a gate that rejected the trial."""
    lines = []
    for key in STAGES:
        stage = reading.stages.get(key)
        if stage is None:
            continue
        name = key.to_user_string()
        if stage.materialization is None and stage.observation is not None:
            lines.append(StepLine(None, name, stage.seconds, stage.observation.description or "pending"))
        elif stage.check is not None and not stage.check.passed:
            lines.append(StepLine(True, name, stage.seconds))
            lines.append(StepLine(False, stage.check.check_name, None, deciding_figure(stage.check)))
            break  # later assets only record that the trial stopped here
        elif stage.check is not None:
            lines.append(StepLine(True, name, stage.seconds, deciding_figure(stage.check)))
        elif key == STAGES[-1] and stage.materialization is not None:
            lines.append(StepLine(True, name, stage.seconds, _decision(stage.materialization)))
        else:
            lines.append(StepLine(True, name, stage.seconds))
    return lines


def _outcome(reading: RunReading, success: bool, until: dg.AssetKey) -> tuple[Status, str]:
    if not success:
        return "failed", reading.failure or "the run failed without recording why; open it in the UI"
    for key in STAGES:
        stage = reading.stages.get(key)
        if stage is None:
            break
        if stage.check is not None and not stage.check.passed:
            return "rejected", f"{stage.check.check_name}: {deciding_figure(stage.check)}"
        if stage.materialization is None and stage.observation is not None:
            return "pending", f"{stage.observation.description}; the paper_session_sensor grades it once mature"
    record = reading.stages.get(STAGES[-1])
    if record is not None and record.materialization is not None:
        return "completed", f"deployment {_decision(record.materialization)}"
    return "stopped", f"after {until.to_user_string()} (--until)"


# ---------------------------------------------------------------------------------- running
@contextlib.contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    try:
        instance = dg.DagsterInstance.get()
    except DagsterHomeNotSetError as exc:
        raise ConfigurationError(
            "DAGSTER_HOME is not set: point it at the Dagster instance directory "
            "(`make up` uses $GAUNTLET_HOME/dagster)"
        ) from exc
    with instance:
        yield instance


def _requested(
    args: argparse.Namespace, optuna: StudySourceResource, instance: dg.DagsterInstance
) -> list[tuple[str, str]]:
    """(study, partition key) of every trial to run."""
    studies = optuna.list_studies()
    if args.study is not None and args.study not in studies:
        raise ConfigurationError(
            f"study {args.study!r} is not watched: the Optuna storage has no study of that name, or "
            f"optuna.studies leaves it out (watched: {', '.join(studies) or 'none'})"
        )
    if args.trial is not None:
        # Raises TrialDataError naming the problem when the trial is missing or not COMPLETE.
        optuna.get_trials(args.study, [args.trial])
        return [(args.study, trial_partition_key(args.study, args.trial))]
    done = instance.get_materialized_partitions(OPTUNA_TRIAL)
    requested = []
    for study in [args.study] if args.study else studies:
        batch = optuna.read_new_trials(study, StudyCursor())
        for error in batch.rejected:
            print(f"! trial not admitted: {error}", file=sys.stderr)
        keys = (trial_partition_key(study, snapshot.number) for snapshot in batch.completed)
        requested += [(study, key) for key in keys if key not in done]
    return sorted(requested, key=lambda pair: pair[1])


def _ensure_shared(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    instruments: InstrumentsResource,
    studies: set[str],
    out: TextIO,
) -> bool:
    """Materialize the shared assets of the instruments ``studies`` trade where they are missing,
    or stale (bars arrived since, which an open paper session is to trade); False (and why,
    printed) if a missing one failed. A stale one that fails to build (a bad bar in the feed)
    keeps its last good build, as under the daemon."""
    ok = True
    # Only the instruments the studies trade: a stale check reads each one's source.
    traded = {awaited_instrument(study, instruments, instruments.names()) for study in studies} - {None}
    missing = [name for name in missing_instruments(instance, instruments) if name in traded]
    built = sorted(traded - set(missing))
    for name in [*missing, *stale_instruments(instance, instruments, names=built)]:
        result = defs.resolve_job_def(shared_job.name).execute_in_process(
            instance=instance,
            partition_key=name,
            run_config=QUIET_RUN_CONFIG,
            tags={SOURCE_TAG: SOURCE},
            raise_on_error=False,
        )
        reading = read_run(instance, result.run_id, name)
        print(f"shared assets of instrument {name} (every trial of its studies sees the same data):", file=out)
        for key in SHARED_ASSET_KEYS:
            if key in reading.stages:
                print(StepLine(True, key.to_user_string(), reading.stages[key].seconds).render(), file=out)
        if not result.success:
            print(StepLine(False, shared_job.name, None, reading.failure or "failed").render(), file=out)
            kept = "" if name in missing else "; its trials go on with the last good build"
            print(f"shared assets of {name}: failed — {reading.failure} (run {result.run_id}){kept}", file=out)
        ok = ok and (result.success or name not in missing)
    return ok


def run_trial(
    job: dg.JobDefinition, instance: dg.DagsterInstance, study: str, key: str, *, until: dg.AssetKey, dry_run: bool
) -> TrialOutcome:
    """One run of ``job`` for the trial ``key``, through ``until``."""
    tags = {PARTITION_NAME_TAG: key, STUDY_TAG: study, "gauntlet/trials": "1", SOURCE_TAG: SOURCE}
    if dry_run:
        tags[DRY_RUN_TAG] = "true"
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        tags=tags,
        asset_selection=list(STAGES[: STAGES.index(until) + 1]),
        run_config=QUIET_RUN_CONFIG,
        raise_on_error=False,
    )
    seconds = time.perf_counter() - started
    reading = read_run(instance, result.run_id, key)
    lines = trial_lines(reading)
    status, detail = _outcome(reading, result.success, until)
    if status == "failed":
        lines.append(StepLine(False, "trial_gauntlet", None, f"failed: {detail}"))
    return TrialOutcome(key=key, run_id=result.run_id, seconds=seconds, lines=lines, status=status, detail=detail)


def _run_trials(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    trials: Sequence[tuple[str, str]],
    *,
    until: dg.AssetKey,
    dry_run: bool,
    out: TextIO,
) -> list[TrialOutcome]:
    """Each trial in its own run, printing its steps; with several, k/N and the time left."""
    new = [key for _, key in trials if not instance.has_dynamic_partition(trials_partitions_def.name, key)]
    if new:
        instance.add_dynamic_partitions(trials_partitions_def.name, new)
    job = defs.resolve_job_def(trial_job.name)
    outcomes = []
    started = time.perf_counter()
    for done, (study, key) in enumerate(trials, start=1):
        progress = f"[{done}/{len(trials)}] " if len(trials) > 1 else ""
        print(f"{progress}{key} (study {study!r}{', dry run' if dry_run else ''})", file=out, flush=True)
        outcome = run_trial(job, instance, study, key, until=until, dry_run=dry_run)
        print("\n".join(line.render() for line in outcome.lines), file=out)
        print(outcome.summary(), file=out)
        if done < len(trials):
            left = (time.perf_counter() - started) / done * (len(trials) - done)
            print(f"{done}/{len(trials)} done, about {left:.0f}s left", file=out, flush=True)
        outcomes.append(outcome)
    return outcomes


def _run(args: argparse.Namespace) -> int:
    # With --json the lines a person reads go to stderr: stdout is one JSON document.
    out = sys.stderr if args.json else sys.stdout
    config = load_config().config
    if args.dry_run:
        config = config.model_copy(update={"deployment": config.deployment.model_copy(update={"dry_run": True})})
    resources = build_resources(config)
    # Imported here: the definitions import every asset and sensor module, which only a valid
    # configuration needs (an invalid one is reported above, at once).
    from pipeline_assets.definitions import build_definitions

    defs = build_definitions(config=config, resources=resources)
    until = STAGES[STAGE_NAMES.index(args.until)]
    outcomes: list[TrialOutcome] = []
    shared_ok = True
    with _instance() as instance, dg.build_resources({"optuna_study": resources["optuna_study"]}) as initialized:
        trials = _requested(args, initialized.optuna_study, instance)
        if not trials:
            print("no new complete trials: every one is materialized already", file=out)
        else:
            studies = {study for study, _ in trials}
            shared_ok = _ensure_shared(defs, instance, resources["instruments"], studies, out)
            if shared_ok:
                outcomes = _run_trials(defs, instance, trials, until=until, dry_run=args.dry_run, out=out)
    counts = {status: sum(o.status == status for o in outcomes) for status in typing.get_args(Status)}
    if len(outcomes) > 1:
        print(f"{len(outcomes)} trials: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n), file=out)
    code = EXIT_FAILED if not shared_ok or counts["failed"] else EXIT_OK
    if args.json:
        document = {
            "trials": [o.to_json() for o in outcomes],
            "summary": {"trials": len(outcomes), **counts, "shared_assets_ok": shared_ok},
            "exit_status": code,
        }
        print(json.dumps(document, separators=(",", ":")))
    return code


def _trial_number(text: str) -> int:
    number = int(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"a trial number is >= 0, got {text}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gauntlet run",
        description="Take a trial through the gauntlet now, in this process, as a run in the Dagster instance.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=_trial_number, metavar="N", help="the trial's number (with --study)")
    which.add_argument(
        "--all-new", action="store_true", help="every COMPLETE trial not materialized yet, one run each"
    )
    parser.add_argument("--study", help="the study (required with --trial; with --all-new, only this study)")
    parser.add_argument(
        "--until",
        choices=STAGE_NAMES,
        default=STAGE_NAMES[-1],
        metavar="STAGE",
        help=f"stop after this stage, one of {', '.join(STAGE_NAMES)} (default: the last)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="decide deployment as a dry run: record it, change nothing live"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (every trial's outcome and steps); lines go to stderr"
    )
    return parser


def run_main(argv: Sequence[str] | None = None) -> int:
    """``gauntlet run``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.trial is not None and args.study is None:
            parser.error("--trial needs --study")
    except SystemExit as exc:
        # argparse exits on --help (0) and usage errors (2, already printed); returning the
        # status keeps this callable in process like every other outcome.
        return int(exc.code or 0)
    try:
        return _run(args)
    except PipelineError as exc:
        print(f"gauntlet run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
