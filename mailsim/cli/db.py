"""``mailsim db``: create and migrate mailsim's tables in the project's database.

The tables (conversation states, spam counts, confirmations) are made only by the
packaged Alembic migrations, never behind anyone's back; ``mailsim db upgrade`` is
the command that runs them. ``[database] url`` holds them all, and ``[spam]
database`` the spam counts when it names a database of its own.
"""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from alembic.util import CommandError
from mailsim_runtime import db
from mailsim_runtime.config import Config

from mailsim.cli import main
from mailsim.cli._common import fail, load_project_config, project_option


def spam_database_url(config: Config) -> str:
    """The database the spam filter keeps its counts in: ``[spam] database``, else
    ``[database] url``; a relative SQLite file is taken from the project folder."""
    url = config.spam.database or config.database.url
    return _anchored(url, config.root)


def _anchored(url: str, root: Path) -> str:
    # As the config loader does for [database] url: "sqlite:///run/x.sqlite3" means
    # the project's run/ folder wherever the command runs from.
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and not relative.startswith(":memory:"):
            return f"sqlite:///{root / relative}"
    return url


def database_urls(config: Config) -> list[str]:
    """Every database the project keeps mailsim tables in: the main one, then the
    spam filter's if it is another."""
    urls = [config.database.url]
    spam = spam_database_url(config)
    if spam not in urls:
        urls.append(spam)
    return urls


def shown(url: str) -> str:
    """*url* with any password masked, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases and in-memory ones."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None  # create_engine names the problem
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


@main.group(name="db")
def db_group() -> None:
    """Create or migrate mailsim's tables in the project's database.

    \b
    Examples:
      mailsim db upgrade
      mailsim db current
    """


@db_group.command()
@project_option
@click.option(
    "--revision", default="head", show_default=True, help="The Alembic revision to migrate to."
)
def upgrade(project: Path | None, revision: str) -> None:
    """Run the migrations: create the tables, or bring them up to date.

    Prints the revision each database is at afterwards. Safe to run again: a
    database that is up to date is left alone.
    """
    config = load_project_config(project)
    for url in database_urls(config):
        file = _sqlite_file(url)
        if file is not None:  # SQLite makes the file, not its folder (run/ in a new project)
            file.parent.mkdir(parents=True, exist_ok=True)
        try:
            db.upgrade(url, revision)
            now = db.current_revision(url)
        except (sa.exc.SQLAlchemyError, CommandError, ImportError) as error:
            # ImportError: the URL names a driver that is not installed.
            fail(f"cannot upgrade {shown(url)}: {_first_line(error)}")
        click.echo(f"{shown(url)}: at revision {now}")


@db_group.command()
@project_option
def current(project: Path | None) -> None:
    """Print the revision each database is at (exit 1 if one is behind or empty)."""
    config = load_project_config(project)
    head = db.head_revision()
    behind = []
    for url in database_urls(config):
        file = _sqlite_file(url)
        if file is not None and not file.exists():  # asking would create it
            click.echo(f"{shown(url)}: no database yet; the newest revision is {head}")
            behind.append(url)
            continue
        try:
            now = db.current_revision(url)
        except (sa.exc.SQLAlchemyError, ImportError) as error:
            fail(f"cannot read {shown(url)}: {_first_line(error)}")
        if now == head:
            click.echo(f"{shown(url)}: at revision {now} (the newest)")
        else:
            click.echo(f"{shown(url)}: at revision {now or 'none'}; the newest is {head}")
            behind.append(url)
    if behind:
        fail("run `mailsim db upgrade` to bring the tables up to date")


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
