"""Memory and size at scale: a World with many mailboxes, and the SQL state store with
many conversations.

World: *mailboxes* people are created in a World hosting the echo application;
the figure is the growth of this process's resident set (RSS) per mailbox, and
the time to look a person up (``world.mailbox(address)``) among them.

State store: an ``SqlStateStore`` on a SQLite file, *conversations* rows inserted
directly in batches (the set-up, timed as "insert"), then ``get`` of random
existing keys and of missing ones, each timed; and the file's size.

Each part runs in a fresh process so that one does not inflate the other's RSS.

    .venv/bin/python bench/memory.py [--mailboxes 100000] [--conversations 1000000]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
LOOKUPS = 20_000
GETS = 5_000


def rss_kib() -> int:
    """This process's resident set size, from /proc (KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def world_part(mailboxes: int) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH))
    import gc

    import echo_handlers
    from mailsim_runtime import App

    from mailsim.world import World

    world = World(App([echo_handlers], hostname="echo.example.com"), strict=False)
    addresses = [f"person{n}@example{n % 100}.org" for n in range(mailboxes)]
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    for address in addresses:
        world.mailbox(address)
    created = time.perf_counter() - started
    gc.collect()
    after = rss_kib()
    picks = random.Random(1).choices(addresses, k=LOOKUPS)
    started = time.perf_counter()
    for address in picks:
        world.mailbox(address)
    lookup = (time.perf_counter() - started) / LOOKUPS
    assert len(world.mailboxes) == mailboxes
    return {
        "mailboxes": mailboxes,
        "rss_delta_mib": (after - before) / 1024,
        "bytes_per_mailbox": (after - before) * 1024 / mailboxes,
        "create_s": created,
        "lookup_us": lookup * 1e6,
    }


def state_part(conversations: int, folder: str) -> dict[str, Any]:
    import sqlalchemy as sa
    from mailsim_runtime import db
    from mailsim_runtime.state import SqlStateStore

    path = Path(folder) / "state.sqlite3"
    engine = db.create_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    module = "app.handlers.mailinglist"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    batch = 50_000
    with engine.begin() as connection:
        for first in range(0, conversations, batch):
            connection.execute(
                db.states.insert(),
                [
                    {
                        "module": module,
                        "key": f"python:member{n}@example{n % 1000}.org",
                        "sender": f"member{n}@example{n % 1000}.org",
                        "state": "POSTING",
                        "last_modified": now,
                    }
                    for n in range(first, min(first + batch, conversations))
                ],
            )
    inserted = time.perf_counter() - started
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(db.states)).scalar()
    assert count == conversations, count
    engine.dispose()  # the WAL checkpointed into the file before it is measured
    size = path.stat().st_size + sum(
        p.stat().st_size for p in path.parent.glob("state.sqlite3-*") if p.exists()
    )
    store = SqlStateStore(db.create_engine(f"sqlite:///{path}"))
    rng = random.Random(2)
    keys = [
        f"python:member{n}@example{n % 1000}.org"
        for n in (rng.randrange(conversations) for _ in range(GETS))
    ]
    store.get(module, keys[0])  # connect, warm the statement cache
    started = time.perf_counter()
    for key in keys:
        assert store.get(module, key) == "POSTING"
    found = (time.perf_counter() - started) / GETS
    started = time.perf_counter()
    for number in range(GETS):
        assert store.get(module, f"python:nobody{number}@example.org") == "START"
    missing = (time.perf_counter() - started) / GETS
    store.close()
    return {
        "conversations": conversations,
        "file_mib": size / 2**20,
        "bytes_per_conversation": size / conversations,
        "insert_s": inserted,
        "get_us": found * 1e6,
        "get_missing_us": missing * 1e6,
    }


def _run(target: Any, args: tuple[Any, ...], pipe: Any) -> None:
    pipe.send(target(*args))


def in_process(target: Any, *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    process = context.Process(target=_run, args=(target, args, there))
    process.start()
    result: dict[str, Any] = here.recv()
    process.join(60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    world = in_process(world_part, options.mailboxes)
    print(
        f"World, {world['mailboxes']:,} mailboxes: RSS +{world['rss_delta_mib']:.1f} MiB "
        f"({world['bytes_per_mailbox']:.0f} bytes each), created in {world['create_s']:.2f} s, "
        f"lookup {world['lookup_us']:.2f} µs"
    )
    with tempfile.TemporaryDirectory(dir=BENCH) as folder:
        state = in_process(state_part, options.conversations, folder)
    print(
        f"SqlStateStore on SQLite, {state['conversations']:,} conversations: "
        f"file {state['file_mib']:.1f} MiB ({state['bytes_per_conversation']:.0f} bytes each), "
        f"bulk insert {state['insert_s']:.1f} s, get {state['get_us']:.0f} µs "
        f"(missing key {state['get_missing_us']:.0f} µs)"
    )
    if options.json:
        options.json.write_text(json.dumps({"world": world, "state": state}, indent=2))


if __name__ == "__main__":
    main()
