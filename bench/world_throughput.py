"""Routed messages per second through the simulated world: a trivial echo handler, and
the mailing-list example's posting flow.

Echo: each message a person sends is routed by the application, changes its
conversation's state and is answered with an automatic reply, which the world
delivers back. The baseline, measured in the same run, is the same application
driven without the world (``App.deliver`` with a transport that only records, the
messages built beforehand), so the ratio is the world's own overhead.

Mailing list: the example in ``examples/mailinglist``, built as the world builds it
(in-memory state, SQLite in memory, its spam filter trained), with *members* people
subscribed; then members take turns posting. Each post is routed, spam-scored,
archived and sent on to every other member: one routed message, *members - 1*
deliveries.

The world runs in one thread, so its figure is per core. Absolute figures compare
between runs on the same machine only; the ratios are what the suite reports.

    .venv/bin/python bench/world_throughput.py [--messages N] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import echo_handlers
from mailsim_runtime import App, MailRequest, MailResponse
from mailsim_runtime.autoreply import ReplyLimit
from mailsim_runtime.transport import FunctionTransport

from mailsim.world import World

HOST = "echo.example.com"
PEOPLE = 50
MAILINGLIST = Path(__file__).resolve().parents[1] / "examples" / "mailinglist"
# The benchmark's people write far more often than RFC 3834's reply limit lets an
# application answer one address; the limit is not what is measured here.
NO_REPLY_LIMIT = ReplyLimit(count=10**9)


def echo_app(transport: FunctionTransport | None = None) -> App:
    return App([echo_handlers], hostname=HOST, transport=transport, reply_limit=NO_REPLY_LIMIT)


def through_world(count: int) -> float:
    world = World(echo_app(), strict=False)
    people = [world.mailbox(f"person{i}@example.org") for i in range(PEOPLE)]
    started = time.perf_counter()
    for number in range(count):
        people[number % PEOPLE].send(f"echo@{HOST}", subject="hello", body="hello world")
    elapsed = time.perf_counter() - started
    replies = sum(len(p.messages) for p in people)
    assert replies == count, f"expected {count} replies, the world delivered {replies}"
    return count / elapsed


def through_app(count: int) -> float:
    transport = FunctionTransport()
    app = echo_app(transport)
    requests = []
    for number in range(count):
        sender = f"person{number % PEOPLE}@example.org"
        raw = MailResponse(
            to=f"echo@{HOST}",
            from_=sender,
            subject="hello",
            body="hello world",
            headers={"Message-ID": f"<{number}@example.org>"},
        ).as_bytes()
        requests.append(MailRequest("127.0.0.1", sender, f"echo@{HOST}", raw))
    started = time.perf_counter()
    for request in requests:
        app.deliver(request)
    elapsed = time.perf_counter() - started
    assert len(transport.sent) == count
    return count / elapsed


def mailing_list(posts: int, members: int) -> tuple[float, float]:
    """Posts routed per second, and copies delivered per second, through the world."""
    logging.getLogger("app").setLevel(logging.WARNING)
    world = World(MAILINGLIST, strict=False)
    people = [world.mailbox(f"member{i}@example.org") for i in range(members)]
    for person in people:
        person.send("python-subscribe@lists.example.com", subject="subscribe")
        person.reply(person.expect(subject="Please confirm: subscribe to python"))
        person.expect(subject="Welcome to python")
    before = sum(len(p.messages) for p in people)
    started = time.perf_counter()
    for number in range(posts):
        people[number % members].send(
            "python@lists.example.com",
            subject=f"Post {number}",
            body="A question about generators and the GIL, with some words in it.",
        )
    elapsed = time.perf_counter() - started
    copies = sum(len(p.messages) for p in people) - before
    assert copies == posts * (members - 1), f"{copies} copies for {posts} posts"
    return posts / elapsed, copies / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    through_world(200)  # warm up imports and caches
    world = max(through_world(options.messages) for _ in range(options.rounds))
    app = max(through_app(options.messages) for _ in range(options.rounds))
    posts = max(options.messages // 10, 50)
    cwd = os.getcwd()
    try:
        lists = max(
            (mailing_list(posts, options.members) for _ in range(options.rounds)),
            key=lambda pair: pair[0],
        )
    finally:
        os.chdir(cwd)
    print(f"{'measure':<58}{'msg/s':>10}{'ratio':>8}")
    print(f"{'App.deliver alone (baseline)':<58}{app:>10,.0f}{1:>8.2f}")
    print(
        f"{'World echo: send, route, reply, deliver reply':<58}{world:>10,.0f}{world / app:>8.2f}"
    )
    label = f"World mailing list: posts routed ({options.members} members)"
    print(f"{label:<58}{lists[0]:>10,.0f}")
    print(f"{'World mailing list: copies delivered to members':<58}{lists[1]:>10,.0f}")
    print(f"\ntarget: 10,000 routed messages/s per core in the world -> {world / 10_000:.0%} of it")
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "messages": options.messages,
                    "rounds": options.rounds,
                    "members": options.members,
                    "posts": posts,
                    "app_deliver": app,
                    "world_echo": world,
                    "list_posts": lists[0],
                    "list_copies": lists[1],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
