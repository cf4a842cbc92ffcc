"""`paper_session_sensor`: advance paper sessions as bars arrive; grade them once they have traded long enough.

A forward session matures as the market feed brings bars (each new version of an instrument's
source rebuilds its `market_data`, whose forward window grows), a holdout session on the
``wall`` clock as time passes. This sensor advances every running session on the forward window
of its instrument's latest `market_data` (bars not traded yet are processed and persisted) and
asks for grading — `paper_trading_grade` and `deployment_record` of that trial — once it has
traded the policy's minimum days. The run key carries the session's market days, so a session
is graded at most once per market day (a failed grading run is asked for again once the next
day's bars arrive), never twice for the same state. A
session that cannot go on (its market changed under it) is reported and skipped; the others go on.
"""

import datetime as dt

import dagster as dg

from resources.dagster_private import (
    NOT_FINISHED_STATUSES,
    PARENT_RUN_ID_TAG,
    WILL_RETRY_TAG,
    UnresolvedAssetJobDefinition,
)
from pipeline_assets.paper_stage import PAPER
from pipeline_assets.shared_assets import MARKET_DATA
from pipeline_assets.stage_table import later_stages
from pipeline_assets.partitions import trials_partitions_def
from resources.gate_policy import GatePolicyResource
from resources.paper_broker import PaperBrokerResource
from resources.strategy_plugins import StrategyPluginsResource
from simulations.errors import PipelineError

DEFAULT_PAPER_INTERVAL_SECONDS = 60
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
#: A failed run Dagster will retry counts as in flight until its retry exists, for this long at
#: most (the daemon launches a retry within seconds; one that never comes frees its trials).
RETRY_PENDING_SECONDS = 600.0


def in_flight_partitions(instance: dg.DagsterInstance, job_name: str) -> set[str]:
    """Trials a run of ``job_name`` is about to evaluate (it grades them too): runs queued or
    running, and failed runs whose retry Dagster is about to launch (``dagster/will_retry``)."""
    runs = list(instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=NOT_FINISHED_STATUSES)))
    retrying = instance.get_run_records(
        dg.RunsFilter(
            job_name=job_name,
            statuses=[dg.DagsterRunStatus.FAILURE],
            tags={WILL_RETRY_TAG: "true"},
            updated_after=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=RETRY_PENDING_SECONDS),
        )
    )
    if retrying:
        retried = {
            record.dagster_run.tags.get(PARENT_RUN_ID_TAG)
            for record in instance.get_run_records(
                dg.RunsFilter(tags={PARENT_RUN_ID_TAG: [r.dagster_run.run_id for r in retrying]})
            )
        }
        runs += [r for r in retrying if r.dagster_run.run_id not in retried]
    if not runs:
        return set()
    order = instance.get_dynamic_partitions(trials_partitions_def.name)
    position = {key: i for i, key in enumerate(order)}
    keys: set[str] = set()
    for record in runs:
        tags = record.dagster_run.tags
        if "dagster/partition" in tags:
            keys.add(tags["dagster/partition"])
        elif tags.get(RANGE_START) in position and tags.get(RANGE_END) in position:
            keys.update(order[position[tags[RANGE_START]] : position[tags[RANGE_END]] + 1])
    return keys


def build_paper_session_sensor(
    *, job: UnresolvedAssetJobDefinition, interval_seconds: int = DEFAULT_PAPER_INTERVAL_SECONDS
) -> dg.SensorDefinition:
    """The sensor that grades matured paper sessions through ``job``."""

    @dg.sensor(
        name="paper_session_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Advances paper sessions and grades each one once it has traded the minimum days.",
    )
    def paper_session_sensor(
        context: dg.SensorEvaluationContext,
        paper_broker: PaperBrokerResource,
        gate_policy: GatePolicyResource,
        strategy_plugins: StrategyPluginsResource,
    ) -> dg.SensorResult:
        min_days = gate_policy.policy().paper.min_days
        # A trial already graded, or about to be by a run in flight, is not asked for again.
        graded = context.instance.get_materialized_partitions(PAPER.key) | in_flight_partitions(
            context.instance, job.name
        )
        running = [s for s in paper_broker.sessions() if s.status == "running" and s.trial_key not in graded]
        if not running:
            return dg.SensorResult(skip_reason="no running paper session to grade")
        if context.repository_def is None:
            raise dg.DagsterInvariantViolationError("paper_session_sensor loads market_data from its code location")
        # The windows every trial run of an instrument loads: sessions trade the bars their grade is computed on.
        windows = {}
        for name in sorted({s.instrument for s in running}):
            try:
                windows[name] = context.repository_def.load_asset_value(
                    MARKET_DATA, partition_key=name, instance=context.instance
                )
            except (PipelineError, dg.DagsterError) as exc:
                # One instrument's missing or removed data holds back its own sessions only.
                context.log.warning(f"paper sessions on instrument {name!r} wait: its market_data cannot be loaded: {exc}")
        running = [s for s in running if s.instrument in windows]
        strategies = strategy_plugins.registry()
        requests = []
        pending = refused = 0
        synced = paper_broker.sync_many(
            windows_of={s.trial_key: windows[s.instrument] for s in running}, strategies=strategies
        )
        for key, session in synced.items():
            if isinstance(session, PipelineError):
                # One session's market changed under it (a bar inserted before its last one): it
                # waits for its data to be restored or for a person to stop it; the others trade on.
                context.log.error(f"paper session {key} cannot trade on: {session}")
                refused += 1
                continue
            if session.days_elapsed < min_days:
                pending += 1
                continue
            requests.append(
                dg.RunRequest(
                    # Once per market day: the sequential test looks at each day's close, and a
                    # session it keeps open for months would otherwise ask for a run per bar.
                    run_key=f"paper-grade:{session.trial_key}:{session.market_days}",
                    partition_key=session.trial_key,
                    asset_selection=[PAPER.key, *(row.key for row in later_stages(PAPER))],
                    tags={"gauntlet/stage": "paper_grading"},
                )
            )
        held = f"; {refused} refused their market (see the tick's log)" if refused else ""
        if not requests:
            return dg.SensorResult(skip_reason=f"{pending} paper session(s) still below {min_days:g} days{held}")
        context.log.info(f"{len(requests)} matured paper session(s) to grade; {pending} still pending{held}")
        return dg.SensorResult(run_requests=requests)

    return paper_session_sensor
