"""`gate_calibration`: how often the gate chain promotes a strategy without an edge, and blocks one with.

`run_calibration` simulates many studies end to end on markets with a known truth
(:mod:`simulations.calibration`): each runs its own Optuna search
(:mod:`simulations.calibration_train`), and its best trials go through the gauntlet the
trial assets run -- :func:`simulations.gauntlet.evaluate_trial` with every gate judged, paper
sessions on a :class:`~simulations.gauntlet.ReplayVenue` (what the paper broker's replay clock
does) -- and the deployment rules of ``simulations.deployment.decide``. Every gate judges
every candidate, so each gate's rates are known on their own as well as in the chain.

The 200 CGE equilibria are solved once per worker with the ``cge_scenarios`` asset's own code
and default configuration; their price paths are built on each study's own market, as
production builds them on the instrument's; the planted edges are shared by every study.
"""

import contextlib
import itertools
import json
import multiprocessing
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from pipeline_assets.metadata import figure_png, png_markdown, records_table
from pipeline_assets.plots import pyplot
from pipeline_assets.reporting_assets import REPORTING_GROUP
from pipeline_assets.shared_assets import CgeScenarioConfig, solve_stress_scenarios, stress_scenarios_on
from resources.gate_policy import GatePolicyResource
from simulations.calibration import (
    PLANTED_PARAMS,
    PLANTED_STRATEGY,
    STAGES,
    CalibrationReport,
    EdgeKind,
    CalibrationSettings,
    CandidateRecord,
    CandidateKind,
    MarketKind,
    PlantedEdge,
    build_report,
    calibration_windows,
    deployment_decision,
    plant_edge,
    rate_table,
    study_label,
    study_seeds,
)
from simulations.calibration_train import run_study
from simulations.cge.scenarios import ScenarioSet
from simulations.constants import (
    CALIBRATION_CANDIDATES_PER_STUDY,
    CALIBRATION_MAX_FALSE_NEGATIVE_RATE,
    CALIBRATION_MAX_FALSE_POSITIVE_RATE,
    CALIBRATION_PLANTED_SHARPES,
    CALIBRATION_SEED,
    CALIBRATION_STUDIES,
    CALIBRATION_TRIALS_PER_STUDY,
    CGE_PATH_SEED,
    CGE_SCENARIO_SEED,
    DEFAULT_FEE_BPS,
    DEFAULT_SLIPPAGE_BPS,
    DEFAULT_TRAIN_DAYS,
)
from simulations.errors import ConfigurationError
from simulations.gates import GatePolicy
from simulations.gauntlet import GauntletInputs, ReplayVenue, StageResult, StudyContext, TrialCase, evaluate_trial, study_contexts
from simulations.in_sample import in_sample_sharpe
from simulations.strategies import BUILT_IN_STRATEGIES
from simulations.market import MarketWindows
from simulations.trial import TrialSnapshot, TrialState

GATE_CALIBRATION = dg.AssetKey("gate_calibration")

#: Called as studies finish with (studies done, studies in the run, seconds so far).
Progress = Callable[[int, int, float], None]


