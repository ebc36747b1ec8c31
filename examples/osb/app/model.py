"""Posts and comments, kept in the application's own database.

Every function here works inside ``current_app().transaction()``: called from a
handler, that is the conversation's own transaction, so a post and the state
change that published it are committed together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from mailsim_runtime import App, current_app

metadata = sa.MetaData()

posts = sa.Table(
    "osb_posts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(80), nullable=False, unique=True),
    sa.Column("author", sa.String(512), nullable=False),  # the envelope sender, lower-cased
    sa.Column("author_name", sa.String(200), nullable=False),  # what the page shows
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("images", sa.JSON, nullable=False, default=list),  # file names in the output
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    # A deleted post's number is never given to another post, so an old comment
    # address cannot start commenting on someone else's post.
    sqlite_autoincrement=True,
)

comments = sa.Table(
    "osb_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "post_id", sa.Integer, sa.ForeignKey("osb_posts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("author", sa.String(512), nullable=False),
    sa.Column("author_name", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

#: Names a post's page cannot have: the output folder's own files.
RESERVED_SLUGS = frozenset({"index", "images"})


@dataclass(frozen=True)
class Post:
    id: int
    slug: str
    author: str
    author_name: str
    title: str
    body: str
    images: tuple[str, ...]
    created: datetime


@dataclass(frozen=True)
class Comment:
    id: int
    post_id: int
    author: str
    author_name: str
    body: str
    created: datetime


@dataclass(frozen=True)
class Summary:
    """A line of the index: a post and how many comments it has."""

    post: Post
    comments: int


def create_tables(app: App) -> None:
    """Called once when the app is built (``[app] setup`` in mailsim.toml)."""
    metadata.create_all(app.database)


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; they were stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _post(row: Any) -> Post:
    return Post(
        id=row.id,
        slug=row.slug,
        author=row.author,
        author_name=row.author_name,
        title=row.title,
        body=row.body,
        images=tuple(row.images or ()),
        created=_utc(row.created),
    )


def _comment(row: Any) -> Comment:
    return Comment(
        id=row.id,
        post_id=row.post_id,
        author=row.author,
        author_name=row.author_name,
        body=row.body,
        created=_utc(row.created),
    )


def free_slug(wanted: str) -> str:
    """*wanted*, or *wanted* with the first number that makes it unused (hello-2)."""
    with current_app().transaction() as connection:
        taken = set(
            connection.execute(
                sa.select(posts.c.slug).where(
                    sa.or_(posts.c.slug == wanted, posts.c.slug.like(f"{wanted}-%"))
                )
            ).scalars()
        )
    taken |= RESERVED_SLUGS
    candidate, number = wanted, 1
    while candidate in taken:
        number += 1
        candidate = f"{wanted}-{number}"
    return candidate


def add_post(
    *, slug: str, author: str, author_name: str, title: str, body: str, created: datetime
) -> Post:
    insert = sa.insert(posts).values(
        slug=slug,
        author=author.lower(),
        author_name=author_name,
        title=title,
        body=body,
        images=[],
        created=created.astimezone(UTC),
    )
    with current_app().transaction() as connection:
        return _post(connection.execute(insert.returning(posts)).one())


def set_images(post_id: int, names: Sequence[str]) -> None:
    with current_app().transaction() as connection:
        connection.execute(sa.update(posts).where(posts.c.id == post_id).values(images=list(names)))


def find_post(post_id: int, *, lock: bool = False) -> Post | None:
    """The post, or None. ``lock=True`` holds its row until the transaction ends, so
    that two comments on one post are added (and its page written) one at a time."""
    query = sa.select(posts).where(posts.c.id == post_id)
    if lock:
        query = query.with_for_update()
    with current_app().transaction() as connection:
        row = connection.execute(query).first()
    return None if row is None else _post(row)


def delete_post(post_id: int) -> None:
    with current_app().transaction() as connection:
        # Comments first: SQLite enforces the foreign key only when told to.
        connection.execute(sa.delete(comments).where(comments.c.post_id == post_id))
        connection.execute(sa.delete(posts).where(posts.c.id == post_id))


def add_comment(
    *, post_id: int, author: str, author_name: str, body: str, created: datetime
) -> Comment:
    insert = sa.insert(comments).values(
        post_id=post_id,
        author=author.lower(),
        author_name=author_name,
        body=body,
        created=created.astimezone(UTC),
    )
    with current_app().transaction() as connection:
        return _comment(connection.execute(insert.returning(comments)).one())


def comments_on(post_id: int) -> list[Comment]:
    """The post's comments, oldest first."""
    query = (
        sa.select(comments)
        .where(comments.c.post_id == post_id)
        .order_by(comments.c.created, comments.c.id)
    )
    with current_app().transaction() as connection:
        return [_comment(row) for row in connection.execute(query)]


def summaries() -> list[Summary]:
    """Every post with its number of comments, newest first."""
    counts = (
        sa.select(comments.c.post_id, sa.func.count().label("count"))
        .group_by(comments.c.post_id)
        .subquery()
    )
    query = (
        sa.select(posts, sa.func.coalesce(counts.c.count, 0).label("comment_count"))
        .outerjoin(counts, counts.c.post_id == posts.c.id)
        .order_by(posts.c.created.desc(), posts.c.id.desc())
    )
    with current_app().transaction() as connection:
        return [Summary(_post(row), row.comment_count) for row in connection.execute(query)]
