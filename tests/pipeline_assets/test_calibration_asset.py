"""`gate_calibration` and `gauntlet calibrate`: simulated studies through the real gate chain.

One small simulation (4 studies per market, 6 and 12 trials, 2 candidates) is shared by the
module; the other tests run their own, smaller or null-only, calibrations.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from gauntlet.calibrate import calibrate_main
from pipeline_assets.calibration_assets import (
    GATE_CALIBRATION,
    Simulation,
    gate_calibration,
    judge_market,
    simulate_studies,
)
from pipeline_assets.paper_stage import BrokerVenue
from resources.gate_policy import GatePolicyResource
from resources.io_manager import ArtifactIOManager
from resources.market_data import SyntheticMarketDataResource
from simulations.constants import DEFAULT_INSTRUMENT, SYNTHETIC_START_PRICE
from resources.paper_broker import LocalPaperBrokerResource
from simulations.calibration import (
    CalibrationSettings,
    calibration_windows,
    market_from_returns,
    plant_edge,
    SweptThresholds,
    build_report,
    error_rates,
    gate_verdicts,
    recommend,
    record_passes,
    study_seeds,
)
from simulations.gates import GatePolicy
from simulations.gauntlet import GauntletInputs, ReplayVenue, TrialCase, evaluate_paper
from simulations.trial import TrialSnapshot
from simulations.strategies import BUILT_IN_STRATEGIES

SMALL = CalibrationSettings(n_studies=4, trials_per_study=(6, 12), candidates_per_study=2, seed=5)
NULL_ONLY = CalibrationSettings(
    n_studies=10, trials_per_study=(12,), planted_sharpes=(), candidates_per_study=3, seed=9
)
#: Every gate disabled and every grade deployable: the chain promotes whatever reaches it.
PROMOTE_ALL = GatePolicy.model_validate(
    {
        "backtest": {"enabled": False},
        "cge": {"enabled": False},
        "paper": {"enabled": False, "required_grades": ["A", "B", "C", "D", "F"]},
    }
)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate_studies(settings=SMALL, policy=GatePolicy())


def test_any_market_is_judged_as_the_calibration_judges_its_own(simulation: Simulation) -> None:
    # The calibration's own planted market of study 1, given from outside as simple returns.
    seeds = study_seeds(seed=SMALL.seed, study=1)
    drift = plant_edge(sharpe=SMALL.target_sharpe).drift_per_vol
    windows = calibration_windows(seed=seeds.market, drift_per_vol=drift, train_days=SMALL.train_days)
    prices = np.concatenate([w.close for w in (windows.train, windows.backtest, windows.forward)])
    returns = np.concatenate(([prices[0] / SYNTHETIC_START_PRICE - 1.0], prices[1:] / prices[:-1] - 1.0))
    outside = market_from_returns(simple_returns=returns, train_days=SMALL.train_days)
    np.testing.assert_allclose(outside.backtest.close, windows.backtest.close, rtol=1e-12)
    records = judge_market(windows=outside, policy=GatePolicy(), planted=True, settings=SMALL, study=1)
    expected = [r for r in simulation.records if r.study == 1 and r.market == "planted"]
    # The same trials and verdicts (prices rebuilt from returns agree to rounding, the reasons' figures exactly).
    def judged(rs):
        return [(r.number, r.candidates, r.n_trials, {g: (v.passed, v.reason) for g, v in r.verdicts.items()}) for r in rs]

    assert judged(records) == judged(expected)
    assert any(r.candidates == "planted_strategy" for r in records)


def test_a_calibration_is_deterministic_for_a_seed(simulation: Simulation) -> None:
    # Study i's seeds depend on the run seed and i only: a smaller run repeats the first studies.
    again = simulate_studies(settings=SMALL.model_copy(update={"n_studies": 2}), policy=GatePolicy(), workers=2)
    assert again.records == simulation.records[: len(again.records)]
    # Another seed: its first study alone already draws other trials than this seed's first study.
    other = simulate_studies(settings=SMALL.model_copy(update={"seed": 6, "n_studies": 1}), policy=GatePolicy())
    assert [r.params for r in other.records] != [r.params for r in again.records[: len(other.records)]]


def test_every_study_and_candidate_is_judged_by_every_gate(simulation: Simulation) -> None:
    records = simulation.records
    # Per study size: 2 best trials on both markets, plus the planted strategy on the planted one.
    assert len(records) == SMALL.n_studies * len(SMALL.trials_per_study) * (2 + 2 + 1)
    assert {r.candidates for r in records if r.market == "null"} == {"best"}
    assert all(set(r.verdicts) == {"backtest_gate", "cge_gate", "paper_trading_gate"} for r in records)
    phases = {r.verdicts["backtest_gate"].phase for r in records}
    assert phases == {"early"}, "studies of at most 12 trials are in the early phase"


def test_recorded_verdicts_are_the_gate_functions_on_the_recorded_inputs(simulation: Simulation) -> None:
    policy = GatePolicy()
    for record in simulation.records:
        assert gate_verdicts(record=record, policy=policy) == record.verdicts
        assert (record_passes(record=record, policy=policy) == record_passes(record=record)).all()


def test_replayed_paper_session_is_graded_like_the_paper_broker(tmp_path: Path) -> None:
    market = SyntheticMarketDataResource()
    windows = market.load_windows()
    broker = LocalPaperBrokerResource(database_url=f"sqlite:///{tmp_path / 'paper.db'}", mode="holdout", clock="replay")
    snapshot = TrialSnapshot.build(
        study_name="demo", number=0, trial_id=0, state="COMPLETE", values=(1.0,), user_attrs={"strategy": "momentum"},
        params={"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003},
    )
    trial = TrialCase(key="demo__t00000000", snapshot=snapshot)
    outcomes = [
        evaluate_paper(
            trial,
            GauntletInputs(
                windows=windows, scenarios=None, policy=GatePolicy(), fee_bps=market.fee_bps,
                slippage_bps=market.slippage_bps, paper=venue,
                strategies=BUILT_IN_STRATEGIES,
            ),
        )
        for venue in (
            BrokerVenue(
                broker, DEFAULT_INSTRUMENT, windows, (market.fee_bps, market.slippage_bps),
                strategies=BUILT_IN_STRATEGIES,
            ),
            ReplayVenue(windows=windows, fee_bps=market.fee_bps, slippage_bps=market.slippage_bps, strategies=BUILT_IN_STRATEGIES),
        )
    ]
    assert outcomes[0].metrics == outcomes[1].metrics and outcomes[0].verdict == outcomes[1].verdict


def test_a_chain_that_promotes_everything_has_false_positives_on_every_null_study() -> None:
    everything = simulate_studies(settings=NULL_ONLY, policy=PROMOTE_ALL)
    report = build_report(
        records=everything.records, settings=NULL_ONLY, policy=PROMOTE_ALL, planted_edges=[], stress_seeds={},
        windows=everything.windows, seconds=everything.seconds,
        cpu_seconds=everything.cpu_seconds,
    )
    assert all(r.rate == 1.0 for r in report.rates)
    assert report.recommended is None and report.track_record is None and report.sweep == []
    # The same trials under the shipped policy (re-evaluation equals the stage functions, see above).
    shipped = error_rates(
        records=everything.records, passes=[record_passes(record=r, policy=GatePolicy()) for r in everything.records]
    )
    assert next(r for r in shipped if r.stage == "promoted").rate <= 0.5


def test_report_rates_and_recommendation(simulation: Simulation) -> None:
    report = build_report(
        records=simulation.records, settings=SMALL, policy=GatePolicy(), planted_edges=simulation.planted_edges,
        stress_seeds={}, windows=simulation.windows, seconds=1.0, cpu_seconds=1.0,
    )
    rows = {(r.market, r.n_trials, r.candidates, r.stage): r for r in report.rates}
    for (market, _, _, stage), row in rows.items():
        assert row.studies == SMALL.n_studies
        assert row.ci_low <= row.rate <= row.ci_high
        assert row.error == ("false_positive" if market == "null" else "false_negative")
    # A study promotes only what passes all three gates, which is at most what passes any one.
    for market, n, candidates, _ in rows:
        chain, promoted = rows[market, n, candidates, "chain"], rows[market, n, candidates, "promoted"]
        assert chain.errors == promoted.errors
        singles = [rows[market, n, candidates, g].rate for g in ("backtest_gate", "cge_gate", "paper_trading_gate")]
        assert (chain.rate <= min(singles)) if market == "null" else (chain.rate >= max(singles))
    # 7 backtest floors x (7 paper Sharpe floors x 2 win-rate floors x 3 drawdown caps x 2 grade sets).
    assert len(report.sweep) == 7 * 7 * 2 * 3 * 2
    assert report.sweep[0].thresholds == SweptThresholds(required_grades=("A",))
    assert (report.sweep[0].fp_all, report.sweep[0].fn_all) == (
        report.shipped.false_positive.rate, report.shipped.false_negative.rate
    )
    best = recommend(points=report.sweep)
    assert best.fp_selection <= 0.01
    assert all(p.fn_selection >= best.fn_selection for p in report.sweep if p.fp_selection <= 0.01)
    assert report.recommended is not None and report.recommended.name == "recommended"
    assert report.track_record is not None and not report.track_record.achievable
    assert report.study_seeds == [(s.market, s.sampler) for s in (study_seeds(seed=5, study=i) for i in range(4))]


def test_gate_calibration_asset_materializes_with_its_report(tmp_path: Path) -> None:
    spec = next(iter(gate_calibration.specs))
    assert spec.group_name == "reporting" and "\n" not in (spec.description or "")
    config = {"n_studies": 2, "trials_per_study": [4], "planted_sharpes": [2.0], "candidates_per_study": 1, "seed": 3}
    result = dg.materialize(
        [gate_calibration],
        resources={"gate_policy": GatePolicyResource(), "shared_io_manager": ArtifactIOManager(base_dir=str(tmp_path))},
        run_config={"ops": {"gate_calibration": {"config": config}}},
    )
    assert result.success
    materialization = result.asset_materializations_for_node("gate_calibration")[0]
    metadata = materialization.metadata
    for key in ("false_positive_rates", "false_negative_rates", "caught_by", "shipped_vs_recommended", "track_record"):
        assert key in metadata
    assert metadata["chart"].value.startswith("![gate calibration error rates](data:image/png;base64,")
    assert metadata["configuration"].value["settings"]["seed"] == 3
    assert metadata["studies"].value == 4
    assert result.output_for_node("gate_calibration")["settings"]["n_studies"] == 2
    assert materialization.asset_key == GATE_CALIBRATION


def test_calibrate_command_prints_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GAUNTLET_GATE_POLICY", raising=False)
    out = tmp_path / "report.json"
    argv = [
        "--studies", "2", "--trials-per-study", "4", "--planted-sharpe", "2", "--candidates", "1", "--seed", "3",
        "--workers", "1",
    ]
    assert calibrate_main([*argv, "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["settings"]["seed"] == 3 and printed["studies"] == 4
    assert calibrate_main([*argv, "--edge", "autocorrelation"]) == 0
    text = capsys.readouterr().out
    for heading in ("False positives", "False negatives", "Which gate stops", "Track record", "s per simulated study"):
        assert heading in text
    assert "planted SR 2 autocorrelation" in text and "following the previous bar's sign" in text
    assert "(planted rule: momentum lookback 1)" in text


@pytest.mark.parametrize(
    "argv", [["--studies", "1"], ["--trials-per-study", "12", "6"], ["--workers", "0"], ["--no-such-flag"]]
)
def test_calibrate_command_rejects_bad_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert calibrate_main(argv) == 2
    assert "error" in capsys.readouterr().err
