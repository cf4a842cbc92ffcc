"""The deployment registry (resources/registry.py) on real SQLite files and real PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from resources.database import engine_for
from resources.process_cache import SCHEMAS_READY
from resources.registry import DeploymentRegistryResource, SqlDeploymentRegistryResource
from simulations.deployment import GATE_ORDER, DeploymentSettings
from simulations.errors import ConfigurationError, RegistryError, StorageCorruptError, StorageUnavailableError
from tests.simulations.test_deployment import make_candidate

#: Concurrent promotions per concurrency test; more than the capacity, so most must be held.
N_CONCURRENT = 6
CAPACITY = 2
#: The multi-process race: two spawned processes (each pays ~2 s of imports) for one slot.
N_PROCESSES = 2
PROCESS_CAPACITY = 1
#: Generous upper bound on a worker's life; only guards against a hung test, never asserted on.
WORKER_JOIN_SECONDS = 120


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


def registry(url: str, capacity: int = CAPACITY) -> SqlDeploymentRegistryResource:
    return SqlDeploymentRegistryResource(database_url=url, live_capacity=capacity)


def settings(**changes) -> DeploymentSettings:
    return DeploymentSettings(**{"live_capacity": CAPACITY, **changes})


def live_keys(reg: DeploymentRegistryResource) -> list[str]:
    return sorted(entry.partition_key for entry in reg.live())


def key(number: int) -> str:
    return f"demo__t{number:08d}"


# --------------------------------------------------------------------------- gates and records


def test_promotes_only_with_every_gate_passed(database_url: str) -> None:
    reg = registry(database_url)
    for number, gate in enumerate(GATE_ORDER):
        record = reg.decide_and_record(
            candidate=make_candidate(number, failed=(gate,)), settings=settings(), decided_by="pipeline"
        )
        assert record.decision == "rejected" and gate in record.reason
        assert reg.live() == []
    low_grade = reg.decide_and_record(
        candidate=make_candidate(5, grade="C"), settings=settings(), decided_by="pipeline"
    )
    assert low_grade.decision == "rejected" and reg.live() == []
    promoted = reg.decide_and_record(candidate=make_candidate(9), settings=settings(), decided_by="pipeline")
    assert promoted.decision == "promoted"
    assert [(e.partition_key, e.decision_id) for e in reg.live()] == [(key(9), promoted.id)]


def test_record_holds_everything_the_decision_was_made_on(database_url: str) -> None:
    reg = registry(database_url)
    candidate = make_candidate(4, data_hashes={"backtest": "abc", "forward": "def"})
    record = reg.decide_and_record(candidate=candidate, settings=settings(), decided_by="user:alice")
    assert (record.study, record.number, record.partition_key) == ("demo", 4, key(4))
    assert (record.params_hash, record.code_version, record.data_hashes) == (
        "params-0",
        "v1",
        {"backtest": "abc", "forward": "def"},
    )
    assert record.verdicts == candidate.verdicts
    assert record.verdicts["cge_gate"].checks[0].threshold == 0.0
    assert record.grade == "A" and record.settings == settings() and record.paper_mode == "forward"
    assert record.decided_by == "user:alice" and record.decided_at.tzinfo is not None
    assert record.context.emergency_stop is False and record.context.live == ()
    assert len(record.idempotency_key) == 64 and len(record.inputs_hash) == 64
    assert reg.decisions(partition_key=key(4)) == [record]
    assert reg.decisions(study="other") == []
    entry = reg.live()[0]
    assert entry.ranking_metrics["sharpe"] == 1.0 and entry.code_version == "v1"


def test_a_registry_from_before_paper_modes_keeps_its_decisions_and_records_modes_from_then_on(
    database_url: str,
) -> None:
    reg = registry(database_url)
    old = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE registry_decisions DROP COLUMN paper_mode"))
    finally:
        engine.dispose()
    # A new process opens the registry of the earlier version.
    engine_for(database_url).dispose()
    SCHEMAS_READY.clear()
    reopened = registry(database_url)
    [before] = reopened.decisions(partition_key=key(1))
    assert before.paper_mode is None and before.id == old.id
    holdout = make_candidate(2, paper_mode="holdout")
    held = reopened.decide_and_record(candidate=holdout, settings=settings(), decided_by="pipeline")
    assert (held.decision, held.paper_mode) == ("held_manual", "holdout")


def test_dry_run_records_and_changes_nothing_live(database_url: str) -> None:
    reg = registry(database_url)
    dry = settings(dry_run=True)
    record = reg.decide_and_record(candidate=make_candidate(1), settings=dry, decided_by="pipeline")
    assert (record.decision, record.would_have) == ("dry_run", "promoted")
    assert reg.live() == []
    for number in (2, 3):
        reg.decide_and_record(candidate=make_candidate(number), settings=settings(), decided_by="pipeline")
    before = reg.live()
    replacing = reg.decide_and_record(
        candidate=make_candidate(4, sharpe=5.0),
        settings=settings(dry_run=True, at_capacity="replace_weakest"),
        decided_by="pipeline",
    )
    assert (replacing.decision, replacing.would_have, replacing.replaced) == ("dry_run", "promoted", key(2))
    assert reg.live() == before


# --------------------------------------------------------------------------- emergency stop


def test_emergency_stop_set_elsewhere_blocks_promotions_until_cleared(database_url: str) -> None:
    reg, operator = registry(database_url), registry(database_url)
    operator.set_emergency_stop(stopped=True, by="user:bob", reason="venue outage")
    state = reg.emergency_stop()
    assert (state.stopped, state.by, state.reason) == (True, "user:bob", "venue outage")
    held = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    assert held.decision == "held_emergency_stop" and reg.live() == []
    assert reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline") == held

    operator.set_emergency_stop(stopped=False, by="cli", reason="venue back")
    promoted = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    assert promoted.decision == "promoted" and promoted.id != held.id
    history = reg.control_history()
    assert [(e.action, e.by, e.reason) for e in history] == [
        ("stop_cleared", "cli", "venue back"),
        ("stop_set", "user:bob", "venue outage"),
    ]


def _hold_write_lock_and_stop(url: str) -> Callable[[], None]:
    """Take the registry's write lock as an operator would and set the stop in that transaction.

    Returns the function that commits (and releases the lock).
    """
    if url.startswith("sqlite"):
        raw = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None, timeout=30)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE registry_controls SET stopped = 1, changed_by = 'user:ops', reason = 'halt'")

        def commit_sqlite() -> None:
            raw.execute("COMMIT")
            raw.close()

        return commit_sqlite
    engine = sa.create_engine(url)
    conn = engine.connect()
    conn.execute(sa.text("SELECT id FROM registry_controls WHERE id = 1 FOR UPDATE"))
    conn.execute(sa.text("UPDATE registry_controls SET stopped = true, changed_by = 'user:ops', reason = 'halt'"))

    def commit_postgres() -> None:
        conn.commit()
        conn.close()
        engine.dispose()

    return commit_postgres


def test_promotions_queued_behind_the_stop_are_held(database_url: str) -> None:
    reg = registry(database_url, capacity=N_CONCURRENT)
    reg.ping()
    commit = _hold_write_lock_and_stop(database_url)
    # The decisions start while the operator holds the write lock, so they queue behind it;
    # the stop it commits must be what every one of them reads.
    with concurrent.futures.ThreadPoolExecutor(N_CONCURRENT) as pool:
        futures = [
            pool.submit(
                reg.decide_and_record,
                candidate=make_candidate(n),
                settings=settings(live_capacity=N_CONCURRENT),
                decided_by="pipeline",
            )
            for n in range(N_CONCURRENT)
        ]
        time.sleep(0.5)  # let the decisions reach the lock; correctness does not depend on it
        commit()
        decisions = [future.result(WORKER_JOIN_SECONDS).decision for future in futures]
    assert decisions == ["held_emergency_stop"] * N_CONCURRENT
    assert reg.live() == []


# --------------------------------------------------------------------------- concurrency


def _run_in_threads(call, numbers) -> list:
    """``call(n)`` for every ``n``, each in its own thread, released together; errors re-raised."""
    numbers = list(numbers)
    barrier = threading.Barrier(len(numbers))

    def run(number: int):
        barrier.wait()
        return call(number)

    with concurrent.futures.ThreadPoolExecutor(len(numbers)) as pool:
        futures = [pool.submit(run, n) for n in numbers]
        return [future.result(WORKER_JOIN_SECONDS) for future in futures]


def _decide_in_threads(url: str, at_capacity: str) -> list:
    """One passing candidate per thread, trial n with paper Sharpe n, each with its own resource."""
    return _run_in_threads(
        lambda n: registry(url).decide_and_record(
            candidate=make_candidate(n, sharpe=float(n)),
            settings=settings(at_capacity=at_capacity),
            decided_by="pipeline",
        ),
        range(N_CONCURRENT),
    )


def _assert_consistent(url: str, capacity: int = CAPACITY) -> None:
    keys = [entry.partition_key for entry in registry(url, capacity).live()]
    assert len(keys) <= capacity and len(set(keys)) == len(keys)
    with engine_for(url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from registry_live_slots")).scalar_one() == capacity


def test_concurrent_threads_never_exceed_capacity(database_url: str) -> None:
    registry(database_url).ping()
    results = _decide_in_threads(database_url, "keep_incumbent")
    assert Counter(r.decision for r in results) == {"promoted": CAPACITY, "held_capacity": N_CONCURRENT - CAPACITY}
    promoted = sorted(r.partition_key for r in results if r.decision == "promoted")
    assert live_keys(registry(database_url)) == promoted
    _assert_consistent(database_url)


def test_concurrent_replace_weakest_keeps_the_best(database_url: str) -> None:
    registry(database_url).ping()
    _decide_in_threads(database_url, "replace_weakest")
    # Whatever the order, every one of the two best either found a free slot or beat the
    # weakest, and nothing beats them afterwards.
    assert live_keys(registry(database_url)) == [key(N_CONCURRENT - 2), key(N_CONCURRENT - 1)]
    _assert_consistent(database_url)


def _decide_in_process(url: str, number: int, barrier, queue) -> None:
    """Worker of the multi-process test (module level so spawn can import it)."""
    try:
        reg = registry(url, capacity=PROCESS_CAPACITY)
        candidate = make_candidate(number)
        barrier.wait()
        record = reg.decide_and_record(
            candidate=candidate, settings=settings(live_capacity=PROCESS_CAPACITY), decided_by="pipeline"
        )
        queue.put((number, record.decision))
    except Exception as exc:  # reported to the parent, which fails the test with it
        queue.put((number, f"error: {type(exc).__name__}: {exc}"))


def test_concurrent_processes_never_exceed_capacity(database_url: str) -> None:
    registry(database_url, capacity=PROCESS_CAPACITY).ping()
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(N_PROCESSES), ctx.Queue()
    workers = [
        ctx.Process(target=_decide_in_process, args=(database_url, n, barrier, queue)) for n in range(N_PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(queue.get(timeout=WORKER_JOIN_SECONDS) for _ in workers)
    for worker in workers:
        worker.join(WORKER_JOIN_SECONDS)
    assert Counter(outcomes.values()) == {
        "promoted": PROCESS_CAPACITY,
        "held_capacity": N_PROCESSES - PROCESS_CAPACITY,
    }, outcomes
    reg = registry(database_url, capacity=PROCESS_CAPACITY)
    assert live_keys(reg) == sorted(key(n) for n, d in outcomes.items() if d == "promoted")
    _assert_consistent(database_url, capacity=PROCESS_CAPACITY)


def test_database_rejects_a_duplicate_live_entry(database_url: str) -> None:
    reg = registry(database_url)
    record = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    with engine_for(database_url).begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(
            sa.text(
                "update registry_live_slots set partition_key = :k, decision_id = :d, claimed_at = :t "
                "where partition_key is null"
            ),
            {"k": record.partition_key, "d": record.id, "t": record.decided_at},
        )


# --------------------------------------------------------------------------- idempotency


def test_same_inputs_return_the_same_record(database_url: str) -> None:
    reg = registry(database_url)
    first = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    again = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    assert again == first and len(reg.decisions()) == 1

    rejected = reg.decide_and_record(
        candidate=make_candidate(2, failed=("cge_gate",)), settings=settings(), decided_by="pipeline"
    )
    reg.decide_and_record(candidate=make_candidate(3), settings=settings(), decided_by="pipeline")
    assert reg.decide_and_record(
        candidate=make_candidate(2, failed=("cge_gate",)), settings=settings(), decided_by="pipeline"
    ) == rejected
    # A live set that changed after the promotion does not re-decide it.
    assert reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline") == first
    assert len(reg.decisions()) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"code_version": "v2"},
        {"params_hash": "params-other"},
        {"data_hashes": {"backtest": "changed", "forward": "f" * 8}},
        {"failed": ("cge_gate",)},
    ],
)
def test_changed_inputs_make_a_new_record(sqlite_url: str, change: dict) -> None:
    reg = registry(sqlite_url)
    first = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    changed = reg.decide_and_record(candidate=make_candidate(1, **change), settings=settings(), decided_by="pipeline")
    assert changed.id != first.id and changed.inputs_hash != first.inputs_hash
    assert len(reg.decisions()) == 2
    # An already-live trial re-evaluated: a refresh of its entry, or a rejection that leaves it live.
    assert changed.decision in {"promoted", "rejected"}
    assert live_keys(reg) == [key(1)]


def test_changed_settings_make_a_new_record(sqlite_url: str) -> None:
    reg = registry(sqlite_url)
    first = reg.decide_and_record(candidate=make_candidate(1), settings=settings(dry_run=True), decided_by="pipeline")
    second = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    assert (first.decision, second.decision) == ("dry_run", "promoted")


def test_held_candidates_are_redecided_when_a_slot_frees(database_url: str) -> None:
    reg = registry(database_url)
    for number in (1, 2):
        reg.decide_and_record(candidate=make_candidate(number), settings=settings(), decided_by="pipeline")
    held = reg.decide_and_record(candidate=make_candidate(3), settings=settings(), decided_by="pipeline")
    assert held.decision == "held_capacity"
    assert reg.decide_and_record(candidate=make_candidate(3), settings=settings(), decided_by="pipeline") == held
    reg.retire(partition_key=key(1), by="user:alice", reason="drawdown")
    promoted = reg.decide_and_record(candidate=make_candidate(3), settings=settings(), decided_by="pipeline")
    assert promoted.decision == "promoted"
    assert live_keys(reg) == [key(2), key(3)]
    # A retired trial does not come back on a rematerialization with the same inputs, and its
    # record says so.
    again = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    assert again.decision == "retired" and again.id < promoted.id
    assert live_keys(reg) == [key(2), key(3)]


# --------------------------------------------------------------------------- capacity policies


def test_replace_weakest_at_capacity(database_url: str) -> None:
    reg = registry(database_url)
    weakest = settings(at_capacity="replace_weakest")
    a = reg.decide_and_record(candidate=make_candidate(1, sharpe=1.0), settings=weakest, decided_by="pipeline")
    reg.decide_and_record(candidate=make_candidate(2, sharpe=2.0), settings=weakest, decided_by="pipeline")
    c = reg.decide_and_record(candidate=make_candidate(3, sharpe=1.5), settings=weakest, decided_by="pipeline")
    assert (c.decision, c.replaced, c.replaced_decision_id) == ("promoted", key(1), a.id)
    assert live_keys(reg) == [key(2), key(3)]
    d = reg.decide_and_record(candidate=make_candidate(4, sharpe=0.5), settings=weakest, decided_by="pipeline")
    assert d.decision == "held_capacity" and live_keys(reg) == [key(2), key(3)]


# --------------------------------------------------------------------------- retire and rollback


def test_rollback_restores_the_replaced_deployment(database_url: str) -> None:
    reg = registry(database_url)
    weakest = settings(at_capacity="replace_weakest")
    a = reg.decide_and_record(candidate=make_candidate(1, sharpe=1.0), settings=weakest, decided_by="pipeline")
    reg.decide_and_record(candidate=make_candidate(2, sharpe=2.0), settings=weakest, decided_by="pipeline")
    c = reg.decide_and_record(candidate=make_candidate(3, sharpe=1.5), settings=weakest, decided_by="pipeline")
    record = reg.rollback(by="user:alice", reason="bad fills")
    assert record.decision == "rolled_back"
    assert (record.partition_key, record.target_decision_id) == (key(3), c.id)
    assert (record.restored, record.restored_decision_id) == (key(1), a.id)
    assert "bad fills" in record.reason and f"restored {key(1)}" in record.reason
    assert live_keys(reg) == [key(1), key(2)]
    assert {e.partition_key: e.decision_id for e in reg.live()}[key(1)] == a.id
    # The next rollback undoes the most recent promotion still live: trial 2, which replaced nothing.
    second = reg.rollback(by="cli", reason="again")
    assert (second.partition_key, second.restored) == (key(2), None)
    assert live_keys(reg) == [key(1)]


def test_rollback_of_a_refresh_restores_the_previous_evaluation(sqlite_url: str) -> None:
    reg = registry(sqlite_url)
    v1 = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    v2 = reg.decide_and_record(
        candidate=make_candidate(1, code_version="v2"), settings=settings(), decided_by="pipeline"
    )
    assert (v2.decision, v2.replaced, v2.replaced_decision_id) == ("promoted", key(1), v1.id)
    assert [e.decision_id for e in reg.live()] == [v2.id]
    reg.rollback(by="cli", reason="v2 misbehaves")
    assert [(e.partition_key, e.decision_id, e.code_version) for e in reg.live()] == [(key(1), v1.id, "v1")]


def test_rollback_under_emergency_stop_restores_nothing(sqlite_url: str) -> None:
    reg = registry(sqlite_url)
    weakest = settings(at_capacity="replace_weakest")
    for number, sharpe in ((1, 1.0), (2, 2.0), (3, 1.5)):
        reg.decide_and_record(candidate=make_candidate(number, sharpe=sharpe), settings=weakest, decided_by="pipeline")
    reg.set_emergency_stop(stopped=True, by="cli", reason="halt")
    record = reg.rollback(by="cli", reason="undo")
    assert record.restored is None and "emergency stop" in record.reason
    assert live_keys(reg) == [key(2)]


def test_rollback_and_retire_refuse_what_is_not_live(database_url: str) -> None:
    reg = registry(database_url)
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback(by="cli", reason="x")
    with pytest.raises(RegistryError, match="is not live"):
        reg.retire(partition_key=key(1), by="cli", reason="x")
    promoted = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    retired = reg.retire(partition_key=key(1), by="user:alice", reason="done")
    assert (retired.decision, retired.target_decision_id, retired.code_version) == ("retired", promoted.id, "v1")
    assert reg.live() == []
    assert [r.decision for r in reg.decisions(partition_key=key(1))] == ["retired", "promoted"]
    assert [r.decision for r in reg.decisions(limit=1)] == ["retired"]


# --------------------------------------------------------------------------- configuration and errors


def test_capacity_is_the_registry_slot_count(sqlite_url: str) -> None:
    reg = registry(sqlite_url)
    reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    with pytest.raises(ConfigurationError, match="settings live_capacity=3 but the registry .* has 2 live slots"):
        reg.decide_and_record(candidate=make_candidate(2), settings=DeploymentSettings(), decided_by="pipeline")
    with pytest.raises(ConfigurationError, match="trial demo__t00000002"):
        reg.decide_and_record(candidate=make_candidate(2), settings=DeploymentSettings(), decided_by="pipeline")
    with pytest.raises(ConfigurationError, match="resource live_capacity=5"):
        registry(sqlite_url, capacity=5).ping()

    assert reg.set_live_capacity(capacity=3, by="cli", reason="more room") == 3
    bigger = registry(sqlite_url, capacity=3)
    bigger.ping()
    for number in (2, 3):
        bigger.decide_and_record(candidate=make_candidate(number), settings=DeploymentSettings(), decided_by="pipeline")
    with pytest.raises(RegistryError, match="retire 2 first"):
        bigger.set_live_capacity(capacity=1, by="cli", reason="less")
    bigger.retire(partition_key=key(3), by="cli", reason="make room")
    bigger.set_live_capacity(capacity=2, by="cli", reason="less")
    reg.ping()
    assert [(e.action, e.capacity) for e in reg.control_history()] == [("capacity_set", 2), ("capacity_set", 3)]


@pytest.mark.parametrize("actor", ["bob", "user:", "user:a b", "pipeline ", ""])
def test_actors_are_validated(sqlite_url: str, actor: str) -> None:
    reg = registry(sqlite_url)
    with pytest.raises(RegistryError, match="'pipeline', 'cli' or 'user:<name>'"):
        reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by=actor)
    with pytest.raises(RegistryError):
        reg.set_emergency_stop(stopped=True, by=actor, reason="x")


def test_arguments_are_validated(sqlite_url: str) -> None:
    reg = registry(sqlite_url)
    with pytest.raises(RegistryError, match="one non-empty line"):
        reg.set_emergency_stop(stopped=True, by="cli", reason="two\nlines")
    with pytest.raises(RegistryError, match="bool"):
        reg.set_emergency_stop(stopped="yes", by="cli", reason="x")
    with pytest.raises(RegistryError, match="limit"):
        reg.decisions(limit=0)
    with pytest.raises(RegistryError, match="Candidate"):
        reg.decide_and_record(candidate={"study": "x"}, settings=settings(), decided_by="cli")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://u@h/db", "SQLite or PostgreSQL"),
        ("sqlite://", "SQLite file"),
        ("not a url", "not an SQLAlchemy URL"),
    ],
)
def test_unsupported_urls_are_configuration_errors(url: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        registry(url).ping()


def test_unreachable_postgres_is_transient_and_masks_the_password() -> None:
    reg = registry("postgresql+psycopg2://postgres:secret@127.0.0.1:1/none")
    with pytest.raises(StorageUnavailableError) as info:
        reg.live()
    assert info.value.transient and "secret" not in str(info.value) and "***" in str(info.value)


def test_corrupt_sqlite_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageCorruptError, match="deployment registry"):
        registry(f"sqlite:///{path}").live()


def test_is_a_dagster_resource(sqlite_url: str) -> None:
    @dg.asset
    def deployment_probe(registry: DeploymentRegistryResource) -> None:
        registry.set_emergency_stop(stopped=True, by="pipeline", reason="probe")

    result = dg.materialize([deployment_probe], resources={"registry": registry(sqlite_url)})
    assert result.success
    assert registry(sqlite_url).emergency_stop().stopped


# --------------------------------------------------------------------------- issue 20: what a record says


def test_a_rerun_after_a_retire_or_rollback_returns_the_current_record(database_url: str) -> None:
    reg = registry(database_url)
    promoted = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    retired = reg.retire(partition_key=key(1), by="user:alice", reason="done")
    # Re-materializing the trial with unchanged inputs decides nothing new and does not say
    # "promoted" of a trial that is not live: its record now is the retirement.
    again = reg.decide_and_record(candidate=make_candidate(1), settings=settings(), decided_by="pipeline")
    assert (again.id, again.decision, again.target_decision_id) == (retired.id, "retired", promoted.id)
    assert reg.live() == [] and len(reg.decisions()) == 2

    weakest = settings(at_capacity="replace_weakest")
    b = reg.decide_and_record(candidate=make_candidate(2, sharpe=1.0), settings=weakest, decided_by="pipeline")
    rolled_back = reg.rollback(by="cli", reason="bad fills")
    assert reg.decide_and_record(candidate=make_candidate(2, sharpe=1.0), settings=weakest, decided_by="pipeline") == rolled_back
    assert rolled_back.target_decision_id == b.id


def test_a_promotion_restored_by_a_rollback_is_current_again(sqlite_url: str) -> None:
    reg = registry(sqlite_url)
    weakest = settings(at_capacity="replace_weakest")
    a = reg.decide_and_record(candidate=make_candidate(1, sharpe=1.0), settings=weakest, decided_by="pipeline")
    reg.decide_and_record(candidate=make_candidate(2, sharpe=2.0), settings=weakest, decided_by="pipeline")
    reg.decide_and_record(candidate=make_candidate(3, sharpe=1.5), settings=weakest, decided_by="pipeline")
    reg.rollback(by="cli", reason="undo 3")  # trial 1 is live again with its decision
    assert reg.decide_and_record(candidate=make_candidate(1, sharpe=1.0), settings=weakest, decided_by="pipeline") == a


def _hold_write_lock(url: str) -> Callable[[], None]:
    """Take the registry's write lock as another writer would; returns the function that commits."""
    if url.startswith("sqlite"):
        raw = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None, timeout=30)
        raw.execute("BEGIN IMMEDIATE")

        def commit_sqlite() -> None:
            raw.execute("COMMIT")
            raw.close()

        return commit_sqlite
    engine = sa.create_engine(url)
    conn = engine.connect()
    conn.execute(sa.text("SELECT id FROM registry_controls WHERE id = 1 FOR UPDATE"))

    def commit_postgres() -> None:
        conn.commit()
        conn.close()
        engine.dispose()

    return commit_postgres


def test_stop_and_resume_are_timestamped_when_they_hold_the_lock(database_url: str) -> None:
    """Audit order is commit order: a stop that waited for the lock is not dated before it got it,
    so a decision committed while it waited never looks like it ignored the stop."""
    reg = registry(database_url)
    reg.ping()
    for stopped in (True, False):
        commit = _hold_write_lock(database_url)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(reg.set_emergency_stop, stopped=stopped, by="user:ops", reason="audit")
            time.sleep(0.3)  # the call waits for the lock; correctness does not depend on how long
            released_at = dt.datetime.now(dt.UTC)
            commit()
            state = future.result(WORKER_JOIN_SECONDS)
        assert state.at >= released_at, (state.at, released_at)
        assert reg.control_history(limit=1)[0].at == state.at
    history = reg.control_history()
    assert [e.at for e in history] == sorted((e.at for e in history), reverse=True)
