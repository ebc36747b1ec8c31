"""Routed messages per second through the simulated world, for a trivial echo handler.

Each message a person sends is routed by the application, changes its
conversation's state and is answered with an automatic reply, which the world
delivers back. The baseline, measured in the same run, is the same application
driven without the world (App.deliver with a transport that only records), so the
ratio is the world's own overhead and the absolute figure can be compared
between runs on the same machine only.

    .venv/bin/python bench/world_throughput.py [--messages N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import echo_handlers
from mailsim_runtime import App, MailRequest, MailResponse
from mailsim_runtime.transport import FunctionTransport

from mailsim.world import World

HOST = "echo.example.com"
PEOPLE = 50


def through_world(count: int) -> float:
    world = World(App([echo_handlers], hostname=HOST), strict=False)
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
    app = App([echo_handlers], hostname=HOST, transport=transport)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    through_world(200)  # warm up imports and caches
    world = max(through_world(options.messages) for _ in range(options.rounds))
    app = max(through_app(options.messages) for _ in range(options.rounds))
    print(f"{'measure':<44}{'msg/s':>10}{'ratio':>8}")
    print(f"{'App.deliver alone (baseline)':<44}{app:>10,.0f}{1:>8.2f}")
    print(f"{'World: send, route, reply, deliver reply':<44}{world:>10,.0f}{world / app:>8.2f}")
    print(f"\ntarget: 10,000 routed messages/s per core in the world -> {world / 10_000:.0%} of it")


if __name__ == "__main__":
    main()
