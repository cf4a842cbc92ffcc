import json
import math
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from resources.optuna_study import OptunaStudyResource, StudyCursor, mask_url
from simulations.errors import StorageCorruptError, StorageNotFoundError, StorageUnavailableError, TrialDataError
from simulations.trial import TrialState
from tests.conftest import add_complete_trials


def _resource(url: str, **kw) -> OptunaStudyResource:
    return OptunaStudyResource(storage_url=url, **kw)


def test_reads_complete_trials_incrementally(optuna_url):
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3])
    res = _resource(optuna_url)
    first = res.read_new_trials("demo", StudyCursor())
    assert [s.number for s in first.completed] == [0, 1, 2]
    assert first.cursor.watermark >= 2 and first.cursor.pending == ()

    again = res.read_new_trials("demo", first.cursor)
    assert again.completed == [] and again.cursor == first.cursor

    add_complete_trials(optuna_url, "demo", [0.4])
    later = res.read_new_trials("demo", first.cursor)
    assert [s.number for s in later.completed] == [3]


def test_snapshot_equals_what_optuna_stored(optuna_url):
    study = add_complete_trials(optuna_url, "demo", [1.5])
    stored = study.trials[0]
    snap = _resource(optuna_url).read_new_trials("demo", StudyCursor()).completed[0]
    assert snap.params == stored.params
    assert snap.values == tuple(stored.values)
    assert snap.user_attrs == stored.user_attrs
    assert snap.trial_id == stored._trial_id
    assert snap.state == TrialState.COMPLETE
    assert snap.datetime_complete.replace(tzinfo=None) == stored.datetime_complete


def test_running_trials_are_revisited_and_pruned_failed_dropped(optuna_url):
    study = optuna.create_study(study_name="demo", storage=optuna_url)
    running = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    pruned = study.ask()
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    done = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(done, 0.5)

    res = _resource(optuna_url)
    first = res.read_new_trials("demo", StudyCursor())
    assert [s.number for s in first.completed] == [done.number]
    assert first.cursor.pending == (running._trial_id,)
    assert first.still_running == 1 and first.dropped == 2

    study.tell(running, 0.9)  # completes after later trials did
    second = res.read_new_trials("demo", first.cursor)
    assert [s.number for s in second.completed] == [running.number]
    assert second.cursor.pending == ()


def test_two_studies_in_one_storage(optuna_url):
    add_complete_trials(optuna_url, "alpha", [0.1, 0.2])
    add_complete_trials(optuna_url, "beta", [0.3])
    res = _resource(optuna_url)
    assert res.list_studies() == ["alpha", "beta"]
    assert _resource(optuna_url, studies=["beta"]).list_studies() == ["beta"]
    assert len(res.read_new_trials("beta", StudyCursor()).completed) == 1
    assert [s.number for s in res.get_trials("alpha", [1, 0])] == [0, 1]


def test_a_trial_number_the_study_lacks_is_named_with_the_numbers_it_has(optuna_url):
    add_complete_trials(optuna_url, "alpha", [0.1, 0.2])
    add_complete_trials(optuna_url, "beta", [0.3])  # another study: Optuna's internal ids differ from numbers
    res = _resource(optuna_url)
    for wanted in ([999], [1, 999, 5]):
        with pytest.raises(TrialDataError) as info:
            res.get_trials("alpha", wanted)
        missing = ", ".join(str(n) for n in sorted(wanted) if n > 1)
        assert str(info.value).endswith(f"study 'alpha' has no trial numbered {missing} (it has 2 trial(s), numbered 0 to 1)")
        assert "study_id" not in str(info.value)


def _corrupt_value(url: str, sql: str) -> None:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


