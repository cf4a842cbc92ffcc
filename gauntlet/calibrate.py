"""``gauntlet calibrate``: the gate chain's false-positive and false-negative rates, from a terminal.

    gauntlet calibrate [--studies N] [--trials-per-study N [N ...]] [--planted-sharpe S [S ...]]
                       [--candidates N] [--seed S] [--workers N] [--json] [--out report.json]

Simulates ``--studies`` studies on the null market and as many on each planted-edge market,
each with its own Optuna search, and runs their best trials through the gate chain of the
configured policy (``GAUNTLET_GATE_POLICY``, else the shipped defaults); see
``pipeline_assets/calibration_assets.py``. Prints a readable report (or the report as JSON
with ``--json``), optionally writes the JSON report to ``--out``, and shows progress on
stderr. Exit status: 0 on success, 1 on a `PipelineError`, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline_assets.calibration_assets import caught_rows, measurement_rows, run_calibration
from gauntlet.config import load_config
from gauntlet.environment import build_resources
from resources.artifacts import atomic_write_bytes
from simulations.calibration import STAGES, CalibrationReport, CalibrationSettings, EdgeKind, rate_table
from simulations.constants import (
    CALIBRATION_CANDIDATES_PER_STUDY,
    CALIBRATION_PLANTED_SHARPES,
    CALIBRATION_SEED,
    CALIBRATION_STUDIES,
    CALIBRATION_TRIALS_PER_STUDY,
)
from simulations.errors import PipelineError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The ``gauntlet calibrate`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="gauntlet calibrate",
        description="False-positive and false-negative rates of the gate chain on simulated studies.",
    )
    parser.add_argument(
        "--studies", type=int, default=CALIBRATION_STUDIES, metavar="N",
        help=f"simulated studies per market: the null market and each planted Sharpe (default {CALIBRATION_STUDIES})",
    )
    parser.add_argument(
        "--trials-per-study", type=int, nargs="+", default=list(CALIBRATION_TRIALS_PER_STUDY), metavar="N",
        help="Optuna trials per study, one or more ascending counts; the last is the target's "
        f"(default {' '.join(map(str, CALIBRATION_TRIALS_PER_STUDY))})",
    )
    parser.add_argument(
        "--planted-sharpe", type=float, nargs="+", default=list(CALIBRATION_PLANTED_SHARPES), metavar="S",
        help="planted annualised Sharpe ratios; the first is the target's "
        f"(default {' '.join(map(str, CALIBRATION_PLANTED_SHARPES))})",
    )
    parser.add_argument(
        "--candidates", type=int, default=CALIBRATION_CANDIDATES_PER_STUDY, metavar="N",
        help=f"best trials per study that face the gates (default {CALIBRATION_CANDIDATES_PER_STUDY})",
    )
    parser.add_argument("--seed", type=int, default=CALIBRATION_SEED, help=f"run seed (default {CALIBRATION_SEED})")
    parser.add_argument(
        "--edge", choices=typing.get_args(EdgeKind), default="trend",
        help="the edge planted markets carry: trend (slow momentum earns it) or autocorrelation "
        "(a one-bar rule earns it) (default trend)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, metavar="N",
        help="processes that simulate studies; the report does not depend on it (default: one per core)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--out", type=Path, metavar="PATH", help="also write the JSON report to PATH")
    return parser


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    cells = [[str(column) for column in columns]] + [[str(row.get(c, "—")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]


def render(report: CalibrationReport) -> list[str]:
    """The report as text lines."""
    settings = report.settings
    planted = ", ".join(f"SR {s:g} {settings.edge}" for s in settings.planted_sharpes) or "none"
    lines = [
        f"Gate calibration: {report.studies} simulated studies ({settings.n_studies} per market; planted {planted}), "
        f"{', '.join(map(str, settings.trials_per_study))} Optuna trials per study, best "
        f"{settings.candidates_per_study} through the gates; seed {settings.seed}",
        "",
        "False positives: null market, a study promotes a trial (rate [95 % Clopper-Pearson CI])",
        *_table(rate_table(rows=report.rates, error="false_positive"), ["n_trials", "candidates", "studies", *STAGES]),
    ]
    if settings.planted_sharpes:
        lines += [
            "",
            "False negatives: planted market, a study promotes nothing (rate [95 % CI])",
            *_table(
                rate_table(rows=report.rates, error="false_negative"),
                ["market", "n_trials", "candidates", "studies", *STAGES],
            ),
        ]
    lines += [
        "",
        "Which gate stops the judged trials (first failing gate, as the pipeline stops them)",
        *_table(
            caught_rows(report),
            ["market", "n_trials", "candidates", "trials", "backtest_gate", "cge_gate", "paper_trading_gate", "passed"],
        ),
        "",
        f"At the target ({settings.target_trials} trials per study"
        + (f", planted SR {settings.target_sharpe:g}" if settings.target_sharpe is not None else "")
        + "): promoted",
        *_table(
            measurement_rows(report),
            [
                "policy", "false_positive", "false_negative", "fn_planted_strategy", "fp_holdout", "fn_holdout",
                "meets_target",
            ],
        ),
    ]
    if report.recommended is not None:
        lines += [
            "  recommended GAUNTLET_GATE_POLICY overrides (chosen on even-numbered studies, holdout = odd-numbered):",
            f"  {json.dumps(report.recommended.overrides, sort_keys=True)}",
        ]
    if report.track_record is not None:
        lines += ["", "Track record", f"  {report.track_record.statement}"]
    for edge in report.planted_edges:
        follows = "hidden trend spells" if edge.edge == "trend" else "the previous bar's sign"
        lines.append(
            f"  planted SR {edge.sharpe:g}: drift {edge.drift_per_vol:.4f} bar volatilities per bar following {follows} "
            f"(planted rule: momentum lookback {edge.params['lookback']}); Sharpe standard error "
            f"{edge.standard_error:.2f} over {edge.sample_years:g} years (seed {edge.sample_seed})"
        )
    lines += [
        "",
        f"Time: {report.seconds:.1f} s, {report.seconds_per_study:.2f} s per simulated study "
        f"({report.cpu_seconds_per_study:.2f} s of CPU)",
    ]
    return lines


def calibrate_main(argv: list[str]) -> int:
    """Run ``gauntlet calibrate`` with ``argv`` (the arguments after ``calibrate``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code or 0)
    if args.workers < 1:
        print(f"gauntlet calibrate: error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = CalibrationSettings(
            n_studies=args.studies,
            trials_per_study=tuple(args.trials_per_study),
            planted_sharpes=tuple(args.planted_sharpe),
            edge=args.edge,
            candidates_per_study=args.candidates,
            seed=args.seed,
        )
    except ValidationError as exc:
        print(f"gauntlet calibrate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def progress(done: int, total: int, seconds: float) -> None:
        line = f"\rcalibrate: {done}/{total} studies, {seconds / done:.2f} s per study"
        print(line, end="\n" if done == total else "", file=sys.stderr, flush=True)

    try:
        policy = build_resources(load_config().config)["gate_policy"].policy()
        report = run_calibration(settings=settings, policy=policy, progress=progress, workers=args.workers)
    except PipelineError as exc:
        print(f"gauntlet calibrate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    payload = report.model_dump_json(indent=2)
    if args.out is not None:
        atomic_write_bytes(args.out, payload.encode())
    print(payload if args.json else "\n".join(render(report)))
    return EXIT_OK
