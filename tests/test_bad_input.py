"""Bad input of every kind gives its typed error and records nothing downstream.

Properties (hypothesis) at the boundaries where input enters: a trial's params, user
attributes and objective values as Optuna stores them, market files with every defect the
loader knows, and a social accounting matrix that does not balance. Then a few examples
through the real sensor and jobs (`Ticker`) show that nothing downstream is recorded.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import optuna
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from resources.market_data import FileMarketDataResource
from resources.optuna_study import OptunaStudyResource, StudyCursor, to_snapshot
from simulations.cge.sam import hosoe_sam, read_sam, sam_from_array
from simulations.constants import MAX_INDICATOR_LOOKBACK_BARS
from simulations.errors import MarketDataError, StressTestError, TrialDataError
from simulations.gates import GatePolicy
from simulations.gauntlet import GauntletInputs, ReplayVenue, StudyContext, TrialCase, evaluate_backtest
from simulations.market import MarketWindows, generate_synthetic_market, split_windows
from simulations.strategies import BUILT_IN_STRATEGIES
from tests.conftest import add_complete_trials
from pipeline_assets.trial_keys import trial_partition_key
from tests.dagster_helpers import Ticker, local_definitions, materialized, partitions
from tests.simulations.test_market import DEFECTS, _with_defect

# Small and fast: each example writes to a real SQLite Optuna storage or a real file.
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID_PARAMS = {"lookback": 48, "vol_lookback": 168, "target_bar_vol": 0.003}


# --------------------------------------------------------------------------- trials


@pytest.fixture(scope="module")
def optuna_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite Optuna storage; each example writes its own study (Optuna fixes a param's kind per study)."""
    return f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.db'}"


@pytest.fixture(scope="module")
def windows() -> MarketWindows:
    """A small market: bad trials must fail before any backtest runs on it."""
    frame = generate_synthetic_market(seed=5, n_days=120)
    return split_windows(frame=frame, train_days=40, backtest_days=40, forward_days=40)


