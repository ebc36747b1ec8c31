import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from helpers.clock import ManualClock
from hypothesis import given
from hypothesis import strategies as st
from mailsim_runtime.autoreply import ReplyLimit, _fit_for_to, auto_reply_refusal, reply_address
from mailsim_runtime.clock import format_date
from mailsim_runtime.mail import (
    HeaderFields,
    MailRequest,
    MailResponse,
    _plain_header_fields,
    addresses_in,
)
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


# Fast paths of the relay against what they stand for ---------------------------------


class HeadRecorder:
    """A transport that can be told how a message's header section splits."""

    def __init__(self) -> None:
        self.plain: list[bytes] = []
        self.with_head: list[tuple[bytes, HeaderFields | None]] = []

    def deliver(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        self.plain.append(message)
        return {r: RecipientResult(r, 250, "2.0.0 OK") for r in envelope.recipients}

    def deliver_with_head(
        self, envelope: Envelope, message: bytes, head: HeaderFields | None
    ) -> dict[str, RecipientResult]:
        self.with_head.append((message, head))
        return {r: RecipientResult(r, 250, "2.0.0 OK") for r in envelope.recipients}


def test_a_transport_that_takes_a_head_gets_the_one_the_bytes_split_into() -> None:
    transport = HeadRecorder()
    relay = Relay(transport, clock=ManualClock())
    relay.reply(incoming(), MailResponse(from_="help@example.com", subject="Re: Help", body="ok"))
    [(message, head)] = transport.with_head
    assert head is not None and list(head) == _plain_header_fields(message)
    assert not transport.plain


def test_messages_whose_head_is_not_known_go_through_plain_deliver() -> None:
    transport = HeadRecorder()
    relay = Relay(transport, clock=ManualClock())
    relay.deliver(b"From: a@example.com\r\nTo: b@example.org\r\n\r\nx\r\n")
    relay.deliver(MailResponse(to="b@example.org", from_="a@example.com", body="caf\u00e9"))
    assert len(transport.plain) == 2 and not transport.with_head


def test_a_head_is_only_given_to_a_transport_that_asks_for_one() -> None:
    transport = FunctionTransport()
    Relay(transport).deliver(MailResponse(to="b@example.org", from_="a@example.com", body="x"))
    [sent] = transport.sent
    assert sent.message.startswith(b"To: b@example.org\r\n")


aware_times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()
) | st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(-23 * 60, 23 * 60),
)


@given(moment=aware_times | st.datetimes())
def test_dates_kept_per_moment_are_what_format_datetime_writes(moment: datetime) -> None:
    assert format_date(moment) == format_datetime(moment)
    assert format_date(moment) == format_datetime(moment)  # kept, the second time


def test_one_instant_in_two_zones_is_written_in_each_zone() -> None:
    # Equal datetimes (one instant), different wall-clock times: not one cache entry.
    utc = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == paris
    assert format_date(utc) == "Mon, 05 Jan 2026 09:00:00 +0000"
    assert format_date(paris) == "Mon, 05 Jan 2026 10:00:00 +0100"
    assert format_date(utc.replace(tzinfo=None)) == "Mon, 05 Jan 2026 09:00:00 -0000"


def queued_id(moment: datetime) -> str:
    relay = Relay(FunctionTransport(), clock=ManualClock(moment), attempt_at_once=False)
    return relay.deliver(MailResponse(to="b@example.org", from_="a@example.com", body="x")).id


@given(moment=aware_times)
def test_outbox_ids_start_with_the_wall_clock_time_of_queueing(moment: datetime) -> None:
    assert queued_id(moment).split(".")[0] == moment.strftime("%Y%m%d%H%M%S")


def test_outbox_ids_of_one_instant_in_two_zones_differ_as_their_clocks_do() -> None:
    utc = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert queued_id(utc).startswith("20260105090000.")
    assert queued_id(paris).startswith("20260105100000.")


def reply_address_as_it_was(original: MailRequest) -> str:
    """reply_address before its shortcut for a simple mailbox: the reference."""
    for value in (original["Reply-To"], original["From"]):
        found = [a for a in addresses_in([value]) if "@" in a] if value else []
        for candidate in [value, *found] if found else []:
            if candidate is not None and _fit_for_to(candidate):
                return candidate
    return original.sender