def test_unreadable_trial_row_is_a_typed_storage_error_isolated_to_its_trial(optuna_url):
    # SQLite stores a NaN objective as NULL, which Optuna itself cannot read back.
    add_complete_trials(optuna_url, "demo", [0.1, 0.2, 0.3])
    _corrupt_value(optuna_url, "update trial_values set value = NULL where trial_id = 2")
    res = _resource(optuna_url)
    batch = res.read_new_trials("demo", StudyCursor())
    assert [s.number for s in batch.completed] == [0, 2]
    assert list(batch.unreadable) == [1] and "demo#1" in batch.unreadable[1]
    assert batch.cursor.watermark == 3 and not batch.cursor.pending  # not read again every tick
    with pytest.raises(StorageCorruptError, match="'demo'") as info:
        res.get_trials("demo", [1])
    assert not info.value.transient


def _read_counting_calls(
    res: OptunaStudyResource,
    calls: list[int],
    *,
    numbers: list[int],
    interrupt_at: int = 0,
    sig: signal.Signals = signal.SIGINT,
) -> list[int]:
    """`get_trials` of study "demo", appending each Python call into SQLAlchemy or Optuna (not
    Gauntlet's own frames) to ``calls`` and raising ``sig`` at call number ``interrupt_at``
    (none when 0). Returns the numbers read."""

    def tracer(frame, event, _arg):
        if event == "call" and ("/sqlalchemy/" in frame.f_code.co_filename or "/optuna/" in frame.f_code.co_filename):
            calls.append(1)
            if len(calls) == interrupt_at:
                signal.raise_signal(sig)

    sys.settrace(tracer)
    try:
        return [s.number for s in res.get_trials("demo", numbers)]
    finally:
        sys.settrace(None)


#: Run in a new interpreter, so Optuna's ORM is not yet configured, as in a new run worker. Each
#: probe is a fork that sends itself SIGTERM (what the daemon's supervisor sends its process
#: group) at the k-th Python call into SQLAlchemy or Optuna during its first read, inside
#: Dagster's step boundary (which raises the interrupt at once), and then reads again, as the
#: step's RetryPolicy does in the same process.
_INTERRUPT_PROBE = textwrap.dedent(
    """
    import json, os, signal, sys
    import dagster as dg
    from resources.optuna_study import OptunaStudyResource
    from tests.resources.test_optuna_study import _read_counting_calls

    url, n_probes = sys.argv[1], int(sys.argv[2])
    res = OptunaStudyResource(storage_url=url)
    numbers = list(range(10))

    def in_child(work):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, json.dumps(work()).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            out = pipe.read()
        os.waitpid(pid, 0)
        return json.loads(out)

    def count():
        calls = []
        _read_counting_calls(res, calls, numbers=numbers)
        return len(calls)

    def probe(stop_at):
        first = "returned"
        with dg.raise_execution_interrupts():
            try:
                _read_counting_calls(res, [], numbers=numbers, interrupt_at=stop_at, sig=signal.SIGTERM)
            except BaseException as exc:
                first = type(exc).__name__
            try:
                second = [s.number for s in res.get_trials("demo", numbers)]
            except Exception as exc:
                second = f"{type(exc).__name__}: {exc}"
        return {"stop_at": stop_at, "first": first, "second": second}

    total = in_child(count)
    print(json.dumps([in_child(lambda k=total * i // (n_probes + 1): probe(k)) for i in range(1, n_probes + 1)]))
    """
)


def test_a_sigterm_inside_the_first_read_never_leaves_the_process_unable_to_read(optuna_url):
    """The interrupt waits for the read to end: a torn first read broke every later read in the
    process (AttributeError: strategy, _use_get, read as a corrupt storage), so the step's retry in
    the same run worker failed for good and its trials waited for `gauntlet retry`."""
    add_complete_trials(optuna_url, "demo", [0.1 * i for i in range(10)])
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_PROBE, optuna_url, "24"],
        capture_output=True, text=True, timeout=300, check=True, cwd=Path(__file__).parents[2],
    )
    probes = json.loads(done.stdout)
    assert len(probes) == 24
    for probe in probes:
        # The signal landed inside the read and was delivered when the read had ended.
        assert probe["first"] == "DagsterExecutionInterruptedError", probe
        assert probe["second"] == list(range(10)), probe


