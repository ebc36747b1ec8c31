"""The state stores: one behaviour, in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from mailsim_runtime import db
from mailsim_runtime.state import (
    FIRST_STATE,
    MemoryStateStore,
    SqlStateStore,
    StateRecord,
    StateStore,
)

MODULE = "app.handlers"


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC))


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[StateStore]:
    """Each kind of store, empty, on the fake clock."""
    if request.param == "memory":
        yield MemoryStateStore(clock)
        return
    url: str = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "postgres_url"
    )
    sql = SqlStateStore.from_url(url, clock=clock)
    try:
        yield sql
    finally:
        sql.close()


@pytest.fixture
def sql_store(migrated_db_url: str) -> Iterator[SqlStateStore]:
    """A SQL store on SQLite and on PostgreSQL, tables created."""
    store = SqlStateStore(migrated_db_url)
    try:
        yield store
    finally:
        store.close()


# Behaviour every store shares --------------------------------------------------


def test_an_unknown_conversation_is_in_start(store: StateStore) -> None:
    assert store.get(MODULE, "nobody@example.com") == FIRST_STATE
    assert store.records() == []


def test_set_then_get(store: StateStore) -> None:
    store.set(MODULE, "ann@example.com", "POSTING", sender="Ann@Example.com")
    assert store.get(MODULE, "ann@example.com") == "POSTING"
    store.set(MODULE, "ann@example.com", "CONFIRMING")
    assert store.get(MODULE, "ann@example.com") == "CONFIRMING"


def test_setting_start_forgets_the_conversation(store: StateStore) -> None:
    store.set(MODULE, "ann@example.com", "POSTING")
    store.set(MODULE, "ann@example.com", FIRST_STATE)
    assert store.get(MODULE, "ann@example.com") == FIRST_STATE
    assert store.records() == []
    store.set(MODULE, "never@example.com", FIRST_STATE)  # forgetting the unknown is fine
    assert store.records() == []


def test_records_carry_everything(store: StateStore, clock: FakeClock) -> None:
    store.set(MODULE, "ann@example.com", "POSTING", sender="Ann@Example.com")
    clock.advance(60)
    store.set("other.handlers", "list-1", "BOUNCING", sender="bob@example.org")
    records = sorted(store.records(), key=lambda r: r.module)
    assert records == [
        StateRecord(
            MODULE,
            "ann@example.com",
            "Ann@Example.com",
            "POSTING",
            datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        ),
        StateRecord(
            "other.handlers",
            "list-1",
            "bob@example.org",
            "BOUNCING",
            datetime(2024, 3, 1, 12, 31, 15, 123456, tzinfo=UTC),
        ),
    ]
    assert all(r.last_modified.tzinfo is not None for r in records)


def test_clear_forgets_everything(store: StateStore) -> None:
    store.set(MODULE, "a", "ONE")
    store.set("other", "b", "TWO")
    store.clear()
    assert store.records() == []
    assert store.get(MODULE, "a") == FIRST_STATE


def test_keys_are_per_module_and_key(store: StateStore) -> None:
    store.set(MODULE, "ann@example.com", "POSTING")
    store.set("other.handlers", "ann@example.com", "BOUNCING")
    store.set(MODULE, "bob@example.com", "CONFIRMING")
    assert store.get(MODULE, "ann@example.com") == "POSTING"
    assert store.get("other.handlers", "ann@example.com") == "BOUNCING"
    assert store.get(MODULE, "bob@example.com") == "CONFIRMING"
    store.set(MODULE, "ann@example.com", FIRST_STATE)
    assert store.get("other.handlers", "ann@example.com") == "BOUNCING"
    assert len(store.records()) == 2


def test_transition_commits_the_assigned_state(store: StateStore, clock: FakeClock) -> None:
    with store.transition(MODULE, "ann@example.com", "ann@example.com") as conversation:
        assert (conversation.module, conversation.key) == (MODULE, "ann@example.com")
        assert conversation.state == FIRST_STATE
        conversation.state = "POSTING"
    assert store.get(MODULE, "ann@example.com") == "POSTING"
    clock.advance(5)
    with store.transition(MODULE, "ann@example.com", "ann@example.com") as conversation:
        assert conversation.state == "POSTING"
        conversation.state = "CONFIRMING"
    [record] = store.records()
    assert (record.sender, record.state) == ("ann@example.com", "CONFIRMING")
    assert record.last_modified == clock.now()


def test_transition_that_stays_put_refreshes_last_modified(
    store: StateStore, clock: FakeClock
) -> None:
    store.set(MODULE, "ann@example.com", "POSTING")
    clock.advance(30)
    with store.transition(MODULE, "ann@example.com", "ann@example.com"):
        pass
    [record] = store.records()
    assert record.state == "POSTING"
    assert record.last_modified == clock.now()


def test_transition_back_to_start_forgets(store: StateStore) -> None:
    store.set(MODULE, "ann@example.com", "POSTING")
    with store.transition(MODULE, "ann@example.com", "ann@example.com") as conversation:
        conversation.state = FIRST_STATE
    assert store.records() == []


def test_a_transition_staying_in_start_stores_nothing(store: StateStore) -> None:
    with store.transition(MODULE, "ann@example.com", "ann@example.com") as conversation:
        assert conversation.state == FIRST_STATE
    assert store.records() == []
    assert store.get(MODULE, "ann@example.com") == FIRST_STATE


def test_transition_is_rolled_back_when_the_block_raises(store: StateStore) -> None:
    store.set(MODULE, "ann@example.com", "POSTING", sender="ann@example.com")
    before = store.records()
    with (
        pytest.raises(RuntimeError, match="handler blew up"),
        store.transition(MODULE, "ann@example.com", "other@example.com") as conversation,
    ):
        conversation.state = "CONFIRMING"
        raise RuntimeError("handler blew up")
    assert store.records() == before
    with (
        pytest.raises(RuntimeError),
        store.transition(MODULE, "new@example.com", "new@example.com") as conversation,
    ):
        conversation.state = "POSTING"
        raise RuntimeError("handler blew up")
    assert store.get(MODULE, "new@example.com") == FIRST_STATE
    assert store.records() == before


# The SQL store -----------------------------------------------------------------


def test_the_constructor_names_the_command_when_tables_are_missing(db_url: str) -> None:
    with pytest.raises(db.SchemaMissingError, match="mailsim db upgrade") as raised:
        SqlStateStore(db_url)
    assert "mailsim_states" in str(raised.value)


def test_from_url_without_upgrade_does_not_create_tables(db_url: str) -> None:
    with pytest.raises(db.SchemaMissingError):
        SqlStateStore.from_url(db_url, upgrade=False)


def test_an_engine_passed_in_stays_open(migrated_db_url: str) -> None:
    engine = db.create_engine(migrated_db_url)
    try:
        store = SqlStateStore(engine)
        store.set(MODULE, "a", "ONE")
        store.close()
        with engine.connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(db.states))
            assert count.scalar_one() == 1
    finally:
        engine.dispose()


def test_a_plain_sqlite_engine_is_refused(sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        with pytest.raises(ValueError, match=r"mailsim_runtime\.db\.create_engine"):
            SqlStateStore(engine)
    finally:
        engine.dispose()


def test_other_databases_are_refused() -> None:
    # module= stands in for the driver, which need not be installed.
    driver = SimpleNamespace(paramstyle="pyformat")
    engine = sa.create_engine("mysql+pymysql://localhost/none", module=driver)
    with pytest.raises(ValueError, match="not mysql"):
        SqlStateStore(engine)


def test_states_are_shared_between_stores(sql_store: SqlStateStore, migrated_db_url: str) -> None:
    sql_store.set(MODULE, "ann@example.com", "POSTING")
    other = SqlStateStore(migrated_db_url)
    try:
        assert other.get(MODULE, "ann@example.com") == "POSTING"
        other.clear()
    finally:
        other.close()
    assert sql_store.get(MODULE, "ann@example.com") == FIRST_STATE


def test_last_modified_comes_back_as_aware_utc(migrated_db_url: str) -> None:
    # A clock in another zone: the instant must survive, expressed in UTC.
    clock = FakeClock(datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    store = SqlStateStore(migrated_db_url, clock=clock)
    try:
        store.set(MODULE, "a", "ONE")
        [record] = store.records()
    finally:
        store.close()
    assert record.last_modified == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert record.last_modified.utcoffset() == timedelta(0)


def test_keys_as_long_as_the_columns_allow(sql_store: SqlStateStore) -> None:
    module, key = "m" * 255, "k" * 512
    with sql_store.transition(module, key, "s" * 512) as conversation:
        conversation.state = "S" * 255
    assert sql_store.get(module, key) == "S" * 255


# Concurrency --------------------------------------------------------------------


def _bump(store: StateStore, key: str) -> None:
    """One transition on a counter-like conversation: S<n> -> S<n+1>."""
    with store.transition(MODULE, key, key) as conversation:
        count = 0 if conversation.state == FIRST_STATE else int(conversation.state[1:])
        time.sleep(0.001)  # widen the read-to-write window a lost update would need
        conversation.state = f"S{count + 1}"


def _bump_many(url: str, key: str, times: int, start: Any) -> None:
    """A child process's share of the counting (module level so spawn can import it)."""
    store = SqlStateStore(url)
    try:
        start.wait(60)
        for _ in range(times):
            _bump(store, key)
    finally:
        store.close()


