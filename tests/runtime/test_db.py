"""Engines and the packaged Alembic migrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from mailsim_runtime import db
from sqlalchemy.engine import Engine

MAILSIM_TABLES = {
    "mailsim_states",
    "mailsim_spam_words",
    "mailsim_spam_totals",
    "mailsim_confirmations",
}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    made = db.create_engine(db_url)
    try:
        yield made
    finally:
        made.dispose()


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def test_upgrade_creates_the_tables_and_the_version_table(engine: Engine) -> None:
    assert _tables(engine) == set()
    db.upgrade(engine)
    assert _tables(engine) == MAILSIM_TABLES | {db.VERSION_TABLE}


def test_the_migrated_schema_is_the_metadata(engine: Engine) -> None:
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": db.VERSION_TABLE})
        assert compare_metadata(context, db.metadata) == []


def test_the_comparison_would_see_a_difference(engine: Engine) -> None:
    # Guards the test above against comparing nothing with nothing.
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_mailsim_confirmations_expires"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": db.VERSION_TABLE})
        differences = compare_metadata(context, db.metadata)
    assert [d[0] for d in differences] == ["add_index"]


def test_current_revision_is_none_then_head(engine: Engine) -> None:
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision() == "0001"


def test_upgrading_twice_changes_nothing(engine: Engine) -> None:
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(db.states).values(
                module="m", key="k", sender="", state="S1", last_modified=datetime.now(UTC)
            )
        )
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    with engine.connect() as connection:
        assert connection.execute(sa.select(db.states.c.state)).scalars().all() == ["S1"]


def test_downgrade_removes_the_tables(engine: Engine) -> None:
    db.upgrade(engine)
    db.downgrade(engine)
    assert _tables(engine) <= {db.VERSION_TABLE}
    assert db.current_revision(engine) is None
    db.upgrade(engine)  # and back again
    assert _tables(engine) == MAILSIM_TABLES | {db.VERSION_TABLE}


def test_upgrade_takes_a_url(db_url: str) -> None:
    db.upgrade(db_url)
    assert db.current_revision(db_url) == db.head_revision()


def test_concurrent_upgrades_take_turns(db_url: str) -> None:
    workers = 4
    start = threading.Barrier(workers)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(10)
            db.upgrade(db_url)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert db.current_revision(db_url) == db.head_revision()


def test_everything_lands_in_the_search_path_schema(postgres_url: str) -> None:
    db.upgrade(postgres_url)
    engine = db.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            schema = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
            # Other runs share the database, so look in this test's schema only.
            found = connection.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = current_schema()"
                )
            ).scalars()
            tables = set(found)
    finally:
        engine.dispose()
    assert schema.startswith("mailsim_test_")
    assert tables == MAILSIM_TABLES | {db.VERSION_TABLE}


def test_offline_mode_writes_the_sql(postgres_url: str) -> None:
    # The URL carries "%3D"; the config must not take it for interpolation.
    config = db.alembic_config(url=postgres_url)
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert "CREATE TABLE mailsim_states" in sql
    assert f"CREATE TABLE {db.VERSION_TABLE}" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql


def test_require_tables_names_the_command(engine: Engine) -> None:
    with pytest.raises(db.SchemaMissingError, match="mailsim db upgrade"):
        db.require_tables(engine, db.states, db.confirmations)
    db.upgrade(engine)
    db.require_tables(engine, db.states, db.confirmations)


# Engines ------------------------------------------------------------------------


def test_sqlite_connections_are_tuned(sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url, busy_timeout=2.5)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar_one() == 2500
            assert pragma("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        engine.dispose()
    assert db.is_configured(engine)
    assert not db.is_configured(sa.create_engine(sqlite_url))


def test_sqlite_reads_happen_in_a_transaction(sqlite_url: str) -> None:
    # The sqlite3 module starts no transaction for a SELECT; ours must.
    engine = db.create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            assert connection.connection.driver_connection is not None
            assert connection.connection.driver_connection.in_transaction
    finally:
        engine.dispose()


def test_a_sqlite_write_transaction_takes_the_lock_up_front(sqlite_url: str) -> None:
    db.upgrade(sqlite_url)
    holder = db.create_engine(sqlite_url)
    impatient = db.create_engine(sqlite_url, busy_timeout=0.1)
    try:
        with db.write_transaction(holder):  # not a statement run yet
            with (
                pytest.raises(sa.exc.OperationalError, match="locked"),
                db.write_transaction(impatient) as connection,
            ):
                connection.execute(sa.delete(db.states))
            with impatient.connect() as reader:  # WAL: readers still read
                assert reader.execute(sa.select(db.states)).all() == []
    finally:
        holder.dispose()
        impatient.dispose()


def test_a_write_transaction_commits_or_rolls_back(engine: Engine) -> None:
    db.upgrade(engine)
    row = {"module": "m", "key": "k", "sender": "", "state": "S1"}
    with db.write_transaction(engine) as connection:
        connection.execute(sa.insert(db.states).values(**row, last_modified=datetime.now(UTC)))
    with pytest.raises(ZeroDivisionError), db.write_transaction(engine) as connection:
        connection.execute(sa.delete(db.states))
        1 / 0  # noqa: B018
    with engine.connect() as connection:
        assert connection.execute(sa.select(db.states.c.state)).scalars().all() == ["S1"]
