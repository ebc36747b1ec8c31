"""The lists, their members, their archives and their held posts, in the app's own database.

Every function here works on the current app's database (``current_app().database``):
inside a handler its writes join the conversation's transaction, so they commit with
the state change or not at all. Outside a handler, bind the app first::

    with app.bound():
        model.members("python")

Times are read off the app's clock (the simulated world's virtual one in tests) and
handed back as aware UTC datetimes, whatever the database stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from mailsim_runtime import App, current_app
from mailsim_runtime.db import read_connection

metadata = sa.MetaData()

#: What a list does with a post from someone who is not a member.
NON_MEMBER_POLICIES = ("moderate", "refuse")

mailing_lists = sa.Table(
    "mailing_lists",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("owner", sa.String(512), nullable=False),
    sa.Column("non_members", sa.String(16), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

list_members = sa.Table(
    "mailing_list_members",
    metadata,
    sa.Column("list_name", sa.String(128), primary_key=True),
    sa.Column("address", sa.String(512), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),  # False: posts are not sent to it
    sa.Column("soft_bounces", sa.Integer, nullable=False),
    sa.Column("last_bounce", sa.DateTime(timezone=True), nullable=True),
    sa.Column("disabled_because", sa.String(1000), nullable=False),
    sa.Column("joined", sa.DateTime(timezone=True), nullable=False),
)

archived_posts = sa.Table(
    "mailing_list_archive",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("list_name", sa.String(128), nullable=False),
    sa.Column("message_id", sa.String(998), nullable=False),
    sa.Column("in_reply_to", sa.String(998), nullable=False),
    sa.Column("references", sa.Text, nullable=False),  # Message-IDs separated by spaces
    sa.Column("sender", sa.String(512), nullable=False),  # the envelope sender
    sa.Column("author", sa.String(998), nullable=False),  # the From header, as written
    sa.Column("subject", sa.Text, nullable=False),  # without the list's [tag]
    sa.Column("date", sa.DateTime(timezone=True), nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),  # the post as the members got it
    sa.UniqueConstraint("list_name", "message_id"),
)

held_posts = sa.Table(
    "mailing_list_held_posts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("list_name", sa.String(128), nullable=False),
    sa.Column("sender", sa.String(512), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("held", sa.DateTime(timezone=True), nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),  # the post exactly as it came
)


@dataclass(frozen=True)
class MailingList:
    name: str
    host: str
    owner: str
    non_members: str  # one of NON_MEMBER_POLICIES
    created: datetime

    @property
    def address(self) -> str:
        return f"{self.name}@{self.host}"


@dataclass(frozen=True)
class Member:
    list_name: str
    address: str
    enabled: bool
    soft_bounces: int  # in a row, see count_soft_bounce
    last_bounce: datetime | None
    disabled_because: str
    joined: datetime


@dataclass(frozen=True)
class Post:
    """One archived post."""

    id: int
    list_name: str
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    sender: str
    author: str
    subject: str
    date: datetime
    raw: bytes

    @property
    def author_name(self) -> str:
        """Who wrote it, for public pages: the name in From, else the address made
        a little harder for address harvesters to read."""
        name, address = parseaddr(self.author)
        return name or address.replace("@", " at ") or "(unknown)"


@dataclass(frozen=True)
class HeldPost:
    """A post from a non-member, waiting for the owner to approve or reject it."""

    id: str
    list_name: str
    sender: str
    subject: str
    held: datetime
    raw: bytes


def create_tables(app: App) -> None:
    """Called once when the app is built (``[app] setup`` in mailsim.toml)."""
    metadata.create_all(app.database)


# Helpers ----------------------------------------------------------------------------


def _now() -> datetime:
    return current_app().clock.now().astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _write() -> AbstractContextManager[sa.Connection]:
    return current_app().transaction()


@contextmanager
def _read() -> Iterator[sa.Connection]:
    with read_connection(current_app().database) as connection:
        yield connection


def _insert_new(connection: sa.Connection, table: sa.Table, **values: Any) -> bool:
    """Insert a row unless one with the same key is there; whether it was inserted.

    Two conversations may race to make the same row (two people starting the same
    list at once): the database decides, and the loser simply finds it made.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    else:
        statement = sa.insert(table).values(**values)
    # A row comes back only when one was inserted (rowcount is not to be trusted
    # with ON CONFLICT on every driver).
    inserted = connection.execute(statement.returning(*table.primary_key.columns))
    return inserted.first() is not None


