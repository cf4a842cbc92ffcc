"""A trial's attributes are bounded in depth and size at the Optuna boundary (issue 20, item 7).

The faults: user_attrs nested 300 deep made serialising the snapshot raise an untyped
`ValueError` ("Maximum serialization depth exceeded") that the step's retry policy retried
four times; one 20 MB attribute was copied into the snapshot artifact and the instance's
metadata several times (about 60 MB). Both are now a `TrialDataError` naming the trial and the
attribute, deterministic (never retried), and the other trials of the study go on.
"""

from __future__ import annotations

import dagster as dg
import optuna
import pytest

from resources.dagster_private import DagsterEventType
from resources.optuna_study import OptunaStudyResource, StudyCursor
from simulations.errors import TrialDataError
from simulations.trial import MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTE_DEPTH, TrialSnapshot
from tests.conftest import add_complete_trials
from tests.dagster_helpers import execute_request, local_definitions

GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _add_with_user_attrs(url: str, study_name: str, user_attrs: dict) -> None:
    study = optuna.create_study(study_name=study_name, storage=url, load_if_exists=True, direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params=GOOD,
            distributions={
                "lookback": optuna.distributions.IntDistribution(6, 480, log=True),
                "vol_lookback": optuna.distributions.IntDistribution(24, 720, log=True),
                "target_bar_vol": optuna.distributions.FloatDistribution(0.001, 0.01, log=True),
            },
            value=0.3,
            user_attrs={"strategy": "momentum", "in_sample_sharpe": 0.3, **user_attrs},
        )
    )


def _snapshot(**user_attrs) -> TrialSnapshot:
    return TrialSnapshot.build(
        study_name="s", number=7, trial_id=7, state="COMPLETE", params={}, values=(1.0,), user_attrs=user_attrs
    )


def test_limits_name_the_trial_and_the_attribute():
    assert _snapshot(ok=_nested(MAX_ATTRIBUTE_DEPTH), strategy="momentum").content_hash
    with pytest.raises(TrialDataError, match=rf"trial s#7.*user_attrs: Value error, attribute 'deep' is nested deeper than {MAX_ATTRIBUTE_DEPTH}"):
        _snapshot(deep=_nested(300))
    with pytest.raises(TrialDataError, match=r"trial s#7.*attribute 'deeper' is nested deeper"):
        _snapshot(deeper=_nested(100_000))  # deeper than Python's recursion limit
    with pytest.raises(TrialDataError, match=rf"trial s#7.*attribute 'blob' takes .* bytes as JSON, more than {MAX_ATTRIBUTE_BYTES}"):
        _snapshot(blob="x" * (MAX_ATTRIBUTE_BYTES + 1))
    with pytest.raises(TrialDataError, match=r"trial s#7.*params: .*param 'note' takes .* bytes"):
        TrialSnapshot.build(
            study_name="s", number=7, trial_id=7, state="COMPLETE",
            params={"note": "x" * (MAX_ATTRIBUTE_BYTES + 1)}, values=(1.0,), user_attrs={},
        )


def test_a_deep_or_huge_attribute_rejects_its_trial_only(optuna_url: str):
    add_complete_trials(optuna_url, "demo", [0.1], params=[GOOD])
    _add_with_user_attrs(optuna_url, "demo", {"deep": _nested(300)})
    _add_with_user_attrs(optuna_url, "demo", {"equity_curve": "1.0," * 5_000_000})  # 20 MB
    batch = OptunaStudyResource(storage_url=optuna_url).read_new_trials("demo", StudyCursor())
    assert [s.number for s in batch.completed] == [0]
    assert [(e.trial, "deep" in str(e), "equity_curve" in str(e)) for e in batch.rejected] == [
        ("demo#1", True, False),
        ("demo#2", False, True),
    ]
    assert all(not e.transient for e in batch.rejected)


def test_a_run_over_such_a_trial_fails_once_without_retries(optuna_url: str, tmp_path, shared_instance):
    _add_with_user_attrs(optuna_url, "demo", {"deep": _nested(300)})
    defs = local_definitions(optuna_url, tmp_path)
    shared_instance.add_dynamic_partitions("trials", ["demo__t00000000"])
    result = execute_request(defs, shared_instance, dg.RunRequest(partition_key="demo__t00000000"))
    assert not result.success
    retries = shared_instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)
    assert retries == []
    (failure,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    user_failure = failure.step_failure_data.user_failure_data
    assert "attribute 'deep' is nested deeper" in user_failure.description
    assert user_failure.metadata["error_types"].value == ["TrialDataError"]
