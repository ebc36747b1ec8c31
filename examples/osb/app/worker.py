"""The index builder in production: ``python -m app.worker``, from the project folder.

It builds the app of the same ``mailsim.toml`` — its database, templates, settings
and queues — with one handler only, :mod:`app.handlers.index`, and runs a
:class:`~mailsim_runtime.server.QueueReceiver` on ``[queues] index``: a few threads
that take each job out of the Maildir (a rename, so workers in several processes
can share it), hand it to the handler, and remove it once the index is written.
If the handler fails, the router sets the job aside in ``[app] undeliverable``
(the next job rebuilds the index anyway); if delivering fails before it (the
database down, say), the job goes back in line and is tried again later. SIGTERM
or SIGINT lets the jobs under way finish, then stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from mailsim_runtime import App
from mailsim_runtime.config import Config, load_config
from mailsim_runtime.project import build_app, transport_from_config
from mailsim_runtime.server import QueueReceiver
from mailsim_runtime.transport import Transport

from app.index import QUEUE

log = logging.getLogger("osb.worker")

HANDLERS = ["app.handlers.index"]
PROJECT = Path(__file__).resolve().parent.parent


def worker_app(config: Config, *, transport: Transport | None = None) -> App:
    """The app the worker runs: *config*'s, with the index's handler instead of the
    server's (it sends no mail, but has a relay like any app)."""
    only_index = dataclasses.replace(config, app=dataclasses.replace(config.app, handlers=HANDLERS))
    return build_app(only_index, transport=transport or transport_from_config(config))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__)
    parser.add_argument("--project", type=Path, default=PROJECT, help="the project folder")
    parser.add_argument("--workers", type=int, default=2, help="threads taking jobs")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = load_config(options.project)
    try:
        app = worker_app(config)
    except sa.exc.OperationalError as error:
        print(
            f"python -m app.worker: cannot use the database {config.database.url}: "
            f"{error.orig or error} (has `mailsim db upgrade` been run?)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    queue = app.queues[QUEUE]
    with QueueReceiver(app, queue, workers=options.workers, poll=options.poll):
        log.info("building the index from the jobs in %s", queue.path)
        while not stop.wait(1.0):
            pass
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
