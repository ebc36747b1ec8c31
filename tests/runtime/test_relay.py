import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage

import pytest
from helpers.clock import ManualClock
from mailsim_runtime.autoreply import ReplyLimit, auto_reply_refusal
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.relay import Relay, RetryPolicy
from mailsim_runtime.transport import Envelope, FunctionTransport, RecipientResult


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def incoming(headers: str = "", sender: str = "alice@example.org") -> MailRequest:
    raw = (
        "From: Alice <alice@example.org>\r\nTo: help@example.com\r\nSubject: Help\r\n"
        "Message-ID: <q1@example.org>\r\nReferences: <q0@example.org>\r\n"
        f"{headers}\r\nplease\r\n"
    )
    return MailRequest("127.0.0.1", sender, "help@example.com", raw.encode())


@pytest.mark.parametrize(
    ("headers", "sender", "reason"),
    [
        ("", "", "null"),
        ("Auto-Submitted: auto-replied\r\n", "alice@example.org", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated; x=y\r\n", "alice@example.org", "auto-generated"),
        ("Precedence: bulk\r\n", "alice@example.org", "Precedence: bulk"),
        ("Precedence: LIST\r\n", "alice@example.org", "Precedence: list"),
        ("Precedence: junk\r\n", "alice@example.org", "Precedence: junk"),
        ("List-Id: <python.lists.example.com>\r\n", "alice@example.org", "List-Id"),
        ("List-Unsubscribe: <mailto:u@x>\r\n", "alice@example.org", "List-Unsubscribe"),
    ],
)
def test_rfc3834_forbids_auto_replies(headers: str, sender: str, reason: str) -> None:
    refusal = auto_reply_refusal(incoming(headers, sender))
    assert refusal is not None and reason in refusal
    transport = FunctionTransport()
    relay = Relay(transport)
    assert (
        relay.reply(incoming(headers, sender), MailResponse(from_="help@example.com", body="x"))
        is None
    )
    assert transport.sent == []


def test_auto_submitted_no_may_be_answered() -> None:
    assert auto_reply_refusal(incoming("Auto-Submitted: no\r\n")) is None


def test_reply_threads_and_marks_itself() -> None:
    transport = FunctionTransport()
    clock = ManualClock()
    relay = Relay(
        transport, hostname="example.com", clock=clock, new_message_id=lambda: "<r1@example.com>"
    )
    relay.reply(
        incoming(), MailResponse(from_="help@example.com", subject="Re: Help", body="on it")
    )
    [sent] = transport.sent
    assert sent.envelope == Envelope("help@example.com", ("alice@example.org",))
    reply = parse(sent.message)
    assert reply["To"] == "Alice <alice@example.org>"
    assert reply["In-Reply-To"] == "<q1@example.org>"
    assert reply["References"] == "<q0@example.org> <q1@example.org>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Message-ID"] == "<r1@example.com>"
    assert reply["Date"].datetime == clock.now()


def test_reply_goes_to_reply_to_when_given() -> None:
    transport = FunctionTransport()
    Relay(transport).reply(
        incoming("Reply-To: team@example.org\r\n"), MailResponse(body="x", from_="h@example.com")
    )
    assert transport.sent[0].envelope.recipients == ("team@example.org",)


def test_outgoing_bytes_have_only_crlf_line_ends() -> None:
    transport = FunctionTransport()
    Relay(transport).deliver(
        b"From: a@example.com\nTo: b@example.org\nSubject: s\n\nline1\rline2\n.\n"
    )
    raw = transport.sent[0].message
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")


def test_envelope_defaults_and_bcc_stays_out_of_the_headers() -> None:
    transport = FunctionTransport()
    response = MailResponse(
        to="b@example.org", from_="a@example.com", body="x", headers={"Bcc": "c@example.org"}
    )
    Relay(transport).deliver(response)
    [sent] = transport.sent
    assert sent.envelope == Envelope("a@example.com", ("b@example.org", "c@example.org"))
    assert b"c@example.org" not in sent.message
    with pytest.raises(ValueError, match="no recipients"):
        Relay(transport).deliver(MailResponse(from_="a@example.com", body="x"))


class Flaky:
    """Refuses with 4xx a given number of times, then accepts."""

    def __init__(self, failures: int, code: int = 451) -> None:
        self.failures = failures
        self.code = code
        self.attempts = 0

    def __call__(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        self.attempts += 1
        results = {}
        for recipient in envelope.recipients:
            if recipient.endswith("@down.example") and self.attempts <= self.failures:
                results[recipient] = RecipientResult(
                    recipient, self.code, "4.4.1 try later", "mx.down.example"
                )
            elif recipient.startswith("nobody@"):
                results[recipient] = RecipientResult(
                    recipient, 550, "5.1.1 no such user", "mx.example.org"
                )
        return results


def test_temporary_failures_are_retried_with_backoff_then_delivered() -> None:
    clock = ManualClock()
    flaky = Flaky(failures=3)
    transport = FunctionTransport(flaky)
    relay = Relay(transport, clock=clock, retry=RetryPolicy(first=timedelta(minutes=5), factor=2))
    item = relay.deliver(
        MailResponse(to="x@down.example, y@ok.example", from_="a@example.com", body="b")
    )
    assert item.pending == ("x@down.example",)  # y was delivered on the first attempt
    assert relay.next_due() == clock.now() + timedelta(minutes=5)
    waits = []
    while relay.outbox.items():
        due = relay.next_due()
        assert due is not None
        waits.append(due - clock.now())
        clock.advance(due - clock.now())
        assert relay.run_due() == 1
    assert waits == [timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20)]
    assert flaky.attempts == 4
    assert [s.envelope.recipients for s in transport.sent] == [
        ("x@down.example", "y@ok.example")
    ] + [("x@down.example",)] * 3
    assert not any(s.envelope.sender == "" for s in transport.sent)  # no bounce


