"""The simulated world: delivery, faults, virtual time, loops, strictness, transcripts."""

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mailsim_runtime import App, MailResponse, mail
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.routing import Delivery
from sample_handlers import relaying

from mailsim.spec.expect import MailExpectationError
from mailsim.spec.matchers import body, sender, subject
from mailsim.world import HandlerFailed, MailLoop, UnexpectedMail, World


def world(**options: object) -> World:
    return World(App([relaying], hostname="app.example.com"), **options)  # type: ignore[arg-type]


def test_forwarded_mail_reaches_a_remote_person() -> None:
    w = world()
    alice, bob = w.mailbox("alice@example.org"), w.mailbox("bob@example.net")
    alice.send("forward-bob-at-example.net@app.example.com", subject="Hello Bob", body="hi")
    mail = bob.expect(subject="Hello Bob", sender="forwarder@app.example.com", body="hi")
    assert mail.arrived == w.clock.now()
    assert mail["Received"] is not None
    w.verify()


def test_unrouted_address_is_refused_and_the_sender_is_told() -> None:
    w = world()
    alice = w.mailbox("alice@example.org")
    alice.send("nobody@app.example.com", subject="x")
    bounce = alice.expect(sender="MAILER-DAEMON@example.org", subject="Undelivered")
    assert bounce.sender == ""
    assert "550 5.1.1" in bounce.request.msg.get_payload()[1].get_payload()[1]["Diagnostic-Code"]
    refused = w.transcript.messages[0]
    assert refused.outcome.startswith("refused 550 5.1.1")


def test_refusing_host_makes_the_app_bounce_to_its_sender() -> None:
    w = world()
    w.host("example.net").refuse(550, "5.7.1 go away")
    w.mailbox("alice@example.org").send("forward-bob-at-example.net@app.example.com", subject="x")
    # forwarder@app.example.com is the envelope sender: the bounce comes back to the app,
    # where no route takes it (forwarder@ has none) — so it is refused, and recorded.
    outcomes = [m.outcome for m in w.transcript.messages]
    assert outcomes[1] == "refused 550 5.7.1 go away"
    assert outcomes[2].startswith("refused 550 5.1.1")  # the DSN to forwarder@app.example.com
    assert w.app.relay.outbox.items() == []


def test_deferring_host_gets_the_mail_after_retries_driven_by_the_clock() -> None:
    w = world()
    w.host("example.net").defer(times=2)
    alice, bob = w.mailbox("alice@example.org"), w.mailbox("bob@example.net")
    alice.send("forward-bob-at-example.net@app.example.com", subject="patience")
    bob.expect_no_mail()
    w.clock.advance(minutes=4)
    bob.expect_no_mail()
    w.clock.advance(minutes=1)  # first retry at +5 min: deferred again
    bob.expect_no_mail()
    w.clock.advance(minutes=10)  # second retry at +15 min: accepted
    mail = bob.expect(subject="patience")
    assert mail.arrived - w.clock.start == timedelta(minutes=15)
    deferrals = [m for m in w.transcript.messages if m.outcome.startswith("deferred")]
    assert len(deferrals) == 2


def test_greylisting_host_accepts_the_retry_after_its_delay() -> None:
    w = world()
    w.host("example.net").greylist(timedelta(minutes=3))
    bob = w.mailbox("bob@example.net")
    w.mailbox("alice@example.org").send(
        "forward-bob-at-example.net@app.example.com", subject="grey"
    )
    bob.expect_no_mail()
    w.clock.advance(minutes=5)
    assert bob.expect(subject="grey").arrived - w.clock.start == timedelta(minutes=5)


def test_a_host_that_stays_down_ends_in_a_bounce_after_the_lifetime() -> None:
    w = world()
    w.host("example.net").down()
    w.mailbox("alice@example.org").send(
        "forward-bob-at-example.net@app.example.com", subject="gone"
    )
    w.clock.advance(days=6)
    attempts = [m for m in w.transcript.messages if "connection refused" in m.outcome]
    assert len(attempts) > 5
    last = w.transcript.messages[-1]
    assert last.sender == "" and last.recipient == "forwarder@app.example.com"
    assert w.app.relay.outbox.items() == []


