"""``gauntlet calibrate``: the gate chain's false-positive and false-negative rates, from a terminal.

    gauntlet calibrate [--studies N] [--trials-per-study N [N ...]] [--planted-sharpe S [S ...]]
                       [--candidates N] [--seed S] [--workers N] [--json] [--out report.json]
                       [--horizons D [D ...]] [--horizon-sessions N] [--horizon-confidence C]
                       [--horizons-only] [--chart PATH]

Simulates ``--studies`` studies on the null market and as many on each planted-edge market,
each with its own Optuna search, and runs their best trials through the gate chain of the
configured policy (``GAUNTLET_GATE_POLICY``, else the shipped defaults); see
``pipeline_assets/calibration_assets.py``. Prints a readable report (or the report as JSON
with ``--json``), optionally writes the JSON report to ``--out``, and shows progress on
stderr. Exit status: 0 on success, 1 on a `PipelineError`, 2 on a usage error.

The report ends with the forward paper-trading horizon curve
(:func:`simulations.calibration.horizon_curve`, key ``horizon_curve`` in the JSON): the
configured paper gate's sequential test (its floor, futility bound and ``max_days``) at
``--horizon-confidence`` (0.99 by default: at most 1 % false positives) on simulated forward
sessions, with the false negatives at the first planted Sharpe ratio and the false positives
at the floor after each of ``--horizons`` market days. ``--horizons-only`` measures the curve
alone (seconds) and ``--chart PATH`` draws it as a PNG (README's
``docs/horizon_curve.png``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from pipeline_assets.calibration_assets import caught_rows, measurement_rows, run_calibration
from pipeline_assets.plots import pyplot
from gauntlet.config import load_config
from gauntlet.environment import build_resources
from resources.artifacts import atomic_write_bytes
from simulations.calibration import (
    STAGES,
    CalibrationReport,
    CalibrationSettings,
    EdgeKind,
    HorizonCurve,
    SessionRate,
    horizon_curve,
    rate_table,
)
from simulations.constants import (
    CALIBRATION_CANDIDATES_PER_STUDY,
    CALIBRATION_PLANTED_SHARPES,
    CALIBRATION_SEED,
    CALIBRATION_STUDIES,
    CALIBRATION_TRIALS_PER_STUDY,
    HORIZON_CONFIDENCE,
    HORIZON_DAYS,
    HORIZON_SESSIONS,
)
from simulations.errors import ConfigurationError, PipelineError
from simulations.gates import SequentialTestPolicy

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
        help="planted annualised Sharpe ratios; the first is the target's and the horizon curve's "
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
    horizons = parser.add_argument_group(
        "forward paper trading",
        "the paper gate's sequential test on simulated forward sessions: false negatives at the planted Sharpe "
        "ratio and false positives at the test's floor after each horizon",
    )
    horizons.add_argument(
        "--horizons", type=int, nargs="+", default=list(HORIZON_DAYS), metavar="DAYS",
        help=f"market days of forward trading, strictly ascending (default {' '.join(map(str, HORIZON_DAYS))})",
    )
    horizons.add_argument(
        "--horizon-sessions", type=int, default=HORIZON_SESSIONS, metavar="N",
        help=f"simulated sessions per arm (default {HORIZON_SESSIONS})",
    )
    horizons.add_argument(
        "--horizon-confidence", type=float, default=HORIZON_CONFIDENCE, metavar="C",
        help="confidence of the test in place of the configured one; false positives stay at most 1 - C at every "
        f"horizon (default {HORIZON_CONFIDENCE:g})",
    )
    horizons.add_argument(
        "--horizons-only", action="store_true",
        help="measure the horizon curve alone (seconds), not the simulated studies (minutes)",
    )
    horizons.add_argument("--chart", type=Path, metavar="PATH", help="write the horizon curve's chart (PNG) to PATH")
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


def _rate(rate: SessionRate, digits: int) -> str:
    return f"{rate.rate:.{digits}%} [{rate.ci_low:.{digits}%}, {rate.ci_high:.{digits}%}]"


def render_horizon_curve(curve: HorizonCurve, *, configured: SequentialTestPolicy) -> list[str]:
    """The horizon curve as text lines; ``configured`` is the gate's own test, named when it differs."""
    test = curve.sequential
    columns = [
        "days",
        f"false negatives: SR {curve.planted_sharpe:g} not promoted",
        f"false positives: SR {test.sharpe_floor:g} (the floor) promoted",
    ]
    rows = [
        dict(zip(columns, (row.days, _rate(row.false_negative, 1), _rate(row.false_positive, 2)), strict=True))
        for row in curve.rows
    ]
    lines = [
        f"Forward paper trading: the sequential test at confidence {test.confidence:g} (promoted once the e-value "
        f"reaches {curve.threshold:g}; floor {test.sharpe_floor:g}, futility bound {'on' if test.futility else 'off'}"
        f", max_days {test.max_days or 'none'}) on {curve.n_sessions:,} simulated sessions per arm of "
        f"{curve.bars_per_day} hourly bars a market day, Student-t ({curve.tail_dof:g} dof) tails; seed {curve.seed}; "
        "rate [95 % CI]",
        *_table(rows, columns),
        f"  {curve.statement}",
    ]
    if not configured.enabled:
        lines.append(
            "  The configured paper gate does not run this test (gates.paper.sequential.enabled: false): the curve "
            "is what it would do if it did."
        )
    if configured.confidence != test.confidence:
        lines.append(
            f"  The configured test's confidence is {configured.confidence:g}; --horizon-confidence "
            f"{configured.confidence:g} measures it."
        )
    return lines