@dataclass
class _Judge:
    """Takes trials through the gauntlet; remembers what does not change between study sizes.

    The CGE equilibria are solved once; a trial's stress paths, backtest (given its study
    context) and paper session depend on its study's market, so they are cached per study.
    """

    policy: GatePolicy
    scenario_set: ScenarioSet
    sam_sha256: str

    def study(
        self, *, index: int, market: MarketKind, planted_sharpe: float | None, drift_per_vol: float,
        settings: CalibrationSettings,
    ) -> tuple[list[CandidateRecord], MarketWindows]:
        """Simulate study ``index`` on one market and judge its best trials at every study size."""
        seeds = study_seeds(seed=settings.seed, study=index)
        windows = calibration_windows(
            seed=seeds.market, drift_per_vol=drift_per_vol, train_days=settings.train_days, edge=settings.edge
        )
        records = self.market(
            windows=windows, index=index, market=market, planted_sharpe=planted_sharpe, settings=settings,
            sampler_seed=seeds.sampler,
        )  # fmt: skip
        return records, windows

    def market(
        self, *, windows: MarketWindows, index: int, market: MarketKind, planted_sharpe: float | None,
        settings: CalibrationSettings, sampler_seed: int,
    ) -> list[CandidateRecord]:
        """One study's search on ``windows`` and its best trials judged at every study size."""
        name = study_label(planted_sharpe=planted_sharpe, study=index)
        snapshots = run_study(windows=windows, n_trials=settings.target_trials, seed=sampler_seed, study_name=name)
        scenarios = stress_scenarios_on(
            scenario_set=self.scenario_set, sam_sha256=self.sam_sha256, config=CgeScenarioConfig(), market_data=windows
        )
        inputs = GauntletInputs(
            windows=windows, scenarios=scenarios, policy=self.policy, fee_bps=DEFAULT_FEE_BPS,
            slippage_bps=DEFAULT_SLIPPAGE_BPS,
            paper=ReplayVenue(
                windows=windows, fee_bps=DEFAULT_FEE_BPS, slippage_bps=DEFAULT_SLIPPAGE_BPS,
                strategies=BUILT_IN_STRATEGIES,
            ),
            strategies=BUILT_IN_STRATEGIES,
        )
        backtests: dict[tuple[str, StudyContext], StageResult] = {}
        stresses: dict[str, StageResult] = {}
        papers: dict[str, StageResult] = {}
        # Deflation counts each trial's own in-sample Sharpe ratio, as the pipeline does.
        sharpes = [
            (t.number, in_sample_sharpe(trial=TrialCase(key=name, snapshot=t), windows=windows,
                                        fee_bps=DEFAULT_FEE_BPS, slippage_bps=DEFAULT_SLIPPAGE_BPS,
                                        strategies=BUILT_IN_STRATEGIES))
            for t in snapshots
        ]
        records = []
        for n_trials in settings.trials_per_study:
            for snapshot, context, candidates, rank in _candidates(
                snapshots[:n_trials], sharpes=sharpes[:n_trials], planted=market == "planted", settings=settings
            ):
                # What a trial trades; its in-sample user attributes change no gate's inputs.
                key = json.dumps([snapshot.user_attrs["strategy"], snapshot.params], sort_keys=True)
                known = {
                    gate: result
                    for gate, result in (
                        ("backtest_gate", backtests.get((key, context))),
                        ("cge_gate", stresses.get(key)),
                        ("paper_trading_gate", papers.get(key)),
                    )
                    if result is not None
                }
                evaluation = evaluate_trial(
                    TrialCase(key=key, snapshot=snapshot, context=context), inputs, every_gate=True, known=known
                )
                backtest = backtests[key, context] = evaluation.results["backtest_gate"]
                stress = stresses[key] = evaluation.results["cge_gate"]
                paper = papers[key] = evaluation.results["paper_trading_gate"]
                verdicts = evaluation.verdicts()
                records.append(
                    CandidateRecord(
                        study=index, market=market, planted_sharpe=planted_sharpe, n_trials=n_trials,
                        candidates=candidates, rank=rank, number=snapshot.number, params=dict(snapshot.params),
                        backtest_metrics=backtest.metrics, dsr=backtest.dsr, n_completed_trials=context.n_trials,
                        cge_summary=dict(stress.summary), paper_inputs=paper.metrics.gate_inputs(), verdicts=verdicts,
                        decision=deployment_decision(
                            study=name, number=snapshot.number, params=snapshot.params, verdicts=verdicts,
                            policy=self.policy,
                        ),
                    )
                )
        return records


def _candidates(
    trials: Sequence[TrialSnapshot], *, sharpes: Sequence[tuple[int, float]], planted: bool,
    settings: CalibrationSettings,
) -> list[tuple[TrialSnapshot, StudyContext, CandidateKind, int | None]]:
    """The trials a study of ``trials`` sends through the gates, each with its study context.

    The best ``candidates_per_study`` by the study's objective (ties: the earlier trial),
    deflated by the trials' own in-sample Sharpe ratios (``sharpes``, by trial number), and,
    on a planted market, the planted strategy judged as the study's latest trial, i.e.
    deflated for every trial of the study.
    """
    best = sorted(trials, key=lambda t: (-t.values[0], t.number))[: settings.candidates_per_study]
    last = trials[-1]
    contexts = study_contexts(sharpes=sharpes, numbers=[t.number for t in (*best, last)])
    chosen: list[tuple[TrialSnapshot, StudyContext, CandidateKind, int | None]] = [
        (trial, contexts[trial.number], "best", rank) for rank, trial in enumerate(best)
    ]
    if planted:
        strategy = TrialSnapshot.build(
            study_name=last.study_name, number=last.number + 1, trial_id=last.number + 1, state=TrialState.COMPLETE,
            params=dict(PLANTED_PARAMS[settings.edge]), values=None, user_attrs={"strategy": PLANTED_STRATEGY},
        )
        chosen.append((strategy, contexts[last.number], "planted_strategy", None))
    return chosen