# Lists ------------------------------------------------------------------------------


def _list_from(row: Any) -> MailingList:
    return MailingList(row.name, row.host, row.owner, row.non_members, _utc(row.created))


def find_list(name: str) -> MailingList | None:
    with _read() as connection:
        row = connection.execute(
            sa.select(mailing_lists).where(mailing_lists.c.name == name)
        ).first()
    return None if row is None else _list_from(row)


def create_list(name: str, host: str) -> MailingList:
    """The list *name*, made now if it does not exist yet: lists are created on first use.

    Its owner and its rule for non-members (``"moderate"``, the default, or
    ``"refuse"``) come from ``[settings.lists.NAME]``, else from ``[settings]``:
    ``owner`` and ``non_members``. Later, :func:`set_non_members` changes the rule.
    """
    settings = current_app().settings
    own = dict(settings.get("lists", {}).get(name, {}))
    owner = str(own.get("owner") or settings.get("owner") or f"postmaster@{host}").lower()
    policy = str(own.get("non_members", settings.get("non_members", "moderate")))
    if policy not in NON_MEMBER_POLICIES:
        raise ValueError(f"{name}: non_members must be one of {NON_MEMBER_POLICIES}")
    with _write() as connection:
        _insert_new(
            connection,
            mailing_lists,
            name=name,
            host=host,
            owner=owner,
            non_members=policy,
            created=_now(),
        )
        row = connection.execute(sa.select(mailing_lists).where(mailing_lists.c.name == name)).one()
    return _list_from(row)


def set_non_members(name: str, policy: str) -> None:
    """What list *name* does with posts from non-members: ``"moderate"`` or ``"refuse"``."""
    if policy not in NON_MEMBER_POLICIES:
        raise ValueError(f"non_members must be one of {NON_MEMBER_POLICIES}, not {policy!r}")
    with _write() as connection:
        changed = connection.execute(
            sa.update(mailing_lists).where(mailing_lists.c.name == name).values(non_members=policy)
        )
    if changed.rowcount == 0:
        raise LookupError(f"there is no list {name!r}")


def list_names() -> list[str]:
    with _read() as connection:
        query = sa.select(mailing_lists.c.name).order_by(mailing_lists.c.name)
        return list(connection.execute(query).scalars())


# Members ----------------------------------------------------------------------------


def _member_row(list_name: str, address: str) -> Any:
    return (list_members.c.list_name == list_name) & (list_members.c.address == address.lower())


def find_member(list_name: str, address: str) -> Member | None:
    with _read() as connection:
        row = connection.execute(
            sa.select(list_members).where(_member_row(list_name, address))
        ).first()
    if row is None:
        return None
    return Member(
        list_name=row.list_name,
        address=row.address,
        enabled=bool(row.enabled),
        soft_bounces=row.soft_bounces,
        last_bounce=None if row.last_bounce is None else _utc(row.last_bounce),
        disabled_because=row.disabled_because,
        joined=_utc(row.joined),
    )


def add_member(list_name: str, address: str) -> None:
    """Make *address* a member that gets the posts (again, if it had been disabled)."""
    fresh = {"enabled": True, "soft_bounces": 0, "last_bounce": None, "disabled_because": ""}
    with _write() as connection:
        changed = connection.execute(
            sa.update(list_members).where(_member_row(list_name, address)).values(**fresh)
        )
        if changed.rowcount == 0:
            connection.execute(
                sa.insert(list_members).values(
                    list_name=list_name, address=address.lower(), joined=_now(), **fresh
                )
            )


def remove_member(list_name: str, address: str) -> None:
    with _write() as connection:
        connection.execute(sa.delete(list_members).where(_member_row(list_name, address)))


