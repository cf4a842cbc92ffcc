"""The stage table is the one list of trial stages: the step, its checks and the pure gauntlet agree."""

from __future__ import annotations

from pipeline_assets.stage_table import GATE_CHECKS, GATED_STAGES, TRIAL_ASSET_KEYS, TRIAL_STAGES, later_stages
from pipeline_assets.trial_assets import trial_gauntlet
from simulations.gauntlet import STAGES


def test_every_gated_row_is_a_pure_stage_in_the_same_order() -> None:
    assert [row.stage for row in GATED_STAGES] == list(STAGES)
    assert [row.key.to_user_string() for row in GATED_STAGES] == [stage.asset for stage in STAGES]
    assert [check.name for check in GATE_CHECKS] == [stage.gate for stage in STAGES]


def test_the_trial_step_is_built_from_the_table() -> None:
    assert list(trial_gauntlet.keys_by_output_name.values()) == list(TRIAL_ASSET_KEYS)
    assert set(trial_gauntlet.check_keys) == set(GATE_CHECKS)
    for row in TRIAL_STAGES:
        spec = trial_gauntlet.specs_by_key[row.key]
        assert spec.code_version == row.code_version
        assert {dep.asset_key for dep in spec.deps} == set(row.deps)
    # Honest blocking: a rejection must not fail the run, so no gate is declared blocking.
    assert not any(spec.blocking for spec in trial_gauntlet.check_specs)


def test_each_stage_depends_on_the_one_before_it() -> None:
    for before, row in zip(TRIAL_STAGES, TRIAL_STAGES[1:], strict=False):
        assert before.key in row.deps
        assert later_stages(before)[0] is row