def test_host_coming_back_up_gets_the_queued_mail() -> None:
    w = world()
    host = w.host("example.net").down()
    bob = w.mailbox("bob@example.net")
    w.mailbox("alice@example.org").send(
        "forward-bob-at-example.net@app.example.com", subject="later"
    )
    w.clock.advance(hours=1)
    bob.expect_no_mail()
    host.up()
    w.clock.advance(hours=4)
    bob.expect(subject="later")


def test_bouncing_address_sends_a_real_rfc3464_report_to_the_envelope_sender() -> None:
    w = world(strict=False)
    w.host("example.net").bounce("bob@example.net", "5.1.1", "no such mailbox")
    carol = w.mailbox("carol@example.org")
    carol.send("bob@example.net", subject="are you there?")
    report = carol.expect(sender="MAILER-DAEMON@example.net")
    assert report.request.is_bounce()
    analysed = report.request.bounce
    assert analysed is not None
    assert [(r.recipient, r.status, r.hard) for r in analysed.recipients] == [
        ("bob@example.net", "5.1.1", True)
    ]


def test_vacation_replies_follow_rfc3834_and_do_not_answer_auto_replies() -> None:
    w = world()
    w.host("example.net").vacation("bob@example.net", "Away until Monday.")
    alice, bob = w.mailbox("alice@example.org"), w.mailbox("bob@example.net")
    alice.send("bob@example.net", subject="lunch?")
    bob.expect(subject="lunch?")
    away = alice.expect(subject="Auto: lunch?", body="Away until Monday.")
    assert away["Auto-Submitted"] == "auto-replied"
    assert away["In-Reply-To"] is not None
    # our app's RFC 3834 responder and bob's vacation: one reply each way, then quiet
    w.mailbox("bob@example.net")
    w.app.relay.deliver(MailResponse(to="bob@example.net", from_="auto@app.example.com", body="x"))
    w.run_until_quiet()
    bob.expect(sender="auto@app.example.com")
    w.verify()


def test_two_careless_responders_loop_and_the_world_stops_it() -> None:
    w = world(loop_limit=60)
    w.host("example.net").vacation("bob@example.net", "Away.", follows_rfc3834=False)
    with pytest.raises(
        MailLoop, match=r"mail loop: more than 60 deliveries.*careless@app.example.com"
    ):
        w.mailbox("bob@example.net").send("careless@app.example.com", subject="hi")


def test_mail_that_went_through_too_many_hops_is_refused() -> None:
    w = world(received_limit=30, strict=False)
    looping = MailResponse(
        to="auto@app.example.com", from_="alice@example.org", subject="x", body="y"
    )
    for hop in range(30):
        looping.add_header(
            "Received", f"from hop{hop} by hop{hop + 1}; Mon, 5 Jan 2026 09:00:00 +0000"
        )
    w.post("alice@example.org", ["auto@app.example.com"], looping)
    assert w.transcript.messages[0].outcome == "refused 554 5.4.6 too many hops (mail loop?)"
    assert not any(m.destination == "app" and m.delivered for m in w.transcript.messages)


def test_handler_errors_fail_the_step_with_the_transcript() -> None:
    w = world()
    with pytest.raises(
        HandlerFailed, match=r"(?s)RuntimeError\('the handler is broken'\).*Transcript:"
    ):
        w.mailbox("alice@example.org").send("broken@app.example.com", subject="x")


def test_strict_world_lists_unexamined_mail() -> None:
    w = world()
    w.mailbox("alice@example.org").send("auto@app.example.com", subject="q")
    with pytest.raises(
        UnexpectedMail,
        match=re.escape("alice@example.org: #1 from auto@app.example.com subject 'Got it'"),
    ):
        w.verify()
    world(strict=False).verify()


