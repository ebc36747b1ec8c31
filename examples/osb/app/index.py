"""The blog's front page, ``index.html``, built in the background.

A handler that changes what the index shows (a post published or deleted, a
comment added) does not rebuild it: it pushes a *job* — a small mail to
``index@blog.example.com`` — into the queue ``[queues] index``, and answers its
sender at once. In production a :class:`~mailsim_runtime.server.QueueReceiver`
empties that Maildir with a few worker threads and hands each job to
:mod:`app.handlers.index` (``python -m app.worker``); a test calls
:func:`run_jobs` instead. Either way :func:`build_index` does the work.

A rebuild reads every post afresh, so jobs carry no data and any number of them
waiting are served by one rebuild.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

from mailsim_runtime import App, MailRequest, MailResponse, current_app

from app import model, pages

QUEUE = "index"


def job_address(app: App) -> str:
    return f"index@{app.hostname}"


def queue_job(what: str) -> str:
    """Ask for the index to be rebuilt because of *what* ("published 3"); the job's key.

    The job is an ordinary mail with its envelope recorded in ``Return-Path`` and
    ``Delivered-To`` (the queue writes them), which is what a QueueReceiver reads.
    """
    app = current_app()
    job = MailResponse(
        to=job_address(app),
        from_=f"noreply@{app.hostname}",
        subject=f"index: {what}",
        body=f"The index is out of date: {what}.\n",
    )
    job["Date"] = format_datetime(app.clock.now())
    job["Message-ID"] = app.relay.new_message_id()
    request = MailRequest(None, f"noreply@{app.hostname}", job_address(app), job.as_bytes())
    return str(app.queues[QUEUE].push(request))


def build_index() -> Path:
    """Write ``index.html`` from the posts as they are now; its path."""
    app = current_app()
    folder = pages.output_folder()
    folder.mkdir(parents=True, exist_ok=True)
    # One rebuild at a time, across threads and processes: the one that reads the
    # database last also writes last, so the newest posts always win.
    with _exclusive(folder / ".index.lock"), app.transaction() as connection:
        # A job can be taken before the handler that queued it has committed: that
        # happens when it returns. Waiting for the writers first means reading what
        # they wrote. On SQLite this transaction's BEGIN IMMEDIATE waits for the
        # database's write lock; PostgreSQL is asked for it.
        if connection.dialect.name == "postgresql":
            names = f"{model.posts.name}, {model.comments.name}"
            connection.exec_driver_sql(f"LOCK TABLE {names} IN SHARE MODE")
        html = app.views.render(
            "web/index.html",
            blog_title=app.settings["title"],
            posts=[
                {
                    "title": summary.post.title,
                    "page": pages.page_name(summary.post),
                    "author": summary.post.author_name,
                    "date": pages.date_text(summary.post.created),
                    "comments": summary.comments,
                }
                for summary in model.summaries()
            ],
            post_address=f"post@{app.hostname}",
        )
        path = folder / "index.html"
        pages.write_file(path, html.encode("utf-8"))
    return path


def run_jobs(app: App) -> int:
    """Serve every job waiting in *app*'s index queue with one rebuild; how many
    there were. What a test calls (and what a cron job could call instead of
    running a worker).

    The jobs are removed only once the index is written: were the rebuild to
    fail, they would still be waiting for the next try.
    """
    queue = app.queues[QUEUE]
    waiting = queue.keys()
    if waiting:
        with app.bound():
            build_index()
        for key in waiting:
            queue.remove(key)
    return len(waiting)


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    # A lock on a file of its own: flock() excludes other processes, and other
    # threads too, since each opening is a lock holder of its own.
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