@dataclass(frozen=True)
class Simulation:
    """Every judged trial of a calibration run, and what the report needs besides.

    Attributes
    ----------
    records
        Judged trials, study by study.
    planted_edges
        How each planted market was built.
    windows
        The last simulated market's windows (every market has the same window lengths).
    seconds, cpu_seconds
        Wall and CPU time of this process (s): shared inputs, planted edges, searches and gates.
    """

    records: list[CandidateRecord]
    planted_edges: list[PlantedEdge]
    windows: MarketWindows
    seconds: float
    cpu_seconds: float


def judge_market(
    *,
    windows: MarketWindows,
    policy: GatePolicy,
    planted: bool = False,
    settings: CalibrationSettings | None = None,
    study: int = 0,
) -> list[CandidateRecord]:
    """Any market through the calibration: a study's Optuna search on ``windows``, and its best
    trials (plus, when ``planted``, the planted strategy of ``settings.edge``) through every gate
    and the deployment decision, as `run_calibration` judges its own markets.

    So anyone can measure the gates on their own generator: build ``windows`` from simple
    returns (`simulations.calibration.market_from_returns`) or from a price frame
    (`simulations.market.split_windows`), judge many of them, and count: a null market whose
    records include one that `simulations.calibration.record_passes` (stage ``chain`` or
    ``promoted``) is a false positive; a planted market with none is a false negative.

    Parameters
    ----------
    windows
        The market's train, backtest and forward windows.
    policy
        The gate thresholds judged.
    planted
        Whether the market carries the planted edge (its planted strategy is judged too).
    settings
        Trial counts, candidates per study, seed and edge kind (default: the calibration's).
    study
        The study's index: its sampler seed derives from ``settings.seed`` and it.

    Returns
    -------
    list[CandidateRecord]
        One record per judged trial and study size.
    """
    settings = settings or CalibrationSettings()
    return _new_judge(policy).market(
        windows=windows, index=study, market="planted" if planted else "null",
        planted_sharpe=settings.target_sharpe if planted else None, settings=settings,
        sampler_seed=study_seeds(seed=settings.seed, study=study).sampler,
    )  # fmt: skip


def _new_judge(policy: GatePolicy) -> _Judge:
    scenario_set, digest = solve_stress_scenarios(config=CgeScenarioConfig())
    return _Judge(policy=policy, scenario_set=scenario_set, sam_sha256=digest)


def _study_index(
    judge: _Judge, settings: CalibrationSettings, edges: Sequence[PlantedEdge], index: int
) -> tuple[list[CandidateRecord], MarketWindows]:
    """Study ``index`` on the null market, then on each planted market (same seeds)."""
    markets: list[tuple[MarketKind, float | None, float]] = [
        ("null", None, 0.0),
        *(("planted", edge.sharpe, edge.drift_per_vol) for edge in edges),
    ]
    records: list[CandidateRecord] = []
    for market, sharpe, drift in markets:
        study_records, windows = judge.study(
            index=index, market=market, planted_sharpe=sharpe, drift_per_vol=drift, settings=settings
        )
        records.extend(study_records)
    return records, windows


# The judge of a worker process: built once per process by the pool's initializer, so its
# equilibria are solved once for the studies it runs.
_WORKER_JUDGE: list[_Judge] = []


def _start_worker(policy: GatePolicy) -> None:
    _WORKER_JUDGE.append(_new_judge(policy))


def _worker_study(
    settings: CalibrationSettings, edges: Sequence[PlantedEdge], index: int
) -> tuple[list[CandidateRecord], MarketWindows]:
    return _study_index(_WORKER_JUDGE[0], settings, edges, index)


