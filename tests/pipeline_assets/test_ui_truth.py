"""What the Dagster UI shows about gated trials equals what Gauntlet recorded.

Asked through Dagster's own GraphQL API (the schema the UI reads), served from a real code
server over a real SQLite instance, after the real sensor ran one study's trials in ONE
batched run and another's one trial per run. Checked against the gate evaluations in the
event log: per-partition check statuses (the check's partition counters), each check
execution's target materialization, staleness of the trial assets (fresh after evaluation;
after new market data exactly the direct dependents of `market_data` are stale), and count
tags on every trial run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from resources.dagster_private import DATA_VERSION_TAG
from pipeline_assets.definitions import build_definitions
from pipeline_assets.trial_keys import MAX_TRIALS_PER_RUN, trial_partition_key
from pipeline_assets.shared_assets import MARKET_DATA
from pipeline_assets.trial_assets import trial_gauntlet
from resources.io_manager import ArtifactIOManager
from resources.market_data import SyntheticMarketDataResource
from resources.optuna_study import OptunaStudyResource
from simulations.constants import DEFAULT_INSTRUMENT, DEFAULT_MARKET_SEED
from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, demo_gate_policy, demo_config, local_resources, shared_assets
from tests.graphql_support import UiClient, describe_causes, graphql_workspace, write_code_location

#: Run tags carrying a trial run's true counts: count -> tag key. One line to adapt.
RUN_COUNT_TAGS = {
    "evaluated": "gauntlet/evaluated",
    "passed": "gauntlet/passed",
    "rejected": "gauntlet/rejected",
    "errors": "gauntlet/errors",
}

#: Gate check -> the asset it judges, in gauntlet order.
GATES = {
    "backtest_gate": "backtest_results",
    "cge_gate": "cge_stress_report",
    "paper_trading_gate": "paper_trading_grade",
}
TRIAL_ASSETS = ("optuna_trial", "backtest_results", "cge_stress_report", "paper_trading_grade", "deployment_record")

# On the default market, under the demo thresholds with at least MIN_TRADES backtest trades
# (trade counts in brackets): lookback 6 (776) fails the CGE gate, 60 (279) and 123 (165)
# pass every gate (grade A), 160 (157) is graded C on paper, 360 (107) and 480 (59) fail
# gate 1 on trades. So every gate passes some trials and fails others, and both later gates
# are planned but never evaluated for some trials. The fixture re-checks this from the data.
MIN_TRADES = 120
POLICY_OVERRIDES = {"backtest": {"min_trades": MIN_TRADES}}
LOOKBACKS = [6, 60, 123, 160, 360, 480]
PARAMS = [{"lookback": lb, "vol_lookback": 168, "target_bar_vol": 0.003} for lb in LOOKBACKS]
OBJECTIVES = [0.1 * (i + 1) for i in range(len(LOOKBACKS))]

#: Mode -> (study, trials per run): the same six trials, batched as the sensor does, and one per run.
MODES = {"batched": ("batched", MAX_TRIALS_PER_RUN), "one_per_run": ("single", 1)}

CODE_LOCATION = """
from tests.dagster_helpers import demo_gate_policy, local_definitions

defs = local_definitions({optuna_url!r}, {home!r}, gate_policy=demo_gate_policy({overrides!r}))
"""


@dataclass
class Mode:
    study: str
    home: Path
    keys: list[str]
    run_ids: list[str] = field(default_factory=list)
    #: gate -> partition -> the `passed` of its (only) evaluation in the event log
    verdicts: dict[str, dict[str, bool]] = field(default_factory=dict)


@dataclass
class Scenario:
    instance: dg.DagsterInstance
    ui: UiClient
    optuna_url: str
    modes: dict[str, Mode]


def _defs(optuna_url: str, mode: Mode, trials_per_run: int, shared_home: Path) -> dg.Definitions:
    """The mode's own study, artifacts and registry; the market and scenarios of ``shared_home``."""
    resources = local_resources(
        optuna_url,
        mode.home,
        gate_policy=demo_gate_policy(POLICY_OVERRIDES),
        optuna_study=OptunaStudyResource(storage_url=optuna_url, studies=[mode.study]),
        shared_io_manager=ArtifactIOManager(base_dir=str(shared_home / "artifacts" / "shared")),
    )
    return build_definitions(
        config=demo_config(mode.home, sensor={"max_trials_per_run": trials_per_run}), resources=resources
    )