def _distribution(value: object):
    """The one-point Optuna distribution that stores ``value`` as it is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return CategoricalDistribution([value])
    if isinstance(value, int):
        return IntDistribution(value, value)
    if math.isfinite(value):
        return FloatDistribution(value, value)
    return CategoricalDistribution([value])


def _write_trial(url: str, *, params: dict, user_attrs: dict, value: float = 0.5) -> str:
    study = optuna.create_study(study_name=f"bad-{uuid.uuid4().hex[:10]}", storage=url)
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions={name: _distribution(v) for name, v in params.items()},
            value=value,
            user_attrs=user_attrs,
        )
    )
    return study.study_name


def _admit_and_evaluate(url: str, study: str, windows: MarketWindows, tmp_path: Path) -> None:
    """What the pipeline does with a new trial: admit it at the Optuna boundary, then gate 1."""
    batch = OptunaStudyResource(storage_url=url).read_new_trials(study, StudyCursor())
    if batch.rejected:
        [error] = batch.rejected
        assert not batch.completed
        raise error
    [snapshot] = batch.completed
    inputs = GauntletInputs(
        windows=windows, scenarios=None, policy=GatePolicy(), fee_bps=1.0, slippage_bps=1.0,
        paper=ReplayVenue(windows=windows, fee_bps=1.0, slippage_bps=1.0, strategies=BUILT_IN_STRATEGIES),
        strategies=BUILT_IN_STRATEGIES,
    )
    evaluate_backtest(
        TrialCase(key=study, snapshot=snapshot, context=StudyContext(n_trials=1, sharpe_variance_annual=0.0)), inputs
    )


# Values a momentum param can never take: wrong type (strict: no coercion, not even 12.0 for
# 12), out of range, far too large, non-finite or huge strings.
_wrong_int = st.one_of(
    st.text(max_size=5),
    st.just("x" * 10_000),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(max_value=1),
    st.integers(min_value=MAX_INDICATOR_LOOKBACK_BARS + 1, max_value=2**62),
)
_wrong_fraction = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.floats(max_value=0.0),
    st.floats(min_value=0.1, exclude_min=True),
    st.just(float("nan")),
)
_bad_params = st.one_of(
    st.tuples(st.sampled_from(["lookback", "vol_lookback"]), _wrong_int).map(lambda kv: {**VALID_PARAMS, kv[0]: kv[1]}),
    st.tuples(st.just("target_bar_vol"), _wrong_fraction).map(lambda kv: {**VALID_PARAMS, kv[0]: kv[1]}),
    st.sampled_from(sorted(VALID_PARAMS)).map(lambda k: {n: v for n, v in VALID_PARAMS.items() if n != k}),
    st.text(min_size=1, max_size=300).filter(lambda k: k not in VALID_PARAMS).map(lambda k: {**VALID_PARAMS, k: 1}),
)


@FAST
@given(params=_bad_params)
def test_params_of_a_wrong_type_or_size_are_a_trial_data_error(optuna_storage, windows, tmp_path, params):
    study = _write_trial(optuna_storage, params=params, user_attrs={"strategy": "momentum"})
    with pytest.raises(TrialDataError) as raised:
        _admit_and_evaluate(optuna_storage, study, windows, tmp_path)
    assert study in str(raised.value) or "momentum" in str(raised.value)


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
_bad_user_attrs = st.one_of(
    # The strategy attribute is not a strategy name: wrong type, unknown or enormous.
    st.one_of(_json_leaf.filter(lambda v: not isinstance(v, str)), st.lists(_json_leaf, max_size=3)).map(
        lambda v: {"strategy": v}
    ),
    st.text(max_size=30).filter(lambda name: name not in BUILT_IN_STRATEGIES.names()).map(lambda name: {"strategy": name}),
    st.just({"strategy": "m" * 100_000}),
    st.just({}),
    # Any attribute holding a non-finite number, however deeply nested.
    st.tuples(_non_finite, st.integers(min_value=0, max_value=3)).map(
        lambda vd: {"strategy": "momentum", "note": _nest(vd[0], vd[1])}
    ),
)


def _nest(value: object, depth: int) -> object:
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@FAST
@given(user_attrs=_bad_user_attrs)
def test_user_attrs_of_a_wrong_type_or_size_are_a_trial_data_error(optuna_storage, windows, tmp_path, user_attrs):
    study = _write_trial(optuna_storage, params=VALID_PARAMS, user_attrs=user_attrs)
    with pytest.raises(TrialDataError):
        _admit_and_evaluate(optuna_storage, study, windows, tmp_path)


@FAST
@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=0, max_size=3),
    bad=_non_finite,
    at=st.integers(min_value=0, max_value=3),
)
def test_non_finite_objective_values_are_a_trial_data_error_naming_the_trial(values, bad, at):
    values.insert(at % (len(values) + 1), bad)
    trial = optuna.trial.FrozenTrial(
        number=3,
        state=optuna.trial.TrialState.COMPLETE,
        value=None,
        values=values,
        datetime_start=dt.datetime(2024, 1, 1),
        datetime_complete=dt.datetime(2024, 1, 1, 0, 1),
        params=VALID_PARAMS,
        distributions={name: _distribution(v) for name, v in VALID_PARAMS.items()},
        user_attrs={"strategy": "momentum"},
        system_attrs={},
        intermediate_values={},
        trial_id=7,
    )
    with pytest.raises(TrialDataError, match=r"demo#3.*not finite"):
        to_snapshot("demo", trial)


# --------------------------------------------------------------------------- market files


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=st.sampled_from(sorted(DEFECTS)),
    row=st.integers(min_value=1, max_value=30),
    column=st.sampled_from(["timestamp", "open", "high", "low", "close", "volume"]),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_every_market_file_defect_is_a_market_data_error_from_the_resource(
    tmp_path_factory, rule, row, column, suffix
):
    frame, _ = _with_defect(rule, row, column, DEFECTS[rule][0])
    path = tmp_path_factory.mktemp("market") / f"bars{suffix}"
    if suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    with pytest.raises(MarketDataError, match=rf"market file {re.escape(str(path))}: .*rule {rule}"):
        FileMarketDataResource(path=str(path)).load_windows()


# --------------------------------------------------------------------------- social accounting matrix

_SAM = hosoe_sam()
_OFF_DIAGONAL_FLOWS = [
    (r, c) for r in range(len(_SAM.accounts)) for c in range(len(_SAM.accounts)) if r != c and _SAM.values[r, c] > 0
]


@FAST
@given(cell=st.sampled_from(_OFF_DIAGONAL_FLOWS), factor=st.floats(min_value=1e-3, max_value=10.0))
def test_a_sam_that_does_not_balance_is_a_stress_test_error_naming_both_accounts(tmp_path, cell, factor):
    r, c = cell
    values = np.array(_SAM.values)
    values[r, c] *= 1.0 + factor  # column c pays more than it receives, row r receives more than it pays
    row, column = _SAM.accounts[r], _SAM.accounts[c]
    with pytest.raises(StressTestError, match="SAM is not balanced") as raised:
        sam_from_array(accounts=_SAM.accounts, values=values)
    assert f"{row}: row (receipts)" in str(raised.value) and f"{column}: row (receipts)" in str(raised.value)

    path = tmp_path / f"sam_{uuid.uuid4().hex[:6]}.csv"
    pl.DataFrame({"": list(_SAM.accounts), **{a: values[:, j] for j, a in enumerate(_SAM.accounts)}}).write_csv(path)
    with pytest.raises(StressTestError, match="SAM is not balanced"):
        read_sam(path)


# --------------------------------------------------------------------------- through the real sensor and jobs


def _trial_failures(ticker: Ticker) -> str:
    """Every step failure (error and cause chain) of the runs the ticker executed."""
    return "\n".join(
        event.step_failure_data.error.to_string()
        for result in ticker.results
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.STEP_FAILURE
    )


def test_bad_trials_are_stopped_at_their_boundary_and_good_ones_go_through(tmp_path, shared_instance):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    add_complete_trials(url, "demo", [0.4, 0.5])  # demo#0 and demo#1 are good
    study = optuna.load_study(study_name="demo", storage=url)
    dist = {  # as add_complete_trials declares them
        "lookback": IntDistribution(6, 480, log=True),
        "vol_lookback": IntDistribution(24, 720, log=True),
        "target_bar_vol": FloatDistribution(0.001, 0.01, log=True),
    }
    for value, user_attrs in [
        (float("inf"), {"strategy": "momentum"}),  # demo#2: non-finite objective
        (0.3, {"strategy": "momentum", "sharpe": float("nan")}),  # demo#3: NaN attribute
        (0.3, {"strategy": 42}),  # demo#4: the strategy is not a name
    ]:
        study.add_trial(
            optuna.trial.create_trial(params=VALID_PARAMS, distributions=dist, value=value, user_attrs=user_attrs)
        )
    # A param of the wrong kind (a float lookback) needs a study of its own: Optuna fixes kinds per study.
    wrong_kind = _write_trial(url, params={**VALID_PARAMS, "lookback": 12.5}, user_attrs={"strategy": "momentum"})
    rejected = {"demo__t00000002", "demo__t00000003"}
    failing = {"demo__t00000004", trial_partition_key(wrong_kind, 0)}
    good = {"demo__t00000000", "demo__t00000001"}

    defs = local_definitions(url, tmp_path)
    ticker = Ticker(defs, shared_instance)
    ticker.tick()

    assert set(partitions(shared_instance)) == good | failing  # the rejected ones never became partitions
    assert good <= materialized(shared_instance, "backtest_results")
    for asset in ("backtest_results", "cge_stress_report", "paper_trading_grade", "deployment_record"):
        assert materialized(shared_instance, asset).isdisjoint(failing | rejected), asset
    for key in failing:
        assert not (tmp_path / "artifacts" / "trials" / key / "backtest_results.json").exists()
    failures = _trial_failures(ticker)
    assert all(key in failures for key in failing), failures
    assert "TrialDataError" in failures and "names no strategy" in failures and "lookback" in failures
    decided = {d.partition_key for d in defs.resources["registry"].decisions()}
    assert decided.isdisjoint(failing | rejected)


def test_a_bad_market_file_fails_the_shared_run_and_no_trial_starts(tmp_path):
    frame, _ = _with_defect("non_finite_value", 5, "close", False)
    path = tmp_path / "bars.csv"
    frame.write_csv(path)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    add_complete_trials(url, "demo", [0.4])
    with dg.instance_for_test() as instance:
        defs = local_definitions(url, tmp_path, market=FileMarketDataResource(path=str(path)))
        result = defs.resolve_job_def("shared_job").execute_in_process(
            instance=instance, partition_key="default", raise_on_error=False
        )
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert "MarketDataError" in failure.step_failure_data.error.to_string()
        assert f"market file {path}" in failure.step_failure_data.error.to_string()
        for asset in ("market_data", "cge_scenarios"):
            assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is None

        tick = Ticker(defs, instance).tick(execute=False)
        assert [r.job_name for r in tick.run_requests] == ["shared_job"]  # trials wait for the data
        assert partitions(instance) == []


def test_a_sam_that_does_not_balance_fails_the_scenarios_and_no_trial_starts(tmp_path):
    values = np.array(_SAM.values)
    values[0, 1] *= 1.5
    path = tmp_path / "unbalanced_sam.csv"
    pl.DataFrame({"": list(_SAM.accounts), **{a: values[:, j] for j, a in enumerate(_SAM.accounts)}}).write_csv(path)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    add_complete_trials(url, "demo", [0.4])
    with dg.instance_for_test() as instance:
        defs = local_definitions(url, tmp_path)
        result = defs.resolve_job_def("shared_job").execute_in_process(
            instance=instance,
            partition_key="default",
            raise_on_error=False,
            run_config={"ops": {"cge_scenarios": {"config": {"sam_path": str(path)}}}},
        )
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert "StressTestError" in failure.step_failure_data.error.to_string()
        assert "SAM is not balanced" in failure.step_failure_data.error.to_string()
        assert instance.get_latest_materialization_event(dg.AssetKey("cge_scenarios")) is None

        tick = Ticker(defs, instance).tick(execute=False)
        assert [r.job_name for r in tick.run_requests] == ["shared_job"]
        assert partitions(instance) == []