def simulate_studies(
    *, settings: CalibrationSettings, policy: GatePolicy, progress: Progress | None = None, workers: int = 1
) -> Simulation:
    """Simulate every study of ``settings`` and judge its best trials under ``policy``.

    Study ``i`` runs on the null market, then on each planted market, with the same seeds.
    With ``workers > 1`` the studies are spread over that many processes; every study
    depends on its seeds only, so the records are the same, in the same order.
    Deterministic for ``settings`` and ``policy``, except the times.
    """
    if workers < 1:
        raise ConfigurationError(f"workers must be >= 1, got {workers}")
    started, cpu_started = time.perf_counter(), time.process_time()
    children_started = resource.getrusage(resource.RUSAGE_CHILDREN)
    edges = [plant_edge(sharpe=sharpe, edge=settings.edge) for sharpe in settings.planted_sharpes]
    per_index = 1 + len(edges)
    records: list[CandidateRecord] = []
    with contextlib.ExitStack() as stack:
        if workers == 1:
            judge = _new_judge(policy)
            results: Iterator[tuple[list[CandidateRecord], MarketWindows]] = (
                _study_index(judge, settings, edges, index) for index in range(settings.n_studies)
            )
        else:
            # Spawned, not forked: polars' thread pool deadlocks in a forked child.
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker, initargs=(policy,),
                )
            )
            n = settings.n_studies
            results = pool.map(_worker_study, itertools.repeat(settings, n), itertools.repeat(edges, n), range(n))
        for done, (study_records, windows) in enumerate(results, start=1):
            records.extend(study_records)
            if progress is not None:
                progress(done * per_index, settings.n_simulated_studies, time.perf_counter() - started)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Worker processes count once the pool has joined them.
    child_cpu = (children.ru_utime + children.ru_stime) - (children_started.ru_utime + children_started.ru_stime)
    return Simulation(
        records=records, planted_edges=edges, windows=windows, seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started + child_cpu,
    )


def run_calibration(
    *, settings: CalibrationSettings, policy: GatePolicy, progress: Progress | None = None, workers: int = 1
) -> CalibrationReport:
    """Simulate ``settings``' studies through the gate chain of ``policy`` and report the error rates.

    Parameters
    ----------
    settings
        Studies, trials, planted Sharpe ratios and the seed.
    policy
        The gate policy under calibration (the shipped defaults unless configured).
    progress
        Called as studies finish with (studies done, studies in the run, seconds so far).
    workers
        Processes that simulate studies (the results do not depend on it).

    Returns
    -------
    CalibrationReport
        Deterministic for ``settings`` and ``policy`` except the wall times, which cover
        the simulation; the aggregation after it (the threshold sweep) takes about 10 s of CPU per
        1,000 studies.
    """
    simulation = simulate_studies(settings=settings, policy=policy, progress=progress, workers=workers)
    return build_report(
        records=simulation.records, settings=settings, policy=policy, planted_edges=simulation.planted_edges,
        stress_seeds={"cge_scenario_seed": CGE_SCENARIO_SEED, "cge_path_seed": CGE_PATH_SEED},
        windows=simulation.windows, seconds=simulation.seconds, cpu_seconds=simulation.cpu_seconds,
    )


# --------------------------------------------------------------------------- presentation


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def measurement_rows(report: CalibrationReport) -> list[dict[str, Any]]:
    """The run's policy and the recommendation, measured at the target: one row each."""
    rows = []
    for measured in (report.shipped, report.recommended):
        if measured is None:
            continue
        fp, fn, planted = measured.false_positive, measured.false_negative, measured.false_negative_planted_strategy
        rows.append(
            {
                "policy": measured.name,
                "false_positive": f"{fp.rate:.1%} [{fp.ci_low:.1%}, {fp.ci_high:.1%}]",
                "false_negative": "—" if fn is None else f"{fn.rate:.1%} [{fn.ci_low:.1%}, {fn.ci_high:.1%}]",
                "fn_planted_strategy": "—" if planted is None else f"{planted.rate:.1%}",
                "fp_holdout": _percent(measured.fp_holdout),
                "fn_holdout": _percent(measured.fn_holdout),
                "meets_target": "yes" if measured.meets_target else "no",
                "overrides": measured.overrides or "—",
            }
        )
    return rows


def caught_rows(report: CalibrationReport) -> list[dict[str, Any]]:
    """Which gate stops the trials of each group (shares of the group's judged trials)."""
    return [
        {
            "market": row.market if row.planted_sharpe is None else f"planted SR {row.planted_sharpe:g}",
            "n_trials": row.n_trials,
            "candidates": row.candidates,
            "trials": row.trials,
            "backtest_gate": _percent(row.backtest_gate),
            "cge_gate": _percent(row.cge_gate),
            "paper_trading_gate": _percent(row.paper_trading_gate),
            "passed": _percent(row.passed),
        }
        for row in report.caught_by
    ]