def _recorded_verdicts(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, dict[str, bool]]:
    """gate -> partition -> passed, from the ASSET_CHECK_EVALUATION events of ``run_ids``."""
    verdicts: dict[str, dict[str, bool]] = {gate: {} for gate in GATES}
    for run_id in run_ids:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        for record in records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            if "verdict" in evaluation.metadata:  # the check's own metadata agrees with its pass flag
                verdict = evaluation.metadata["verdict"].value
                assert (verdict in ("pass", "disabled")) == evaluation.passed, (evaluation.partition, verdict)
            assert evaluation.partition not in verdicts[evaluation.check_name], "evaluated twice"
            verdicts[evaluation.check_name][evaluation.partition] = evaluation.passed
    return verdicts


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, shared_instance_template) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("ui_truth")
    optuna_url = f"sqlite:///{root / 'optuna.db'}"
    modes = {}
    for name, (study, _) in MODES.items():
        add_complete_trials(optuna_url, study, OBJECTIVES, params=PARAMS)
        keys = [trial_partition_key(study, n) for n in range(len(LOOKBACKS))]
        modes[name] = Mode(study=study, home=root / name, keys=keys)
    # Both modes read the shared assets built under the batched mode's home.
    with shared_instance_template.open(root / "dagster", modes["batched"].home) as instance:
        for name, (_, trials_per_run) in MODES.items():
            mode = modes[name]
            ticker = Ticker(_defs(optuna_url, mode, trials_per_run, modes["batched"].home), instance)
            ticker.tick_until_idle()
            trial_runs = [r for r in ticker.results if r.job_def.name == "trial_job"]
            assert all(r.success for r in ticker.results), "a gate rejection must never fail a run"
            expected_runs = 1 if name == "batched" else len(mode.keys)
            assert len(trial_runs) == expected_runs, (name, len(trial_runs))
            mode.run_ids = [r.run_id for r in trial_runs]
            mode.verdicts = _recorded_verdicts(instance, mode.run_ids)

        # The scenario must exercise what the UI has to show: passes and fails at every
        # gate, and later gates never evaluated for trials stopped earlier.
        for name, mode in modes.items():
            for gate, verdicts in mode.verdicts.items():
                assert set(verdicts.values()) == {True, False}, (name, gate, verdicts)
            assert len(mode.verdicts["paper_trading_gate"]) < len(mode.verdicts["backtest_gate"]) == len(mode.keys)
        by_trial = {
            name: {gate: {k.split("__")[-1]: v for k, v in verdicts.items()} for gate, verdicts in mode.verdicts.items()}
            for name, mode in modes.items()
        }
        assert by_trial["batched"] == by_trial["one_per_run"], "batched and one-per-run verdicts differ"

        location = write_code_location(
            root / "location",
            CODE_LOCATION.format(
                optuna_url=optuna_url, home=str(modes["batched"].home), overrides=POLICY_OVERRIDES
            ),
        )
        with graphql_workspace(instance, location) as ui:
            yield Scenario(instance=instance, ui=ui, optuna_url=optuna_url, modes=modes)


def _materialized(instance: dg.DagsterInstance, asset: str, keys: list[str]) -> list[str]:
    done = instance.get_materialized_partitions(dg.AssetKey(asset))
    return [k for k in keys if k in done]