def test_nothing_is_attempted_before_it_is_due() -> None:
    clock = ManualClock()
    relay = Relay(FunctionTransport(Flaky(failures=99)), clock=clock)
    relay.deliver(MailResponse(to="x@down.example", from_="a@example.com", body="b"))
    clock.advance(timedelta(minutes=4, seconds=59))
    assert relay.run_due() == 0


def test_permanent_failure_bounces_to_the_sender_at_once() -> None:
    clock = ManualClock()
    transport = FunctionTransport(Flaky(failures=0))
    relay = Relay(transport, hostname="lists.example.com", clock=clock)
    relay.deliver(
        MailResponse(
            to="nobody@example.org", from_="owner@lists.example.com", subject="Hi", body="b"
        )
    )
    bounce = transport.sent[-1]
    assert bounce.envelope == Envelope("", ("owner@lists.example.com",))
    report = parse(bounce.message)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    status = report.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    fields = status.get_payload()
    assert fields[0]["Reporting-MTA"] == "dns; lists.example.com"
    assert fields[1]["Final-Recipient"] == "rfc822; nobody@example.org"
    assert fields[1]["Action"] == "failed"
    assert fields[1]["Status"] == "5.1.1"
    assert fields[1]["Remote-MTA"] == "dns; mx.example.org"
    assert "550 5.1.1 no such user" in fields[1]["Diagnostic-Code"]
    assert b"Subject: Hi" in report.get_payload()[2].as_bytes()
    assert relay.outbox.items() == []


def test_lifetime_end_bounces_with_expired_status_and_never_bounces_a_bounce() -> None:
    clock = ManualClock()
    transport = FunctionTransport(Flaky(failures=10_000))
    lifetime = timedelta(days=5)
    relay = Relay(transport, clock=clock, retry=RetryPolicy(lifetime=lifetime))
    relay.deliver(MailResponse(to="x@down.example", from_="a@down.example", body="b"))
    while relay.outbox.items() and clock.now() < clock.current + timedelta(days=30):
        due = relay.next_due()
        assert due is not None
        clock.advance(due - clock.now())
        relay.run_due()
    # the bounce to a@down.example itself could not be delivered: kept, not re-bounced
    senders = [s.envelope.sender for s in transport.sent]
    assert senders.count("") >= 1 and senders[-1] == ""
    bounce = parse(next(s.message for s in transport.sent if s.envelope.sender == ""))
    fields = bounce.get_payload()[1].get_payload()
    assert fields[1]["Status"] == "4.4.7"
    assert "expired" in fields[1]["Diagnostic-Code"]
    assert [item.envelope.sender for item in relay.outbox.failed] == [""]
    first_attempt = transport.sent[0]
    last_original = [s for s in transport.sent if s.envelope.sender == "a@down.example"][-1]
    assert last_original is not first_attempt


def test_retry_policy_defaults_follow_postfix() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (5, 10, 20)]
    assert policy.delay(30) == policy.longest
    assert policy.lifetime == timedelta(days=5)


def test_automatic_replies_to_one_address_are_rate_limited() -> None:
    clock = ManualClock()
    transport = FunctionTransport()
    relay = Relay(
        transport, clock=clock, reply_limit=ReplyLimit(count=2, window=timedelta(hours=1))
    )

    def answer() -> object:
        return relay.reply(incoming(), MailResponse(from_="help@example.com", body="x"))

    assert answer() is not None and answer() is not None
    assert answer() is None  # a third within the hour: suppressed
    clock.advance(timedelta(minutes=59))
    assert answer() is None
    clock.advance(timedelta(minutes=1))  # the first reply has left the window
    assert answer() is not None
    assert len(transport.sent) == 3
    assert Relay(FunctionTransport()).reply_limit == ReplyLimit(count=10, window=timedelta(hours=1))


def test_the_reply_limit_counts_each_address_apart() -> None:
    limit = ReplyLimit(count=1, window=timedelta(days=7))
    now = ManualClock().now()
    assert limit.allow("Alice@example.org", now)
    assert not limit.allow("alice@example.org", now)  # case does not make a new address
    assert limit.allow("bob@example.org", now)
    with pytest.raises(ValueError, match="count of at least 1"):
        ReplyLimit(count=0)
