"""The relay, its durable outbox and the SMTP transport together, against loopback servers.

Time is a :class:`ManualClock` moved by the test: retries and lifetimes pass
without sleeping. Only the :class:`RelayRunner` test waits on a thread, for an
event, with a timeout.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers.clock import ManualClock
from helpers.mailservers import Recorder, ServerLoop, closed_port, servers
from mailsim_runtime.mail import MailResponse
from mailsim_runtime.outbox import DurableOutbox
from mailsim_runtime.relay import Relay, RelayRunner, RetryPolicy
from mailsim_runtime.transport import SmtpTransport


@pytest.fixture
def loop() -> Iterator[ServerLoop]:
    yield from servers()


def relay_on(
    folder: Path,
    port: int,
    clock: ManualClock,
    *,
    retry: RetryPolicy | None = None,
    attempt_at_once: bool = True,
) -> Relay:
    return Relay(
        SmtpTransport("127.0.0.1", port, timeout=5),
        hostname="app.example.com",
        clock=clock,
        outbox=DurableOutbox(folder),
        retry=retry,
        attempt_at_once=attempt_at_once,
    )


def mail(to: str = "bob@example.org", sender: str = "owner@app.example.com") -> MailResponse:
    return MailResponse(to=to, from_=sender, subject="Hello", body="hello\n")


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def report_fields(raw: bytes) -> list[Any]:
    """The per-message and per-recipient field blocks of a delivery status report."""
    report = parse(raw)
    assert report.get_content_type() == "multipart/report"
    parts: Any = report.get_payload()
    assert parts[1].get_content_type() == "message/delivery-status"
    return list(parts[1].get_payload())


def run_until_empty(relay: Relay, clock: ManualClock, *, limit: int = 200) -> int:
    """Move the clock from retry to retry until nothing is queued; returns the runs."""
    runs = 0
    while relay.outbox.items():
        due = relay.next_due()
        assert due is not None and runs < limit
        clock.advance(max(due - clock.now(), timedelta(0)))
        relay.run_due()
        runs += 1
    return runs


def test_a_deferring_smart_host_is_retried_until_it_accepts(
    loop: ServerLoop, tmp_path: Path
) -> None:
    refusals = iter(["451 4.7.1 greylisted, come back later"] * 2)
    server = Recorder(rcpt=lambda r: next(refusals, None))
    clock = ManualClock()
    relay = relay_on(tmp_path, loop.serve(server), clock)
    item = relay.deliver(mail())
    assert item.pending == ("bob@example.org",) and item.attempts == 1
    assert item.results["bob@example.org"].text == "4.7.1 greylisted, come back later"
    [queued] = DurableOutbox(tmp_path).items()  # on disk, with its schedule
    assert queued.next_attempt == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=4))
    assert relay.run_due() == 0  # not yet due: no connection made
    assert len(server.senders) == 1
    clock.advance(timedelta(minutes=1))
    assert relay.run_due() == 1  # deferred again; next wait doubles
    assert relay.next_due() == clock.now() + timedelta(minutes=10)
    clock.advance(timedelta(minutes=10))
    assert relay.run_due() == 1
    assert relay.outbox.items() == []
    [received] = server.messages
    assert received.recipients == ["bob@example.org"]
    assert parse(received.content)["Subject"] == "Hello"


def test_a_host_that_never_accepts_bounces_after_the_lifetime(
    loop: ServerLoop, tmp_path: Path
) -> None:
    server = Recorder(rcpt=lambda r: "451 4.4.1 try later" if r.endswith("@down.example") else None)
    clock = ManualClock()
    retry = RetryPolicy(
        first=timedelta(minutes=5), longest=timedelta(hours=1), lifetime=timedelta(hours=5)
    )
    relay = relay_on(tmp_path, loop.serve(server), clock, retry=retry)
    start = clock.now()
    relay.deliver(mail("x@down.example"))
    run_until_empty(relay, clock)
    assert clock.now() - start >= retry.lifetime
    [report] = server.messages
    assert report.sender == ""  # from the null sender
    assert report.recipients == ["owner@app.example.com"]
    fields = report_fields(report.content)
    assert fields[1]["Final-Recipient"] == "rfc822; x@down.example"
    assert fields[1]["Status"] == "4.4.7"
    assert fields[1]["Remote-MTA"] == "dns; 127.0.0.1"
    assert "451 4.4.1 try later" in fields[1]["Diagnostic-Code"]
    assert len(server.rcpts) > 5  # it was retried all along


def test_an_undeliverable_bounce_is_kept_and_never_bounced(
    loop: ServerLoop, tmp_path: Path
) -> None:
    server = Recorder(rcpt=lambda r: "451 4.4.1 try later" if r.endswith("@down.example") else None)
    clock = ManualClock()
    retry = RetryPolicy(first=timedelta(minutes=30), lifetime=timedelta(hours=2))
    relay = relay_on(tmp_path, loop.serve(server), clock, retry=retry)
    relay.deliver(mail("x@down.example", sender="someone@down.example"))
    run_until_empty(relay, clock)
    assert server.messages == []
    # The report went out from <> to the sender, was deferred until its own
    # lifetime ended, and was then set aside: no report on the report.
    assert set(server.senders) == {"someone@down.example", ""}
    null_sender_rcpts = {r for r in server.rcpts if r != "x@down.example"}
    assert null_sender_rcpts == {"someone@down.example"}
    [kept] = DurableOutbox(tmp_path).failed
    assert kept.envelope.sender == "" and kept.envelope.recipients == ("someone@down.example",)
    assert kept.results["someone@down.example"].code == 451


def test_a_5xx_bounces_at_once(loop: ServerLoop, tmp_path: Path) -> None:
    server = Recorder(rcpt=lambda r: "550 5.1.1 no such user" if r.startswith("nobody") else None)
    clock = ManualClock()
    relay = relay_on(tmp_path, loop.serve(server), clock)
    relay.deliver(mail("nobody@example.org, bob@example.org"))
    delivered, report = server.messages
    assert delivered.recipients == ["bob@example.org"]
    assert (report.sender, report.recipients) == ("", ["owner@app.example.com"])
    fields = report_fields(report.content)
    assert fields[1]["Status"] == "5.1.1"
    assert relay.outbox.items() == []


def test_a_refused_connection_keeps_the_mail_queued(tmp_path: Path) -> None:
    clock = ManualClock()
    relay = relay_on(tmp_path, closed_port(), clock)
    item = relay.deliver(mail())
    assert item.results["bob@example.org"].code == 451
    assert item.results["bob@example.org"].text.startswith("4.4.1 connecting to 127.0.0.1")
    [queued] = DurableOutbox(tmp_path).items()
    assert queued.attempts == 1 and queued.pending == ("bob@example.org",)


def test_the_outbox_outlives_its_relay(loop: ServerLoop, tmp_path: Path) -> None:
    clock = ManualClock()
    down = relay_on(tmp_path, closed_port(), clock)
    down.deliver(mail("one@example.org"))
    down.deliver(mail("two@example.org"))
    assert [i.attempts for i in down.outbox.items()] == [1, 1]
    del down
    server = Recorder()
    restarted = relay_on(tmp_path, loop.serve(server), clock)
    assert [i.envelope.recipients for i in restarted.outbox.items()] == [
        ("one@example.org",),
        ("two@example.org",),
    ]
    clock.advance(timedelta(minutes=5))
    assert restarted.run_due() == 2
    assert sorted(m.recipients[0] for m in server.messages) == [
        "one@example.org",
        "two@example.org",
    ]
    assert restarted.outbox.items() == []


def test_mail_queued_by_a_relay_that_died_is_delivered_by_the_next(
    loop: ServerLoop, tmp_path: Path
) -> None:
    server = Recorder()
    port = loop.serve(server)
    clock = ManualClock()
    crashed = relay_on(tmp_path, port, clock, attempt_at_once=False)
    for n in range(3):
        crashed.deliver(mail(f"user{n}@example.org"))
    assert server.senders == []  # dropped before any attempt
    del crashed
    assert len(DurableOutbox(tmp_path)) == 3
    assert relay_on(tmp_path, port, clock).run_due() == 3
    assert sorted(m.recipients[0] for m in server.messages) == [
        "user0@example.org",
        "user1@example.org",
        "user2@example.org",
    ]
    assert len(DurableOutbox(tmp_path)) == 0


def test_the_runner_makes_the_attempts_while_it_runs(loop: ServerLoop, tmp_path: Path) -> None:
    server = Recorder()
    relay = relay_on(tmp_path, loop.serve(server), ManualClock())
    runner = RelayRunner(relay, interval=timedelta(seconds=30), threads=2)
    with runner:
        assert runner.running and relay.attempt_at_once is False
        item = relay.deliver(mail("one@example.org"))
        assert item.attempts == 0  # queued only; the handler thread goes on at once
        relay.deliver(mail("two@example.org"))
        server.wait_for(2)  # woken at once, not after the 30 s interval
    assert not runner.running and relay.attempt_at_once is True
    assert sorted(m.recipients[0] for m in server.messages) == [
        "one@example.org",
        "two@example.org",
    ]
    assert len(server.senders) == 2  # each attempted once, though two threads ran
