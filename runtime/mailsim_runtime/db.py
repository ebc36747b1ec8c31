"""The SQL schema mailsim keeps its state in, and engines to reach it.

One :class:`~sqlalchemy.MetaData` holds every table (conversation states, the spam
classifier's token counts, pending confirmations); the Alembic migrations in
``mailsim_runtime/migrations`` create and evolve them. SQLite is the default;
anything here must also run unchanged on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

__all__ = [
    "confirmations",
    "metadata",
    "spam_totals",
    "spam_words",
    "states",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

states = Table(
    "mailsim_states",
    metadata,
    Column("module", String(255), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("sender", String(512), nullable=False, default=""),
    Column("state", String(255), nullable=False),
    Column("last_modified", DateTime(timezone=True), nullable=False),
)

spam_words = Table(
    "mailsim_spam_words",
    metadata,
    Column("word", String(1024), primary_key=True),
    Column("spam_count", Integer, nullable=False, default=0),
    Column("ham_count", Integer, nullable=False, default=0),
)

spam_totals = Table(
    "mailsim_spam_totals",
    metadata,
    Column("id", Integer, primary_key=True),  # a single row, id 1
    Column("nspam", Integer, nullable=False, default=0),
    Column("nham", Integer, nullable=False, default=0),
)

confirmations = Table(
    "mailsim_confirmations",
    metadata,
    Column("secret", String(128), primary_key=True),
    Column("target", String(255), nullable=False, index=True),
    Column("sender", String(512), nullable=False, index=True),
    Column("message", LargeBinary, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False, index=True),
)