def horizon_curve_png(curve: HorizonCurve) -> bytes:
    """The horizon curve as a PNG: false negatives (left) and false positives with their bound
    (right) against market days of forward trading, 95 % intervals as bars."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    days = [row.days for row in curve.rows]
    panels = (
        (axes[0], [row.false_negative for row in curve.rows], "tab:red",
         f"false negatives: true SR {curve.planted_sharpe:g} not promoted"),
        (axes[1], [row.false_positive for row in curve.rows], "tab:blue",
         f"false positives: SR {curve.sequential.sharpe_floor:g} (the floor) promoted"),
    )
    for ax, rates, colour, title in panels:
        values = np.array([r.rate for r in rates])
        errors = np.array([values - [r.ci_low for r in rates], [r.ci_high for r in rates] - values])
        ax.errorbar(days, 100 * values, yerr=100 * errors, marker="o", capsize=3, color=colour, label="measured, 95 % CI")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("market days of forward paper trading")
        ax.set_ylabel("sessions (%)")
        ax.set_xlim(0, days[-1] * 1.04)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 102)
    alpha = 100 * curve.alpha
    axes[1].axhline(alpha, linestyle="--", color="grey", label=f"bound 1 - confidence = {alpha:.3g} %")
    axes[1].set_ylim(0, 1.5 * max(alpha, 100 * max(r.false_positive.ci_high for r in curve.rows)))
    for ax in axes:
        ax.legend(fontsize=7, loc="lower left" if ax is axes[0] else "upper left")
    fig.suptitle(
        f"Sequential test at confidence {curve.sequential.confidence:g}, {curve.n_sessions:,} hourly 24/7 "
        f"sessions per arm (seed {curve.seed})",
        fontsize=9,
    )
    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return buffer.getvalue()


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
    except PipelineError as exc:
        print(f"gauntlet calibrate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    started = time.perf_counter()
    try:
        # Before the studies: a bad horizon argument is a usage error, not one found minutes later.
        curve = horizon_curve(
            horizons=args.horizons,
            n_sessions=args.horizon_sessions,
            planted_sharpe=args.planted_sharpe[0],
            confidence=args.horizon_confidence,
            sequential=policy.paper.sequential,
            seed=args.seed,
        )
    except ConfigurationError as exc:
        print(f"gauntlet calibrate: error: {exc.cause}", file=sys.stderr)
        return EXIT_USAGE
    curve_lines = [
        *render_horizon_curve(curve, configured=policy.paper.sequential),
        f"  Time: {time.perf_counter() - started:.1f} s for the horizon curve",
    ]
    if args.chart is not None:
        atomic_write_bytes(args.chart, horizon_curve_png(curve))
    payload: dict[str, Any] = {"horizon_curve": curve.model_dump(mode="json")}
    lines = curve_lines
    if not args.horizons_only:
        try:
            report = run_calibration(settings=settings, policy=policy, progress=progress, workers=args.workers)
        except PipelineError as exc:
            print(f"gauntlet calibrate: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        payload = {**report.model_dump(mode="json"), **payload}
        lines = [*render(report), "", *curve_lines]
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if args.out is not None:
        atomic_write_bytes(args.out, text.encode())
    print(text if args.json else "\n".join(lines))
    return EXIT_OK