def test_threads_never_lose_an_update(sql_store: SqlStateStore) -> None:
    threads, each = 8, 25
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(10)
            for _ in range(each):
                _bump(sql_store, "counter")
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not failures
    assert sql_store.get(MODULE, "counter") == f"S{threads * each}"


def test_processes_never_lose_an_update(sql_store: SqlStateStore, migrated_db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    processes, each = 2, 40
    # The parent takes part too, so the barrier only opens once both children
    # have paid for their start-up and all three count at the same time.
    start = context.Barrier(processes + 1)
    children = [
        context.Process(target=_bump_many, args=(migrated_db_url, "counter", each, start))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        start.wait(60)
        for _ in range(each):
            _bump(sql_store, "counter")
        for child in children:
            child.join(120)
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    assert [child.exitcode for child in children] == [0] * processes
    assert sql_store.get(MODULE, "counter") == f"S{(processes + 1) * each}"


def _impatient_store(url: str) -> SqlStateStore:
    """A store that gives up on a held lock after a fraction of a second."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return SqlStateStore(db.create_engine(parsed, busy_timeout=0.3))
    options = parsed.query.get("options", "")
    assert isinstance(options, str)
    with_timeout = parsed.update_query_dict({"options": f"{options} -c lock_timeout=300".strip()})
    return SqlStateStore(db.create_engine(with_timeout))


@contextmanager
def _holding(store: SqlStateStore, key: str) -> Iterator[None]:
    """Hold conversation *key* in a transition on another thread for the block."""
    inside, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with store.transition(MODULE, key, key) as conversation:
                inside.set()
                release.wait(30)
                conversation.state = "RELEASED"
        except BaseException as error:
            failures.append(error)
            inside.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(30)
    assert not failures
    assert store.get(MODULE, key) == "RELEASED"


def test_a_held_conversation_makes_others_wait(
    sql_store: SqlStateStore, migrated_db_url: str
) -> None:
    impatient = _impatient_store(migrated_db_url)
    try:
        with (
            _holding(sql_store, "held"),
            pytest.raises(sa.exc.OperationalError),
            impatient.transition(MODULE, "held", "held") as conversation,
        ):
            conversation.state = "STOLEN"
    finally:
        impatient.engine.dispose()


def test_conversations_do_not_wait_for_each_other(postgres_url: str) -> None:
    # Only PostgreSQL locks rows; SQLite serialises every writer by design.
    store = SqlStateStore.from_url(postgres_url)
    impatient = _impatient_store(postgres_url)
    try:
        store.set(MODULE, "existing", "S1")
        with _holding(store, "held"):
            started = time.monotonic()
            with impatient.transition(MODULE, "new", "new") as conversation:
                conversation.state = "S1"
            with impatient.transition(MODULE, "existing", "existing") as conversation:
                conversation.state = "S2"
            impatient.set(MODULE, "other", "S1")
            assert time.monotonic() - started < 5
        assert {r.key: r.state for r in store.records()} == {
            "existing": "S2",
            "held": "RELEASED",
            "new": "S1",
            "other": "S1",
        }
    finally:
        impatient.engine.dispose()
        store.close()


def test_sqlite_file_uses_write_ahead_logging(sqlite_url: str, tmp_path: Path) -> None:
    store = SqlStateStore.from_url(sqlite_url)
    try:
        store.set(MODULE, "a", "ONE")
        assert (tmp_path / "mailsim.sqlite3-wal").exists()
    finally:
        store.close()
