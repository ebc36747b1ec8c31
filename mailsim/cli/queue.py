"""``mailsim queue``: look into and tidy a Maildir queue.

The queue is a folder, or a name the project gives one: a key of ``[queues]`` in
``mailsim.toml``, or ``undeliverable`` (``[app] undeliverable``, by default
``run/undeliverable``), where mail that no handler took is kept.
"""

from __future__ import annotations

import email.policy
import sys
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import click
from mailsim_runtime.project import find_project
from mailsim_runtime.queue import MaildirQueue

from mailsim.cli import main
from mailsim.cli._common import fail, load_project_config, project_option

_HEADERS = BytesHeaderParser(policy=email.policy.compat32)


def _looks_like_path(reference: str) -> bool:
    return "/" in reference or reference.startswith(".") or reference.startswith("~")


def _named_queues(project: Path | None) -> dict[str, Path]:
    """The project's queues by name; none when there is no project (and none was asked for)."""
    if project is None and find_project(Path.cwd()) is None:
        return {}
    config = load_project_config(project)
    undeliverable = config.app.undeliverable or config.root / "run" / "undeliverable"
    return {"undeliverable": undeliverable, **config.queues}


def open_queue(reference: str, project: Path | None) -> MaildirQueue:
    """The queue *reference* names: one of the project's, else a Maildir folder.

    A folder must already be a Maildir (``new/`` and ``cur/``): a mistyped path
    fails rather than growing a new empty queue. A named queue is the project's
    own, so it is created on first use, as the server would.
    """
    if not _looks_like_path(reference):
        named = _named_queues(project)
        if reference in named:
            return MaildirQueue(named[reference])
    path = Path(reference).expanduser()
    if not path.exists():
        known = _named_queues(project) if not _looks_like_path(reference) else {}
        names = f"; the project's queues are: {', '.join(sorted(known))}" if known else ""
        fail(f"{reference}: no such queue folder{names}")
    if not (path / "new").is_dir() or not (path / "cur").is_dir():
        fail(f"{path}: not a Maildir queue (it has no new/ and cur/ folders)")
    return MaildirQueue(path)


@main.group()
@click.argument("name", metavar="PATH_OR_NAME")
@project_option
@click.pass_context
def queue(context: click.Context, name: str, project: Path | None) -> None:
    """Look into a Maildir queue: list, count, get, pop, remove or clear messages.

    PATH_OR_NAME is a Maildir folder, or the name of one of the project's queues:
    a key of [queues] in mailsim.toml, or "undeliverable".

    \b
    Examples:
      mailsim queue undeliverable list
      mailsim queue run/incoming count
      mailsim queue undeliverable get 1700000000.M1P2Q0T3.host > message.eml
    """
    # Opened by the subcommand, so that `... list --help` works for any name.
    context.obj = _Reference(name, project)


@dataclass(frozen=True)
class _Reference:
    name: str
    project: Path | None


def _queue(context: click.Context) -> MaildirQueue:
    reference = context.find_object(_Reference)
    if reference is None:  # only when a subcommand is invoked without its group
        fail("no queue: run this as `mailsim queue PATH_OR_NAME COMMAND`")
    return open_queue(reference.name, reference.project)


def _summary(data: bytes) -> tuple[str, str]:
    headers = _HEADERS.parsebytes(data)
    sender = " ".join(str(headers.get("From", "")).split())
    subject = " ".join(str(headers.get("Subject", "")).split())
    return sender or "-", subject or "-"


@queue.command("list")
@click.pass_context
def list_(context: click.Context) -> None:
    """One line per waiting message, oldest first: key, size, From and Subject."""
    box = _queue(context)
    keys = box.keys()
    for key in keys:
        data = box.get(key)
        if data is None:  # taken by a worker while we were listing
            continue
        sender, subject = _summary(data)
        click.echo(f"{key}  {len(data):>8}  {sender}  {subject}")
    oversize = box.oversize()
    if oversize:
        click.echo(f"{box.path}: {len(oversize)} oversize messages in oversize/", err=True)
    if not keys:
        click.echo(f"{box.path}: no messages waiting", err=True)


@queue.command()
@click.pass_context
def count(context: click.Context) -> None:
    """Print how many messages are waiting."""
    click.echo(str(_queue(context).count()))


@queue.command()
@click.argument("key")
@click.pass_context
def get(context: click.Context, key: str) -> None:
    """Write the message KEY to stdout, as stored (it stays in the queue)."""
    box = _queue(context)
    data = box.get(key) if "/" not in key else None
    if data is None:
        fail(f"{box.path}: no message {key}")
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@queue.command()
@click.pass_context
def pop(context: click.Context) -> None:
    """Take the oldest message out of the queue and write it to stdout (its key to stderr)."""
    box = _queue(context)
    taken = box.pop()
    if taken is None:
        fail(f"{box.path}: the queue is empty")
    key, data = taken
    click.echo(key, err=True)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@queue.command()
@click.argument("key")
@click.pass_context
def remove(context: click.Context, key: str) -> None:
    """Delete the message KEY."""
    box = _queue(context)
    if "/" in key or not box.remove(key):
        fail(f"{box.path}: no message {key}")
    click.echo(f"removed {key}")


@queue.command()
@click.pass_context
def clear(context: click.Context) -> None:
    """Delete every waiting message."""
    box = _queue(context)
    click.echo(f"removed {box.clear()} messages from {box.path}")