def _shown_as(statuses: dict[str, set[str]], key: str) -> str:
    shown = [field.removesuffix("Partitions") for field, keys in statuses.items() if key in keys]
    return "+".join(shown) or "missing"


# -- 1. check partition statuses --------------------------------------------------------


@pytest.mark.parametrize("mode_name", list(MODES))
def test_check_partition_statuses_list_the_recorded_verdicts(scenario: Scenario, mode_name: str):
    """Succeeded / failed = exactly the trials whose evaluation passed / failed; a later gate
    of a trial stopped earlier is skipped (or missing), never failed nor in progress."""
    mode = scenario.modes[mode_name]
    wrong = []
    for gate, asset in GATES.items():
        statuses = scenario.ui.check_partition_statuses(asset)[gate]
        for key in mode.keys:
            shown = _shown_as(statuses, key)
            if key in mode.verdicts[gate]:
                expected = {"succeeded"} if mode.verdicts[gate][key] else {"failed"}
            else:  # never evaluated: the trial stopped at an earlier gate
                expected = {"skipped", "missing"}
            if shown not in expected:
                wrong.append(f"{gate}[{key}]: UI shows {shown}, recorded {'/'.join(sorted(expected))}")
    assert not wrong, "check partition statuses disagree with the recorded verdicts:\n  " + "\n  ".join(wrong)


# -- 2. target materialization of each check execution ----------------------------------


@pytest.mark.parametrize("mode_name", list(MODES))
def test_each_check_execution_targets_its_partitions_materialization(scenario: Scenario, mode_name: str):
    mode = scenario.modes[mode_name]
    wrong = []
    for gate, asset in GATES.items():
        for key, passed in mode.verdicts[gate].items():
            (execution,) = scenario.ui.check_executions(asset, gate, partition=key, limit=1)
            evaluation = execution["evaluation"]
            assert evaluation is not None and evaluation["partition"] == key, (gate, key, execution)
            assert evaluation["success"] == passed, (gate, key)  # the UI's verdict is the recorded one
            (record,) = scenario.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
            ).records
            target = evaluation["targetMaterialization"]
            expected = {"storageId": str(record.storage_id), "runId": record.run_id}
            if target is None:
                wrong.append(f"{gate}[{key}]: targetMaterialization is null, expected {expected}")
            elif {k: target[k] for k in expected} != expected:
                wrong.append(f"{gate}[{key}]: targetMaterialization {target}, expected {expected}")
    assert not wrong, "check executions not tied to their materialization:\n  " + "\n  ".join(wrong)


# -- 3. staleness -----------------------------------------------------------------------


def _staleness(scenario: Scenario, keys: list[str]) -> dict[tuple[str, str], tuple[str, list[dict]]]:
    """(asset, partition) -> (status, root causes) for every materialized trial partition."""
    out = {}
    for asset in TRIAL_ASSETS:
        partitions = _materialized(scenario.instance, asset, keys)
        for key, shown in scenario.ui.stale_by_partition(asset, partitions).items():
            out[(asset, key)] = shown
    return out


@pytest.mark.parametrize("mode_name", list(MODES))
def test_freshly_evaluated_trial_assets_are_fresh(scenario: Scenario, mode_name: str):
    mode = scenario.modes[mode_name]
    staleness = _staleness(scenario, mode.keys)
    assert {asset for asset, _ in staleness} == set(TRIAL_ASSETS), "every trial asset has a materialized partition"
    not_fresh = [
        f"{asset}[{key}]: {status} — {describe_causes(causes)}"
        for (asset, key), (status, causes) in staleness.items()
        if status != "FRESH"
    ]
    assert not not_fresh, f"{len(not_fresh)} of {len(staleness)} fresh trial partitions not FRESH:\n  " + "\n  ".join(
        not_fresh
    )