def test_an_interrupt_at_a_terminal_arrives_once_the_read_has_ended(optuna_url):
    """Without Dagster's handler (``gauntlet`` at a terminal), Python's own SIGINT handler still
    gets the signal: once the read has run to its end, with the handlers put back."""
    add_complete_trials(optuna_url, "demo", [0.1, 0.2])
    res = _resource(optuna_url)
    res.get_trials("demo", [0, 1])  # the storage opened and the ORM configured
    whole: list[int] = []
    _read_counting_calls(res, whole, numbers=[0, 1])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    interrupted: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        _read_counting_calls(res, interrupted, numbers=[0, 1], interrupt_at=1)
    assert len(interrupted) == len(whole)  # the signal at the first call waited for the last
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_non_json_params_and_user_attrs_are_rejected(optuna_url):
    study = optuna.create_study(study_name="demo", storage=optuna_url)
    choices = optuna.distributions.CategoricalDistribution([math.inf, 1.0])
    study.add_trial(optuna.trial.create_trial(params={"c": math.inf}, distributions={"c": choices}, value=0.1))
    study.add_trial(optuna.trial.create_trial(value=0.2, user_attrs={"sharpe": math.nan}))
    study.add_trial(optuna.trial.create_trial(params={"c": 1.0}, distributions={"c": choices}, value=0.3))
    batch = _resource(optuna_url).read_new_trials("demo", StudyCursor())
    assert [s.number for s in batch.completed] == [2]
    messages = sorted(str(e) for e in batch.rejected)
    assert "demo#0" in messages[0] and "params" in messages[0]
    assert "demo#1" in messages[1] and "user_attrs" in messages[1]


def test_infinite_objective_written_by_optuna_is_rejected(optuna_url):
    add_complete_trials(optuna_url, "demo", [math.inf, 0.5])
    batch = _resource(optuna_url).read_new_trials("demo", StudyCursor())
    assert [s.number for s in batch.completed] == [1]
    assert "finite" in str(batch.rejected[0])


def test_unreachable_storage_is_a_transient_typed_error_with_masked_password():
    url = "postgresql+psycopg2://gauntlet:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(StorageUnavailableError) as info:
        _resource(url).list_studies()
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    assert info.value.transient


def test_corrupt_sqlite_file_is_a_deterministic_typed_error(tmp_path: Path):
    path = tmp_path / "optuna.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageCorruptError, match="optuna.db") as info:
        _resource(f"sqlite:///{path}").list_studies()
    assert not info.value.transient


def test_missing_study_is_a_typed_error(optuna_url):
    add_complete_trials(optuna_url, "demo", [0.1])
    with pytest.raises(StorageNotFoundError, match="does not exist"):
        _resource(optuna_url).read_new_trials("nope", StudyCursor())


def test_journal_file_storage(tmp_path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "journal.log"
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="j", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    res = _resource(f"journal:{path}")
    batch = res.read_new_trials("j", StudyCursor())
    assert [s.number for s in batch.completed] == [0, 1, 2]
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert [s.number for s in res.read_new_trials("j", batch.cursor).completed] == [3]


def test_mask_url():
    assert mask_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.postgres
def test_optuna_study_on_postgres(pg_database):
    add_complete_trials(pg_database, "pg", [0.1, 0.2])
    res = _resource(pg_database)
    batch = res.read_new_trials("pg", StudyCursor())
    assert [s.number for s in batch.completed] == [0, 1]
    add_complete_trials(pg_database, "pg", [0.3, 0.4])
    # PostgreSQL keeps a NaN objective as NaN: that trial is rejected, the others admitted.
    import sqlalchemy as sa

    with sa.create_engine(pg_database).begin() as conn:
        conn.execute(sa.text("update trial_values set value = 'NaN' where trial_id = 3"))
    later = res.read_new_trials("pg", batch.cursor)
    assert [s.number for s in later.completed] == [3]
    assert len(later.rejected) == 1 and "pg#2" in str(later.rejected[0])
    with pytest.raises(TrialDataError, match="pg#2"):
        res.get_trials("pg", [2])