def test_expectation_failures_list_the_nearest_candidates_first() -> None:
    w = world()
    alice = w.mailbox("alice@example.org")
    alice.send("auto@app.example.com", subject="one")
    alice.send("forward-alice-at-example.org@app.example.com", subject="Got it too", body="fwd")
    with pytest.raises(MailExpectationError) as failure:
        alice.expect(subject("Got it too") & body("fwd") & sender("auto@"))
    lines = str(failure.value).splitlines()
    assert lines[0] == (
        "alice@example.org: expected a mail with subject containing 'Got it too' "
        "and body containing 'fwd' and sender containing 'auto@'"
    )
    assert lines[1] == "amongst 2 unclaimed mails (nearest first):"
    assert lines[2] == (
        "  #2 from forwarder@app.example.com subject 'Got it too' — "
        "sender was 'forwarder@app.example.com'"
    )
    assert lines[3] == (
        "  #1 from auto@app.example.com subject 'Got it' — subject was 'Got it'; body was 'Thanks.'"
    )


def test_matchers_compose_and_claimed_mail_is_not_claimed_twice() -> None:
    w = world()
    alice = w.mailbox("alice@example.org")
    alice.send("auto@app.example.com", subject="one")
    mail = alice.expect(subject("Got") & ~body("nothing like this") | sender("nobody"))
    assert mail.subject == "Got it"
    with pytest.raises(MailExpectationError, match="an earlier assertion already claimed"):
        alice.expect(subject="Got it")


def test_ids_dates_and_secrets_repeat_under_a_seed() -> None:
    def run(seed: int) -> list[str]:
        w = world(seed=seed, strict=False)
        w.mailbox("a@example.org").send("auto@app.example.com", subject="x")
        w.clock.advance(hours=1)
        w.mailbox("a@example.org").send("auto@app.example.com", subject="y")
        return [f"{m.message_id} {m.time}" for m in w.transcript.messages]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_transcript_renders_a_log_and_a_sequence_diagram() -> None:
    w = world(strict=False)
    w.mailbox("alice@example.org").send("auto@app.example.com", subject="Question")
    log = w.transcript.log().splitlines()
    assert log[0].startswith("00:00:00  alice@example.org → auto@app.example.com  'Question'")
    assert log[1].startswith("00:00:00  auto@app.example.com → alice@example.org  'Got it'")
    diagram = w.transcript.mermaid().splitlines()
    assert diagram[0] == "sequenceDiagram"
    assert "    alice_example_org->>app: Question" in diagram
    assert "    app->>alice_example_org: Got it" in diagram


def test_people_cannot_live_in_the_apps_domain() -> None:
    with pytest.raises(ValueError, match="application's domain"):
        world().mailbox("x@app.example.com")
    with pytest.raises(ValueError, match="own domain"):
        world().host("app.example.com")


def test_a_person_needs_an_address_mail_can_reach() -> None:
    with pytest.raises(
        ValueError, match=r"no person can live at 'jos\u00e9@example\.org': .*local part"
    ):
        world().mailbox("jos\u00e9@example.org")


def test_mail_from_an_internationalized_address_goes_through_the_world() -> None:
    w = world()
    bob = w.mailbox("bob@example.net")
    sender = "jos\u00e9@ex\u00e4mple.org"
    w.post(
        sender,
        ["forward-bob-at-example.net@app.example.com"],
        MailResponse(
            to="forward-bob-at-example.net@app.example.com", from_=sender, subject="Ol\u00e1"
        ),
    )
    assert bob.expect(subject="Ol\u00e1", sender="forwarder@app.example.com")
    arrived = w.transcript.messages[0]
    assert (arrived.sender, arrived.from_header) == (sender, sender)


def test_state_expectations_explain_themselves() -> None:
    from sample_handlers import fsm

    w = World(App([fsm], hostname="fsm.example.com"))
    w.mailbox("alice@example.org").send("go@fsm.example.com", subject="x")
    w.expect_state(fsm.__name__, "alice@example.org", "WAITING")
    with pytest.raises(AssertionError) as failure:
        w.expect_state(fsm.__name__, "Bob@example.org", "WAITING")
    assert str(failure.value).splitlines() == [
        f"expected conversation 'Bob@example.org' of {fsm.__name__} in state WAITING, "
        "but it is in START",
        "conversations of that module: alice@example.org in WAITING",
    ]
    with pytest.raises(AssertionError, match="no handler module nope is loaded"):
        w.expect_state("nope", "alice@example.org", "WAITING")


