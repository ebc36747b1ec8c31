"""Loops and storms: auto-responders answering each other in the World, and a forwarding
loop between two real receivers that the Received-header count ends.

(`tests/mailsim/test_world.py` has the world's own guards: the delivery-count
MailLoop and the Received limit on a message posted with 30 hops.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults_support import wait_until
from mailsim_runtime import App, MailResponse, current_app, route, stateless
from mailsim_runtime.autoreply import ReplyLimit
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.outbox import DurableOutbox
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.server import Receiver
from mailsim_runtime.transport import SmtpTransport
from sample_handlers import relaying

from mailsim.world import MailLoop, World


def world(**options: object) -> World:
    return World(App([relaying], hostname="app.example.com"), **options)  # type: ignore[arg-type]


def test_our_responder_and_a_careless_vacation_stop_answering_each_other() -> None:
    """Ours follows RFC 3834; bob's vacation notice answers everything, ours included,
    without marking its own. Each of bob's notices looks like a person's mail to us,
    so only the per-address limit on our automatic replies ends the exchange."""
    w = world(strict=False)
    w.host("example.net").vacation("bob@example.net", "Away.", follows_rfc3834=False)
    bob = w.mailbox("bob@example.net")
    bob.send("auto@app.example.com", subject="hi")  # returns: the world went quiet
    ours = [m for m in w.transcript.messages if m.sender == "auto@app.example.com"]
    theirs = [m for m in w.transcript.messages if m.subject.startswith("Auto: ")]
    limit = w.app.relay.reply_limit.count
    assert len(ours) == limit  # then the limit stopped us
    assert len(theirs) == limit  # one notice per reply of ours, none after
    assert all(m.outcome.startswith("delivered") for m in ours + theirs)
    # The exchange is over: the next mail from bob is not answered (within the window).
    bob.send("auto@app.example.com", subject="still there?")
    assert len([m for m in w.transcript.messages if m.sender == "auto@app.example.com"]) == limit


def test_without_the_reply_limit_the_world_catches_the_loop() -> None:
    w = world(loop_limit=80)
    w.app.relay.reply_limit = ReplyLimit(count=10_000)
    w.host("example.net").vacation("bob@example.net", "Away.", follows_rfc3834=False)
    with pytest.raises(MailLoop, match=r"more than 80 deliveries.*auto@app\.example\.com"):
        w.mailbox("bob@example.net").send("auto@app.example.com", subject="hi")


def test_two_rfc3834_responders_exchange_one_reply_each() -> None:
    w = world(strict=False)
    w.host("example.net").vacation("bob@example.net", "Away.")
    w.mailbox("bob@example.net").send("auto@app.example.com", subject="hi")
    subjects = [m.subject for m in w.transcript.messages]
    assert subjects == ["hi", "Got it"]  # bob's responder leaves an auto-reply alone


# A forwarding loop between two real receivers ---------------------------------------


@route("(user)@(host)", user=".+", host=".+")
@stateless
def FORWARD(message: MailRequest, user: str, host: str) -> None:
    """Forward the message as it is, Received headers and all, to the other side."""
    app = current_app()
    app.settings["hops"].append(message.original.count(b"\nReceived:") + 1)
    app.relay.deliver(
        message.original, sender=f"loop@{app.hostname}", recipients=[app.settings["to"]]
    )


@dataclass
class Side:
    app: App
    receiver: Receiver
    hops: list[int]


@pytest.fixture
def two_sides(tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    sides = []
    for name in ("a", "b"):
        hops: list[int] = []
        app = App(
            [FORWARD.__module__],
            hostname=f"{name}.example",
            settings={"hops": hops},
            undeliverable=MemoryQueue(),
            outbox=DurableOutbox(tmp_path / f"outbox-{name}", durable=False),
        )
        server = Receiver(
            app,
            host="127.0.0.1",
            port=0,
            queue=tmp_path / f"incoming-{name}",
            durability="none",
            workers=2,
            poll=0.05,
            limits=LimitsSection(),  # the default: a loop at 50 Received headers
        )
        sides.append(Side(app, server, hops))
    a, b = sides
    with a.receiver, b.receiver:
        for here, there in ((a, b), (b, a)):
            here.app.relay.transport = SmtpTransport("127.0.0.1", there.receiver.port, timeout=10)
            here.app.settings["to"] = f"x@{there.app.hostname}"
        yield a, b


def test_a_forwarding_loop_ends_at_the_received_limit(two_sides: tuple[Side, Side]) -> None:
    a, b = two_sides
    a.app.relay.deliver(
        MailResponse(to="x@b.example", from_="someone@client.example", subject="round"),
        sender="someone@client.example",
        recipients=["x@b.example"],
    )
    limit = LimitsSection().received_headers

    def ended() -> bool:
        return bool(a.app.relay.outbox.failed or b.app.relay.outbox.failed)  # type: ignore[attr-defined]

    # The side that met the limit bounced to the other's loop@ address, which that
    # side refuses (not its domain): a bounce that cannot be delivered is kept.
    wait_until(ended, timeout=60, what="the loop refused and its bounce kept")
    hops = sorted(a.hops + b.hops)
    assert hops == list(range(1, limit + 1))  # each hop once, up to the limit
    failed = a.app.relay.outbox.failed + b.app.relay.outbox.failed  # type: ignore[attr-defined]
    [kept] = failed
    assert kept.envelope.sender == ""  # the bounce, never bounced itself
    report = kept.message.decode("utf-8", "replace")
    assert re.search(r"554 5\.4\.6 Too many Received headers \(50\): a mail loop", report)
    for side in (a, b):
        assert side.app.relay.outbox.items() == []
        assert side.receiver.dispatcher.wait_idle(10)
