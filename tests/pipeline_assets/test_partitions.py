import pytest
from hypothesis import example, given, strategies as st

from pipeline_assets.trial_keys import parse_trial_partition_key, study_key_prefix, trial_partition_key


def test_safe_study_names_are_kept_readable():
    assert trial_partition_key("demo", 12) == "demo__t00000012"
    assert parse_trial_partition_key("demo__t00000012") == ("demo", 12)


def test_keys_sort_by_trial_number_within_a_study():
    keys = [trial_partition_key("demo", n) for n in (0, 7, 10, 99, 100, 12345)]
    assert keys == sorted(keys)


@given(st.text(min_size=1, max_size=120), st.integers(min_value=0, max_value=10**9))
@example(name="0\n", number=0)  # a name ending in a newline once passed as safe ("$" matches before it)
def test_keys_are_ui_safe_and_parse_back(name, number):
    key = trial_partition_key(name, number)
    assert "," not in key and "..." not in key
    assert all(ch.isprintable() and ch not in "\r\n\t" for ch in key)
    assert parse_trial_partition_key(key) == (study_key_prefix(name), number)


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60), st.integers(0, 10**6))
def test_keys_of_different_studies_never_collide(a, b, number):
    if a != b:
        assert trial_partition_key(a, number) != trial_partition_key(b, number)


def test_unsafe_names_get_a_hash_suffix():
    prefix = study_key_prefix("my study, v2...")
    assert "~" in prefix and "," not in prefix and "..." not in prefix


def test_negative_numbers_and_malformed_keys_are_rejected():
    with pytest.raises(ValueError):
        trial_partition_key("demo", -1)
    with pytest.raises(ValueError, match="not a trial partition key"):
        parse_trial_partition_key("demo-12")
