"""List membership, kept in the application's own database."""

from __future__ import annotations

import sqlalchemy as sa
from mailsim_runtime import App, current_app

metadata = sa.MetaData()

subscriptions = sa.Table(
    "mailinglist_subscriptions",
    metadata,
    sa.Column("list_name", sa.String(128), primary_key=True),
    sa.Column("address", sa.String(512), primary_key=True),
)


def create_tables(app: App) -> None:
    """Called once when the app is built (``[app] setup`` in mailsim.toml)."""
    metadata.create_all(app.database)


def add_subscriber(list_name: str, address: str) -> None:
    with current_app().transaction() as connection:
        exists = connection.execute(
            sa.select(subscriptions.c.address).where(
                subscriptions.c.list_name == list_name, subscriptions.c.address == address
            )
        ).first()
        if exists is None:
            connection.execute(
                sa.insert(subscriptions).values(list_name=list_name, address=address)
            )


def remove_subscriber(list_name: str, address: str) -> None:
    with current_app().transaction() as connection:
        connection.execute(
            sa.delete(subscriptions).where(
                subscriptions.c.list_name == list_name, subscriptions.c.address == address
            )
        )


def members(list_name: str) -> list[str]:
    with current_app().transaction() as connection:
        return list(
            connection.execute(
                sa.select(subscriptions.c.address)
                .where(subscriptions.c.list_name == list_name)
                .order_by(subscriptions.c.address)
            ).scalars()
        )