def _materialize_market(scenario: Scenario, seed: int) -> str:
    """Rematerialize `market_data` alone from the market with ``seed``; its new data version."""
    home = scenario.modes["batched"].home
    market = SyntheticMarketDataResource(seed=seed)
    resources = local_resources(scenario.optuna_url, home, market=market)
    market_data = shared_assets(market)[1]
    assert dg.materialize(
        [market_data], instance=scenario.instance, resources=resources, partition_key=DEFAULT_INSTRUMENT
    ).success
    event = scenario.instance.get_latest_materialization_event(MARKET_DATA)
    return event.asset_materialization.tags[DATA_VERSION_TAG]


def test_new_market_data_makes_exactly_its_direct_trial_dependents_stale(scenario: Scenario):
    keys = [k for mode in scenario.modes.values() for k in mode.keys]
    dependents = {key.to_user_string() for key, deps in trial_gauntlet.asset_deps.items() if MARKET_DATA in deps}
    assert dependents == {"backtest_results"}
    before = scenario.instance.get_latest_materialization_event(MARKET_DATA).asset_materialization.tags[
        DATA_VERSION_TAG
    ]
    try:
        after = _materialize_market(scenario, DEFAULT_MARKET_SEED + 1)
        assert after != before, "a new market must give market_data a new data version"
        staleness = _staleness(scenario, keys)
    finally:
        # The same market again: its data version is the original one, so the other tests of
        # this module see the instance as the runs left it (staleness compares data versions).
        assert _materialize_market(scenario, DEFAULT_MARKET_SEED) == before

    expected_stale = {(a, k) for (a, k) in staleness if a in dependents}
    stale = {ak for ak, (status, _) in staleness.items() if status == "STALE"}
    assert stale == expected_stale, "stale after new market data:\n  " + "\n  ".join(
        f"{a}[{k}]: {staleness[(a, k)][0]} (expected {'STALE' if (a, k) in expected_stale else 'FRESH'})"
        f" — {describe_causes(staleness[(a, k)][1])}"
        for (a, k) in sorted(staleness)
        if ((a, k) in stale) != ((a, k) in expected_stale)
    )
    for asset, key in expected_stale:
        causes = staleness[(asset, key)][1]
        blamed = [c for c in causes if MARKET_DATA.path in (c["key"]["path"], (c["dependency"] or {}).get("path"))]
        assert blamed, f"{asset}[{key}] stale, but not for market_data: {describe_causes(causes)}"


# -- 4. run tags ------------------------------------------------------------------------


def _run_keys(tags: dict[str, str], keys: list[str]) -> list[str]:
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]
    return keys[keys.index(start) : keys.index(end) + 1]


@pytest.mark.parametrize("mode_name", list(MODES))
def test_every_trial_run_carries_its_true_counts(scenario: Scenario, mode_name: str):
    """evaluated: trials in the run; rejected: stopped by a gate; errors: infrastructure
    errors (none here); passed: passed every gate."""
    assert all(tag.startswith("gauntlet/") for tag in RUN_COUNT_TAGS.values())
    mode = scenario.modes[mode_name]
    wrong = []
    for run_id in mode.run_ids:
        tags = scenario.ui.run_tags(run_id)
        run_keys = _run_keys(tags, mode.keys)
        rejected = {k for k in run_keys if any(mode.verdicts[g].get(k) is False for g in GATES)}
        passed = {k for k in run_keys if mode.verdicts["paper_trading_gate"].get(k) is True}
        expected = {"evaluated": len(run_keys), "passed": len(passed), "rejected": len(rejected), "errors": 0}
        assert expected["passed"] + expected["rejected"] == expected["evaluated"]  # nothing pending here
        shown = {name: tags.get(tag) for name, tag in RUN_COUNT_TAGS.items()}
        if shown != {name: str(n) for name, n in expected.items()}:
            wrong.append(f"run {run_id[:8]} ({', '.join(run_keys)}): tags {shown}, true counts {expected}")
    assert not wrong, "trial runs without their true counts:\n  " + "\n  ".join(wrong)