address_values = st.one_of(
    st.none(),
    st.sampled_from(["a@example.org", "Ann Lee <ann@example.org>", '"Lee, Ann" <ann@x.org>']),
    st.builds(lambda n: f"{'x' * n}@example.org", st.integers(240, 260)),  # around the limit
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


@given(reply_to=address_values, from_=address_values)
def test_the_reply_address_is_the_one_worked_out_in_full(
    reply_to: str | None, from_: str | None
) -> None:
    lines = [f"{name}: {value}\r\n" for name, value in (("Reply-To", reply_to), ("From", from_))]
    raw = "".join(line for line in lines if "None" not in line) + "\r\nbody\r\n"
    original = MailRequest("127.0.0.1", "s@example.org", "r@example.com", raw.encode())
    assert reply_address(original) == reply_address_as_it_was(original)


def test_an_envelope_given_is_used_and_bcc_still_leaves_the_message() -> None:
    transport = FunctionTransport()
    post = parse(
        b"From: a@example.com\r\nTo: list@example.com\r\nBcc: hidden@example.org\r\n"
        b"Date: not a date at all\r\nMessage-ID: <kept@example.com>\r\n\r\nx\r\n"
    )
    Relay(transport).deliver(post, sender="bounces@example.com", recipients=["m@example.org"])
    [sent] = transport.sent
    assert sent.envelope == Envelope("bounces@example.com", ("m@example.org",))
    delivered = parse(sent.message)
    assert delivered["Bcc"] is None
    assert str(delivered["Message-ID"]) == "<kept@example.com>"
    assert delivered.get_all("Date") is not None and len(delivered.get_all("Date")) == 1


# RFC 3834's checks: one look at the header names first, then the rules in full -------

watched_lines = st.sampled_from(
    [
        "Auto-Submitted: no",
        "auto-submitted: auto-replied",
        "Auto-Submitted: auto-generated; x=y",
        "Precedence: bulk",
        "PRECEDENCE: first-class",
        "Precedence: LIST",
        "List-Id: <l.example.org>",
        "list-post: <mailto:l@example.org>",
        "List-Archive: <https://example.org>",
        "X-Other: 1",
        "Subject: hello",
    ]
)


@given(lines=st.lists(watched_lines, max_size=4), odd=st.booleans())
def test_the_quick_rfc3834_check_answers_as_the_rules_in_full(lines: list[str], odd: bool) -> None:
    from mailsim_runtime.autoreply import _WATCHED, _header_refusal

    # An 8-bit header leaves the section to the compat32 parser; else it is split in place.
    head = "".join(f"{line}\r\n" for line in lines) + ("X-8bit: \xe9\r\n" if odd else "")
    message = MailRequest(
        "127.0.0.1", "a@example.org", "b@example.com", f"{head}\r\nx".encode("latin-1")
    )
    assert message._has_any(_WATCHED) == any(name in message for name in _WATCHED)
    assert auto_reply_refusal(message) == _header_refusal(message)


@given(
    first=st.integers(1, 10_000),
    factor=st.floats(1, 4),
    longest=st.integers(1, 100_000),
    attempts=st.integers(0, 40),
)
def test_retry_delays_kept_per_policy_are_the_ones_worked_out(
    first: int, factor: float, longest: int, attempts: int
) -> None:
    policy = RetryPolicy(
        first=timedelta(seconds=first), factor=factor, longest=timedelta(seconds=longest)
    )
    try:
        expected = min(policy.first * (policy.factor ** max(attempts - 1, 0)), policy.longest)
    except OverflowError:  # past what a timedelta holds: the same error either way
        with pytest.raises(OverflowError):
            policy.delay(attempts)
        return
    assert policy.delay(attempts) == expected
    assert policy.delay(attempts) == expected  # the second time too


def test_a_transport_that_leaves_a_recipient_out_is_an_error_that_changes_nothing() -> None:
    class OnlyTheFirst:
        def deliver(self, envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
            first = envelope.recipients[0]
            return {first: RecipientResult(first, 250, "2.0.0 OK")}

    relay = Relay(OnlyTheFirst(), attempt_at_once=False)
    item = relay.deliver(
        MailResponse(from_="a@example.com", body="x"),
        recipients=["b@example.org", "c@example.org", "d@example.org"],
    )
    with pytest.raises(RuntimeError, match=r"no result for \['c@example.org', 'd@example.org'\]"):
        relay.run_due()
    [kept] = relay.outbox.items()
    assert (kept.attempts, kept.pending) == (0, item.pending)


def test_moments_in_one_second_are_written_once_and_as_each_would_be() -> None:
    from mailsim_runtime.clock import wall_clock_text

    written: list[datetime] = []

    def render(moment: datetime) -> str:
        written.append(moment)
        return format_datetime(moment)

    base = datetime(2031, 7, 1, 12, 30, 15, tzinfo=UTC)
    for microsecond in (0, 1, 500_000, 999_999):
        moment = base.replace(microsecond=microsecond)
        assert wall_clock_text(moment, render) == format_datetime(moment)
    assert written == [base]  # once for the whole second
    later = base + timedelta(seconds=1, microseconds=7)
    assert wall_clock_text(later, render) == format_datetime(later)
    assert len(written) == 2


@given(
    sender=st.sampled_from(["", "a@example.com", "A@Example.com"]),
    recipients=st.lists(
        st.sampled_from(["b@example.org", "c@example.org", "B@example.org"]), min_size=1, max_size=3
    ),
)
def test_envelopes_shared_between_messages_are_the_ones_each_would_get(
    sender: str, recipients: list[str]
) -> None:
    relay = Relay(FunctionTransport())
    for _ in range(2):
        item = relay.deliver(
            MailResponse(from_="x@example.com", body="x"), sender=sender, recipients=recipients
        )
        assert item.envelope == Envelope(sender, tuple(recipients))
        assert relay.transport.sent[-1].envelope == Envelope(sender, tuple(recipients))  # type: ignore[attr-defined]