def members(list_name: str) -> list[str]:
    """The addresses posts go to: every enabled member, sorted."""
    query = (
        sa.select(list_members.c.address)
        .where(list_members.c.list_name == list_name, list_members.c.enabled.is_(True))
        .order_by(list_members.c.address)
    )
    with _read() as connection:
        return list(connection.execute(query).scalars())


def disable_member(list_name: str, address: str, because: str) -> None:
    """Stop sending posts to *address*. It stays a member: it may still post, and
    subscribing again (with a confirmation that reaches it) enables it."""
    with _write() as connection:
        connection.execute(
            sa.update(list_members)
            .where(_member_row(list_name, address))
            .values(enabled=False, disabled_because=because[:1000])
        )


def count_soft_bounce(list_name: str, address: str, *, forget_after: timedelta) -> int | None:
    """Count a soft bounce of *address*: how many it has had in a row, or None when
    this one does not count.

    At most one bounce a day counts (one bad day of a mail server is one bounce,
    however many posts it turned away), and a bounce more than *forget_after* after
    the one before starts the count again.
    """
    member = find_member(list_name, address)
    if member is None:
        return None
    now = _now()
    last = member.last_bounce
    if last is not None and now - last < timedelta(days=1):
        return None
    count = 1 if last is None or now - last > forget_after else member.soft_bounces + 1
    with _write() as connection:
        connection.execute(
            sa.update(list_members)
            .where(_member_row(list_name, address))
            .values(soft_bounces=count, last_bounce=now)
        )
    return count


# The archive ------------------------------------------------------------------------


def archive_post(
    list_name: str,
    *,
    message_id: str,
    in_reply_to: str,
    references: list[str],
    sender: str,
    author: str,
    subject: str,
    date: datetime,
    raw: bytes,
) -> bool:
    """Keep a post; False when the list has this Message-ID already (a duplicate)."""
    with _write() as connection:
        return _insert_new(
            connection,
            archived_posts,
            list_name=list_name,
            message_id=message_id,
            in_reply_to=in_reply_to,
            references=" ".join(references),
            sender=sender.lower(),
            author=author,
            subject=subject,
            date=date.astimezone(UTC),
            raw=raw,
        )


def posts(list_name: str, *, last: int | None = None) -> list[Post]:
    """The list's archived posts in the order they came (only the *last* ones, if given)."""
    table = archived_posts
    query = sa.select(table).where(table.c.list_name == list_name).order_by(table.c.id.desc())
    if last is not None:
        query = query.limit(last)
    with _read() as connection:
        rows = list(connection.execute(query))
    return [
        Post(
            id=row.id,
            list_name=row.list_name,
            message_id=row.message_id,
            in_reply_to=row.in_reply_to,
            references=tuple(row.references.split()),
            sender=row.sender,
            author=row.author,
            subject=row.subject,
            date=_utc(row.date),
            raw=bytes(row.raw),
        )
        for row in reversed(rows)
    ]


# Moderation -------------------------------------------------------------------------


def _held_from(row: Any) -> HeldPost:
    return HeldPost(row.id, row.list_name, row.sender, row.subject, _utc(row.held), bytes(row.raw))


def hold_post(post_id: str, list_name: str, sender: str, subject: str, raw: bytes) -> None:
    with _write() as connection:
        connection.execute(
            sa.insert(held_posts).values(
                id=post_id,
                list_name=list_name,
                sender=sender.lower(),
                subject=subject,
                held=_now(),
                raw=raw,
            )
        )


def take_held_post(list_name: str, post_id: str) -> HeldPost | None:
    """The held post, taken off the queue: only the first decision on it counts."""
    where = (held_posts.c.list_name == list_name) & (held_posts.c.id == post_id)
    with _write() as connection:
        row = connection.execute(sa.select(held_posts).where(where)).first()
        if row is None or connection.execute(sa.delete(held_posts).where(where)).rowcount == 0:
            return None
    return _held_from(row)


def held(list_name: str) -> list[HeldPost]:
    """Posts waiting for the owner, oldest first."""
    query = (
        sa.select(held_posts)
        .where(held_posts.c.list_name == list_name)
        .order_by(held_posts.c.held, held_posts.c.id)
    )
    with _read() as connection:
        return [_held_from(row) for row in connection.execute(query)]
