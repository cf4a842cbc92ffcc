import datetime as dt
import math

import pytest
from hypothesis import given, strategies as st

from simulations.errors import TrialDataError
from simulations.trial import TrialSnapshot, TrialState


def _fields(**overrides):
    base = dict(
        study_name="demo",
        number=3,
        trial_id=17,
        state=TrialState.COMPLETE,
        params={"lookback": 24, "threshold": 0.5, "mode": "fast"},
        values=(1.25,),
        user_attrs={"strategy": "momentum", "in_sample": {"sharpe": 1.1}},
        datetime_start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        datetime_complete=dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC),
    )
    base.update(overrides)
    return base


def test_hash_is_stable_and_content_sensitive():
    a = TrialSnapshot.build(**_fields())
    b = TrialSnapshot.build(**_fields(params={"mode": "fast", "threshold": 0.5, "lookback": 24}))
    assert a.content_hash == b.content_hash  # key order does not matter
    assert len(a.content_hash) == 64
    c = TrialSnapshot.build(**_fields(values=(1.2500001,)))
    assert c.content_hash != a.content_hash


def test_golden_hash_does_not_drift():
    # Pinned so that a change of the canonical form (which would change every data version) is deliberate.
    snap = TrialSnapshot.build(**_fields())
    assert snap.content_hash == "b460b0676f2ec52c37a820d156f47a4fb1c482d02b9e189ce6f179806ffa0bf1"
    assert TrialSnapshot.from_json(snap.to_json()).content_hash == snap.content_hash


def test_snapshot_is_frozen():
    snap = TrialSnapshot.build(**_fields())
    with pytest.raises(Exception):
        snap.number = 4  # type: ignore[misc]


def test_json_round_trip_and_tamper_detection():
    snap = TrialSnapshot.build(**_fields())
    assert TrialSnapshot.from_json(snap.to_json()) == snap
    tampered = snap.to_json().replace('"lookback":24', '"lookback":25')
    with pytest.raises(TrialDataError, match="altered"):
        TrialSnapshot.from_json(tampered)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_objective_is_a_typed_error_naming_the_trial(bad):
    with pytest.raises(TrialDataError, match=r"demo#3.*finite"):
        TrialSnapshot.build(**_fields(values=(bad,)))


@given(st.one_of(st.just(math.nan), st.just(math.inf), st.builds(object), st.sets(st.integers(), min_size=1)))
def test_non_json_user_attrs_or_params_are_rejected(bad):
    with pytest.raises(TrialDataError):
        TrialSnapshot.build(**_fields(user_attrs={"x": bad}))
    with pytest.raises(TrialDataError):
        TrialSnapshot.build(**_fields(params={"x": bad}))


def test_label_and_value():
    snap = TrialSnapshot.build(**_fields())
    assert snap.label == "demo#3"
    assert snap.value == 1.25