RATE_COLUMNS = [
    ("market", "null or planted annualised Sharpe"),
    ("n_trials", "Optuna trials per study"),
    ("candidates", "best trials, or the planted strategy itself"),
    ("studies", "count"),
    *((stage, "rate [95 % Clopper-Pearson CI]") for stage in STAGES),
]
CAUGHT_COLUMNS = [
    ("market", "null or planted annualised Sharpe"),
    ("n_trials", "Optuna trials per study"),
    ("candidates", "best trials, or the planted strategy itself"),
    ("trials", "judged trials"),
    ("backtest_gate", "share stopped by gate 1"),
    ("cge_gate", "share stopped by gate 2"),
    ("paper_trading_gate", "share stopped by gate 3"),
    ("passed", "share passing every gate"),
]
MEASUREMENT_COLUMNS = [
    ("policy", "shipped (the run's) or recommended"),
    ("false_positive", "promoted, null studies [95 % CI]"),
    ("false_negative", "nothing promoted, planted studies [95 % CI]"),
    ("fn_planted_strategy", "the planted strategy itself blocked"),
    ("fp_holdout", "odd-numbered studies only"),
    ("fn_holdout", "odd-numbered studies only"),
    (
        "meets_target",
        f"FP <= {CALIBRATION_MAX_FALSE_POSITIVE_RATE:.0%} and FN <= {CALIBRATION_MAX_FALSE_NEGATIVE_RATE:.0%}",
    ),
    ("overrides", "GatePolicy keys changed"),
]


