"""The initial schema: conversation states, spam counts and confirmations.

Revision ID: 0001
Revises:

Spelled out rather than built from ``mailsim_runtime.db.metadata``: a revision
records the schema as it was, and must not change when the metadata moves on.
Names follow the metadata's naming convention (``pk_<table>``,
``ix_<table>_<column>``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the four tables and the confirmations' indexes."""
    op.create_table(
        "mailsim_states",
        sa.Column("module", sa.String(255), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("sender", sa.String(512), nullable=False),
        sa.Column("state", sa.String(255), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("module", "key", name="pk_mailsim_states"),
    )
    op.create_table(
        "mailsim_spam_words",
        sa.Column("word", sa.String(1024), nullable=False),
        sa.Column("spam_count", sa.Integer(), nullable=False),
        sa.Column("ham_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("word", name="pk_mailsim_spam_words"),
    )
    op.create_table(
        "mailsim_spam_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nspam", sa.Integer(), nullable=False),
        sa.Column("nham", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mailsim_spam_totals"),
    )
    op.create_table(
        "mailsim_confirmations",
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(512), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("secret", name="pk_mailsim_confirmations"),
    )
    for column in ("target", "sender", "expires"):
        op.create_index(f"ix_mailsim_confirmations_{column}", "mailsim_confirmations", [column])


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    for column in ("expires", "sender", "target"):
        op.drop_index(f"ix_mailsim_confirmations_{column}", table_name="mailsim_confirmations")
    op.drop_table("mailsim_confirmations")
    op.drop_table("mailsim_spam_totals")
    op.drop_table("mailsim_spam_words")
    op.drop_table("mailsim_states")
