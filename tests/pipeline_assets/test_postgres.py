"""The same pipeline on PostgreSQL: Dagster instance storage and the Optuna study."""

import dagster as dg
import pytest

from tests.conftest import add_complete_trials
from tests.dagster_helpers import Ticker, local_definitions, materialized

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_instance(pg_database):
    overrides = {"storage": {"postgres": {"postgres_url": pg_database}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        yield instance


def test_trials_flow_on_a_postgres_instance_from_a_postgres_study(pg_instance, make_pg_database, tmp_path):
    # Separate databases: Dagster and Optuna both keep an alembic_version table.
    optuna_url = make_pg_database()
    add_complete_trials(optuna_url, "pg_study", [0.3, 0.2, 0.1])
    ticker = Ticker(local_definitions(optuna_url, tmp_path), pg_instance)
    ticker.tick_until_idle()
    keys = {f"pg_study__t{i:08d}" for i in range(3)}
    assert all(r.success for r in ticker.results)
    assert materialized(pg_instance, "optuna_trial") == keys
    assert materialized(pg_instance, "backtest_results") == keys
    infos = pg_instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(dg.AssetKey("backtest_results"), "backtest_gate")]
    )
    assert {i.partition_key for i in infos} == keys
    add_complete_trials(optuna_url, "pg_study", [0.4])
    result = ticker.tick()
    assert [r.partition_key for r in result.run_requests] == ["pg_study__t00000003"]