def calibration_png(report: CalibrationReport) -> bytes:
    """Three panels: promoted FP/FN by study size, every stage at the target, the threshold sweep."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.0))
    promoted = [r for r in report.rates if r.stage == "promoted" and r.candidates == "best"]
    series: dict[str, list] = {}
    for row in promoted:
        label = "FP, null" if row.market == "null" else f"FN, planted SR {row.planted_sharpe:g}"
        series.setdefault(label, []).append(row)
    for label, rows in series.items():
        x = [r.n_trials for r in rows]
        rates = np.array([r.rate for r in rows])
        errors = np.array([[r.rate - r.ci_low for r in rows], [r.ci_high - r.rate for r in rows]])
        axes[0].errorbar(x, rates, yerr=errors, marker="o", capsize=3, label=label)
    axes[0].set_xlabel("Optuna trials per study")
    axes[0].set_ylabel("study error rate (promoted)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7)

    target = [r for r in report.rates if r.n_trials == report.settings.target_trials and r.candidates == "best"]
    groups = sorted({(r.market, r.planted_sharpe) for r in target}, key=lambda k: (k[0], k[1] or 0.0))
    width = 0.8 / len(groups)
    for i, (market, sharpe) in enumerate(groups):
        rows = {r.stage: r for r in target if (r.market, r.planted_sharpe) == (market, sharpe)}
        rates = np.array([rows[s].rate for s in STAGES])
        errors = np.array(
            [[rows[s].rate - rows[s].ci_low for s in STAGES], [rows[s].ci_high - rows[s].rate for s in STAGES]]
        )
        label = "FP, null" if market == "null" else f"FN, planted SR {sharpe:g}"
        axes[1].bar(np.arange(len(STAGES)) + i * width, rates, width, yerr=errors, capsize=2, label=label)
    axes[1].set_xticks(
        np.arange(len(STAGES)) + 0.4 - width / 2,
        [s.replace("_", " ") for s in STAGES],
        fontsize=6,
        rotation=20,
        ha="right",
    )
    axes[1].set_title(f"{report.settings.target_trials} trials per study", fontsize=8)
    axes[1].legend(fontsize=7)

    if report.sweep:
        axes[2].scatter(
            [p.fp_all for p in report.sweep], [p.fn_all for p in report.sweep], s=8, color="grey", label="sweep"
        )
        for measured, colour in ((report.shipped, "tab:red"), (report.recommended, "tab:green")):
            if measured is not None and measured.false_negative is not None:
                axes[2].scatter(
                    [measured.false_positive.rate],
                    [measured.false_negative.rate],
                    s=40,
                    color=colour,
                    label=measured.name,
                )
        axes[2].add_patch(
            Rectangle(
                (0.0, 0.0), CALIBRATION_MAX_FALSE_POSITIVE_RATE, CALIBRATION_MAX_FALSE_NEGATIVE_RATE,
                color="tab:green", alpha=0.3, label="target",
            )
        )
        axes[2].set_xlim(-0.005, max(p.fp_all for p in report.sweep) + 0.02)
        axes[2].set_ylim(-0.02, 1.02)
        axes[2].set_xlabel("false positives (null studies)")
        axes[2].set_ylabel("false negatives (planted studies)")
        axes[2].legend(fontsize=7)
    else:
        axes[2].set_axis_off()
    try:
        fig.tight_layout()
        return figure_png(fig)
    finally:
        plt.close(fig)


def report_metadata(report: CalibrationReport) -> dict[str, Any]:
    """The report as asset metadata: tables, chart, statement, configuration and seeds."""
    track = report.track_record
    return {
        "studies": report.studies,
        "seconds_per_study": dg.MetadataValue.float(report.seconds_per_study),
        "cpu_seconds_per_study": dg.MetadataValue.float(report.cpu_seconds_per_study),
        "false_positive_rates": records_table(rate_table(rows=report.rates, error="false_positive"), RATE_COLUMNS),
        "false_negative_rates": records_table(rate_table(rows=report.rates, error="false_negative"), RATE_COLUMNS),
        "caught_by": records_table(caught_rows(report), CAUGHT_COLUMNS),
        "shipped_vs_recommended": records_table(measurement_rows(report), MEASUREMENT_COLUMNS),
        "recommended_overrides": dg.MetadataValue.json(report.recommended.overrides if report.recommended else {}),
        "track_record": dg.MetadataValue.md(track.statement if track else "no planted market: nothing to separate"),
        "chart": png_markdown(calibration_png(report), alt="gate calibration error rates"),
        "configuration": dg.MetadataValue.json(
            {
                "settings": report.settings.model_dump(mode="json"),
                "seed_rule": report.seed_rule,
                "stress_seeds": report.stress_seeds,
                "planted_edges": [edge.model_dump(mode="json") for edge in report.planted_edges],
                "policy": report.policy,
            }
        ),
    }


class GateCalibrationConfig(dg.Config):
    """How many studies the calibration simulates, how large, and on which planted edges."""

    n_studies: int = Field(
        default=CALIBRATION_STUDIES, ge=2, description="Simulated studies per market (null, each planted Sharpe)."
    )
    trials_per_study: list[int] = Field(
        default=list(CALIBRATION_TRIALS_PER_STUDY), description="Optuna trials per study to report, ascending."
    )
    planted_sharpes: list[float] = Field(
        default=list(CALIBRATION_PLANTED_SHARPES),
        description="Planted annualised Sharpe ratios; the first is the target's.",
    )
    candidates_per_study: int = Field(
        default=CALIBRATION_CANDIDATES_PER_STUDY, ge=1, description="Best trials per study that face the gates."
    )
    seed: int = Field(
        default=CALIBRATION_SEED, ge=0, description="Seed of the run (every study's seeds derive from it)."
    )
    train_days: int = Field(default=DEFAULT_TRAIN_DAYS, ge=30, description="Days of each study's train window.")
    edge: EdgeKind = Field(
        default="trend", description="The planted edge: trend (slow momentum) or autocorrelation (a one-bar rule)."
    )
    workers: int = Field(
        default=1, ge=1, description="Processes that simulate studies; results do not depend on it."
    )

    def settings(self) -> CalibrationSettings:
        """The pure settings these fields describe."""
        return CalibrationSettings(
            n_studies=self.n_studies,
            trials_per_study=tuple(self.trials_per_study),
            planted_sharpes=tuple(self.planted_sharpes),
            candidates_per_study=self.candidates_per_study,
            seed=self.seed,
            train_days=self.train_days,
            edge=self.edge,
        )


@dg.asset(
    key=GATE_CALIBRATION,
    group_name=REPORTING_GROUP,
    io_manager_key="shared_io_manager",
    kinds={"optuna"},
    owners=["team:quant-research"],
    description="False-positive and false-negative rates of the gate chain on simulated studies with a known truth.",
)
def gate_calibration(
    context: dg.AssetExecutionContext, config: GateCalibrationConfig, gate_policy: GatePolicyResource
) -> dg.Output[dict[str, Any]]:
    settings = config.settings()

    def progress(done: int, total: int, seconds: float) -> None:
        if done % max(1, total // 10) == 0 or done == total:
            context.log.info(f"calibration: {done}/{total} studies, {seconds / done:.2f} s per study")

    report = run_calibration(
        settings=settings, policy=gate_policy.policy(), progress=progress, workers=config.workers
    )
    return dg.Output(report.model_dump(mode="json"), metadata=report_metadata(report))