def test_open_relay_battery_against_the_app() -> None:
    report = world().check_open_relay()
    assert len(report.results) == 16
    assert report.open == []
    assert str(report).splitlines()[-1] == "not an open relay"


def test_open_relay_battery_finds_a_hole() -> None:
    class Leaky(App):
        def accepts(self, address: str) -> bool:
            return "relay-probe" in address or super().accepts(address)

    report = World(Leaky([relaying], hostname="app.example.com")).check_open_relay()
    assert len(report.open) >= 10
    assert "OPEN RELAY" in str(report)


def same_as_its_bytes(request: MailRequest) -> None:
    parsed = MailRequest(request.peer, request.sender, request.recipient, request.original)
    assert request.keys() == parsed.keys()
    for name in {*request.keys(), "In-Reply-To", "X-Absent"}:
        assert request.get_all(name) == parsed.get_all(name)
        assert (name.upper() in request) == (name.upper() in parsed)
    assert request.message_id == parsed.message_id
    assert request.from_addresses == parsed.from_addresses
    assert request.body() == parsed.body()


def test_mail_the_world_hands_over_answers_as_its_bytes_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The world hands a plain message over with the header fields it wrote instead of
    # parsing them again: the app and the people must see what the bytes say.
    w = world()
    seen: list[MailRequest] = []
    deliver = w.app.deliver

    def recording(message: MailRequest) -> Delivery:
        seen.append(message)
        return deliver(message)

    splits: list[bytes] = []
    split = mail._plain_header_fields

    def counting(data: bytes) -> list[tuple[str, str]] | None:
        splits.append(data)
        return split(data)

    w.app.deliver = recording  # type: ignore[method-assign]
    monkeypatch.setattr(mail, "_plain_header_fields", counting)
    alice, bob = w.mailbox("alice@example.org"), w.mailbox("bob@example.net")
    alice.send(
        "auto@app.example.com",
        subject="  spaced subject ",
        body="hi",
        headers={"X-Tag": "\tindented", "Reply-To": "Alice Liddell <alice@example.org>"},
    )
    bob.send(
        "auto@app.example.com",
        subject="me too",
        cc=["forward-alice-at-example.org@app.example.com"],
    )
    # An envelope sender that is not ASCII: the Received line is written escaped, so
    # the world leaves that message to the parser.
    w.post(
        "j\u00fcrgen@ex\u00e4mple.org",
        ["auto@app.example.com"],
        MailResponse(
            to="auto@app.example.com",
            from_="j@example.org",
            subject="from afar",
            headers={"Message-ID": "<afar@example.org>"},
        ),
    )
    received = [mail.request for box in w.mailboxes for mail in box.messages]
    assert len(seen) == 4 and len(received) == 4
    assert splits == [seen[3].original]
    monkeypatch.undo()
    for request in [*seen, *received]:
        same_as_its_bytes(request)


@given(
    lines=st.lists(
        st.sampled_from(["Received: x", "Received:y", "received: z", " Received: folded", "To: a"]),
        max_size=6,
    ),
    separator=st.sampled_from(["\r\n", "\n"]),
    body=st.sampled_from(["", "Received: in the body", "\r\nReceived: after a blank line"]),
)
def test_hops_are_counted_in_the_header_section_only(
    lines: list[str], separator: str, body: str
) -> None:
    from mailsim.world.world import _received_count

    data = (separator.join(lines) + "\r\n\r\n" + body).encode()
    head = data.split(b"\r\n\r\n", 1)[0]  # the count as it was first written
    assert _received_count(data) == head.count(b"\r\nReceived:") + head.startswith(b"Received:")
    no_end = separator.join(lines).encode()
    assert _received_count(no_end) == no_end.count(b"\r\nReceived:") + no_end.startswith(
        b"Received:"
    )


