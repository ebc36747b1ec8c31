"""Fixtures shared by the whole test suite.

``db_url`` runs a test once on SQLite and once on PostgreSQL. PostgreSQL is found
at ``MAILSIM_TEST_POSTGRES_URL`` (default: the local server, database ``test``);
each test gets a schema of its own, dropped afterwards. Where no PostgreSQL
answers, its runs are skipped with the reason, unless ``MAILSIM_REQUIRE_POSTGRES=1``
(set by ``.ci/run``), which makes them fail instead. ``migrated_db_url`` is
``db_url`` with mailsim's tables already created by the Alembic migrations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

# CI explores the same examples every run, so a red build is reproducible; elsewhere
# Hypothesis keeps searching for new ones.
settings.register_profile("ci", derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

pytest_plugins = ("pytester",)  # the plugin's own tests run pytest in pytest

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_base_url() -> str:
    return os.environ.get("MAILSIM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL not reachable at {_postgres_base_url()}: {reason}"
    if os.environ.get("MAILSIM_REQUIRE_POSTGRES") == "1":
        pytest.fail(message + " (MAILSIM_REQUIRE_POSTGRES=1 makes this a failure)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL to a fresh, empty PostgreSQL schema of this test's own."""
    base = _postgres_base_url()
    schema = f"mailsim_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # any failure to reach the server means "not here"
        admin.dispose()
        _postgres_unavailable(f"{type(error).__name__}: {str(error).splitlines()[0]}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            # A test that leaks an open transaction makes the DROP fail after
            # this long, naming the lock, instead of hanging the run.
            connection.execute(sa.text("SET lock_timeout = '10s'"))
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL to a new SQLite file."""
    return f"sqlite:///{tmp_path / 'mailsim.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on PostgreSQL (tables not created)."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    """Like ``db_url``, with mailsim's tables created by the packaged migrations."""
    from mailsim_runtime import db

    db.upgrade(db_url)
    return db_url
