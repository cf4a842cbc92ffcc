import pytest

from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, demo_gate_policy, local_definitions

SLOW = {"lookback": 480, "vol_lookback": 720, "target_bar_vol": 0.003}  # fails min_trades 100
GOOD = {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003}  # passes every gate


@pytest.fixture
def instance(shared_instance):
    """The default market's shared assets are built, as the first tick would build them."""
    return shared_instance


def test_funnel_counts_every_stage_per_study(optuna_url, tmp_path, instance):
    add_complete_trials(optuna_url, "alpha", [0.1, 0.2], params=[SLOW, GOOD])
    add_complete_trials(optuna_url, "beta", [0.3], params=[GOOD])
    strict = demo_gate_policy({"backtest": {"min_trades": 100}})
    defs = local_definitions(optuna_url, tmp_path, gate_policy=strict)
    Ticker(defs, instance).tick_until_idle()
    result = defs.resolve_job_def("reporting_job").execute_in_process(instance=instance)
    assert result.success
    frame = result.output_for_node("study_funnel")
    rows = {r["study"]: r for r in frame.to_dicts()}
    assert rows["alpha"]["detected"] == 2 and rows["alpha"]["backtested"] == 2
    assert rows["alpha"]["passed_gate_1"] == 1 and rows["alpha"]["gate_1_pass_rate"] == 0.5
    assert rows["alpha"]["stressed"] == 1
    assert rows["beta"]["detected"] == 1 and rows["beta"]["passed_gate_1"] == 1
    promoted = rows["alpha"]["promoted"] + rows["beta"]["promoted"]
    assert promoted == rows["alpha"]["passed_gate_3"] + rows["beta"]["passed_gate_3"] == 2
    [mat] = result.asset_materializations_for_node("study_funnel")
    board = mat.metadata["leaderboard"].value.records
    assert {r.data["partition"] for r in board} == {"alpha__t00000001", "beta__t00000000"}
    assert mat.metadata["funnel_chart"].value.startswith("![trials per stage](data:image/png;base64,")