def test_shared_acceptances_are_what_new_ones_would_be() -> None:
    from datetime import UTC, datetime

    from mailsim_runtime.transport import RecipientResult

    from mailsim.world.hosts import RemoteHost, Verdict

    now = datetime(2026, 1, 5, tzinfo=UTC)
    host = RemoteHost("example.net")
    accepted = RecipientResult("Bob@example.net", 250, "2.0.0 OK", "mx.example.net")
    assert host.receive("a@example.org", "Bob@example.net", now) == Verdict(accepted)
    host.vacation("bob@example.net", "away")
    assert host.receive("a@example.org", "Bob@example.net", now) == Verdict(
        accepted, vacation="away"
    )
    host.bounce("bob@example.net")
    assert host.receive("a@example.org", "Bob@example.net", now) == Verdict(
        accepted, bounce=("5.1.1", "550 5.1.1 <bob@example.net>: user unknown"), vacation="away"
    )
    other = RemoteHost("example.com")
    assert other.receive("a@example.org", "Bob@example.com", now) == Verdict(
        RecipientResult("Bob@example.com", 250, "2.0.0 OK", "mx.example.com")
    )
    w = world()
    for recipient in ("auto@app.example.com", "auto@APP.Example.com"):
        result = w._hand_over("a@example.org", recipient, b"To: x\r\n\r\nx\r\n", "a@example.org")
        assert result == RecipientResult(recipient, 250, "2.0.0 OK", "mx.app.example.com")


# Events a transcript keeps as tuples until read, against events made at once --------

transcript_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("message"),
            st.sampled_from(["a@example.org", "", "b@example.net"]),
            st.sampled_from(["Subject: hi\r\n", "From: x@example.org\r\nIn-Reply-To: <1@x>\r\n"]),
            st.sampled_from(["delivered", "refused 550 5.1.1 no"]),
            st.sampled_from([None, "other@example.org"]),
        ),
        st.tuples(st.just("transition"), st.sampled_from(["START", "ECHOED"]), st.text(max_size=3)),
        st.tuples(st.just("add")),
        st.tuples(st.just("read")),
    ),
    max_size=12,
)


@given(steps=transcript_steps, minutes=st.integers(0, 90))
def test_events_kept_compact_are_the_events_made_at_once(
    steps: list[tuple[object, ...]], minutes: int
) -> None:
    import gc
    from datetime import UTC, datetime

    from mailsim.world.transcript import MessageEvent, Transcript, TransitionEvent

    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    compact, eager = Transcript(start), Transcript(start)
    held: list[object] | None = None
    for number, step in enumerate(steps):
        time = start + timedelta(minutes=minutes * number)
        if step[0] == "message":
            _, envelope_sender, head, outcome, recipient = step
            message = MailRequest(
                "p", str(envelope_sender), "r@example.com", f"{head}\r\nx".encode()
            )
            compact.record_message(
                message,
                time=time,
                source="s",
                destination="d",
                outcome=str(outcome),
                recipient=None if recipient is None else str(recipient),
            )
            eager.add(  # the event as MessageEvent.of made it, field by field
                MessageEvent(
                    time,
                    message.sender,
                    message.recipient if recipient is None else str(recipient),
                    message["From"] or "",
                    message["Subject"] or "",
                    message.message_id or "",
                    message["In-Reply-To"] or "",
                    "s",
                    "d",
                    str(outcome),
                )
            )
        elif step[0] == "transition":
            _, state, error = step
            fields = (time, "mod", "key", "START", "START", str(state), "<1@x>", str(error))
            compact.record_transition(*fields)
            eager.add(TransitionEvent(*fields))
        elif step[0] == "add":
            event = TransitionEvent(time, "m", "k", "F", "A", "B", "<2@x>")
            compact.add(event)
            eager.add(event)
        else:
            held = compact.events  # type: ignore[assignment]
        if held is not None:  # a list handed out is kept up to date, with events only
            assert held == eager.events
            assert held is compact.events
        assert len(compact) == len(eager)
    if held is None and steps:  # nothing read yet: no event is an object to collect
        gc.collect()
        assert not any(gc.is_tracked(item) for item in compact._events if isinstance(item, tuple))
    assert compact.events == eager.events
    assert all(isinstance(event, MessageEvent | TransitionEvent) for event in compact)
    assert (compact.messages, compact.transitions) == (eager.messages, eager.transitions)
    assert (compact.log(), compact.mermaid()) == (eager.log(), eager.mermaid())
    assert compact.states_visited() == eager.states_visited()
