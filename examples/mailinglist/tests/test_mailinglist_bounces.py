"""Bounces come back to python-bounce+bob=example.net@…: hard ones disable, soft ones warn.

Bob lives at example.net, whose mail host the tests make misbehave; everyone else
is at example.org. The relay retries a deferred message for five days (its
lifetime, [relay] in mailsim.toml) and then bounces it, so moving the clock five
days and the longest retry interval (four hours) on makes sure that has happened;
once a host is back, the next retry comes within four hours.
"""

import pytest

MODULE = "app.handlers.mailinglist"
RELAY_GIVES_UP = {"days": 5, "hours": 4}
NEXT_RETRY = {"hours": 4}


@pytest.fixture
def alice(mailbox):
    return mailbox("alice@example.org")


@pytest.fixture
def bob(mailbox):
    return mailbox("bob@example.net")


def _posts_handed_to(world, address):
    """Subjects of list posts the app handed over for *address*, delivered or not."""
    return [
        m.subject
        for m in world.transcript.messages
        if m.recipient == address and m.source == "app" and m.subject.startswith("[python]")
    ]


def _member(world, model, address):
    with world.app.bound():
        return model.find_member("python", address)


def test_a_hard_bounce_disables_the_member_and_tells_the_owner(
    mail_world, model, alice, bob, owner, join
):
    join(alice, bob)
    mail_world.host("example.net").bounce("bob@example.net")  # accepts, then reports
    alice.send("python@lists.example.com", subject="First")
    news = owner.expect(subject="bob@example.net no longer gets mail from python")
    assert "550 5.1.1 <bob@example.net>: user unknown" in news.body
    assert news["Auto-Submitted"] == "auto-generated"
    assert not _member(mail_world, model, "bob@example.net").enabled
    alice.send("python@lists.example.com", subject="Second")
    assert _posts_handed_to(mail_world, "bob@example.net") == ["[python] First"]
    bob.expect_no_mail()
    mail_world.expect_state(MODULE, "python:bob@example.net", "POSTING")  # still a member


def test_a_refusal_of_an_unknown_user_is_a_hard_bounce_at_once(
    mail_world, model, alice, bob, owner, join
):
    join(alice, bob)
    mail_world.host("example.net").refuse(550, "5.1.1 <bob@example.net>: no such user")
    alice.send("python@lists.example.com", subject="Hello")
    owner.expect(subject="bob@example.net no longer gets mail from python", body="no such user")
    assert not _member(mail_world, model, "bob@example.net").enabled


@pytest.mark.parametrize("failure", ["defer", "down"])
def test_mail_that_cannot_be_delivered_for_days_is_a_soft_bounce(
    mail_world, model, alice, bob, owner, join, failure
):
    join(alice, bob)
    host = mail_world.host("example.net")
    getattr(host, failure)()  # defer(): 4xx for ever; down(): no connection
    alice.send("python@lists.example.com", subject="Hello")
    mail_world.clock.advance(**RELAY_GIVES_UP)
    host.up()
    mail_world.clock.advance(**NEXT_RETRY)  # the warning waited in the relay
    warning = bob.expect(subject="Mail from python to you is bouncing")
    assert "This is bounce 1 of 3" in warning.body
    assert warning.sender == "python-bounce+bob=example.net@lists.example.com"
    assert warning["Auto-Submitted"] == "auto-generated"
    member = _member(mail_world, model, "bob@example.net")
    assert (member.enabled, member.soft_bounces) == (True, 1)
    owner.expect_no_mail()
    alice.send("python@lists.example.com", subject="Better now?")
    bob.expect(subject="[python] Better now?")


def test_soft_bounces_on_three_days_in_a_row_disable(mail_world, model, alice, bob, owner, join):
    join(alice, bob)
    mail_world.host("example.net").defer()
    alice.send("python@lists.example.com", subject="Hello")
    for count in (1, 2):
        # The post (then each warning) bounces after five days; the next warning waits.
        mail_world.clock.advance(**RELAY_GIVES_UP)
        member = _member(mail_world, model, "bob@example.net")
        assert (member.enabled, member.soft_bounces) == (True, count)
        owner.expect_no_mail()
    mail_world.clock.advance(**RELAY_GIVES_UP)
    news = owner.expect(subject="bob@example.net no longer gets mail from python")
    assert "3 soft bounces in a row" in news.body
    assert not _member(mail_world, model, "bob@example.net").enabled
    bob.expect_no_mail()


def test_one_bad_day_counts_once(mail_world, model, alice, bob, join):
    join(alice, bob)
    host = mail_world.host("example.net")
    host.defer()
    for subject in ("One", "Two", "Three"):
        alice.send("python@lists.example.com", subject=subject)
    mail_world.clock.advance(**RELAY_GIVES_UP)  # three bounces the same day
    host.up()
    mail_world.clock.advance(**NEXT_RETRY)
    bob.expect(subject="Mail from python to you is bouncing", body="bounce 1 of 3")
    bob.expect_no_mail()  # one warning, not three
    assert _member(mail_world, model, "bob@example.net").soft_bounces == 1


def test_a_quiet_spell_forgets_earlier_soft_bounces(mail_world, model, alice, bob, join):
    join(alice, bob)
    host = mail_world.host("example.net")
    for subject in ("Before", "After"):
        host.defer()
        alice.send("python@lists.example.com", subject=subject)
        mail_world.clock.advance(**RELAY_GIVES_UP)
        host.up()
        mail_world.clock.advance(**NEXT_RETRY)
        bob.expect(subject="Mail from python to you is bouncing", body="bounce 1 of 3")
        mail_world.clock.advance(days=20)  # more than soft_bounce_days (14)
    assert _member(mail_world, model, "bob@example.net").soft_bounces == 1


def test_a_refusal_for_the_content_is_soft(mail_world, model, alice, bob, owner, join):
    join(alice, bob)
    mail_world.host("example.net").refuse(550, "5.7.1 message looks like spam")
    alice.send("python@lists.example.com", subject="Cheap tickets to PyCon")
    member = _member(mail_world, model, "bob@example.net")
    assert (member.enabled, member.soft_bounces) == (True, 1)
    owner.expect_no_mail()
    bob.expect_no_mail()  # the warning was refused too, and did not count again


def test_an_away_message_to_the_bounce_address_is_no_bounce(
    mail_world, model, alice, bob, owner, join, queued
):
    join(alice, bob)
    # A responder that marks its answer automatic, but answers list mail all the same.
    bob.send(
        "python-bounce+bob=example.net@lists.example.com",
        subject="Out of office",
        body="I am away until Monday.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    member = _member(mail_world, model, "bob@example.net")
    assert (member.enabled, member.soft_bounces) == (True, 0)
    assert queued("undeliverable") == []  # understood, and only logged
    alice.expect_no_mail()
    owner.expect_no_mail()
    bob.expect_no_mail()


def test_a_careless_responder_cannot_start_a_loop(
    mail_world, model, alice, bob, owner, join, queued
):
    join(alice, bob)
    # It answers the envelope sender, even of list mail, and marks nothing.
    mail_world.host("example.net").vacation("bob@example.net", follows_rfc3834=False)
    alice.send("python@lists.example.com", subject="Hello")
    bob.expect(subject="[python] Hello")
    [answer] = queued("undeliverable")
    assert answer["Subject"] == "Auto: [python] Hello"
    assert answer["X-Mailsim-Reason"] == "mail to python's bounce address that is not a bounce"
    assert _member(mail_world, model, "bob@example.net").soft_bounces == 0
    alice.expect_no_mail()
    owner.expect_no_mail()
    bob.expect_no_mail()


def test_a_disabled_member_subscribes_again_to_get_posts_again(
    mail_world, model, alice, bob, owner, join
):
    join(alice, bob)
    host = mail_world.host("example.net")
    host.refuse(550, "5.1.1 <bob@example.net>: user unknown")
    alice.send("python@lists.example.com", subject="Lost")
    owner.expect(subject="bob@example.net no longer gets mail from python")
    host.accept()  # bob's mailbox is back
    bob.send("python-subscribe@lists.example.com", subject="subscribe")
    bob.reply(bob.expect(subject="Please confirm: subscribe to python"))
    mail_world.expect_state(MODULE, "python:bob@example.net", "POSTING")
    bob.expect(subject="Welcome to python")
    assert _member(mail_world, model, "bob@example.net").enabled
    alice.send("python@lists.example.com", subject="Found")
    bob.expect(subject="[python] Found")


def test_a_disabled_member_asked_to_confirm_may_leave_instead(
    mail_world, model, alice, bob, owner, join
):
    join(alice, bob)
    host = mail_world.host("example.net")
    host.refuse(550, "5.1.1 <bob@example.net>: user unknown")
    alice.send("python@lists.example.com", subject="Lost")
    owner.expect(subject="bob@example.net no longer gets mail from python")
    host.accept()
    bob.send("python-subscribe@lists.example.com")
    bob.expect(subject="Please confirm: subscribe to python")
    mail_world.expect_state(MODULE, "python:bob@example.net", "CONFIRMING_SUBSCRIBE")
    bob.send("python-unsubscribe@lists.example.com")
    bob.reply(bob.expect(subject="Please confirm: unsubscribe from python"))
    bob.expect(subject="You have left python")
    assert _member(mail_world, model, "bob@example.net") is None


def test_mail_to_a_bounce_address_that_is_no_bounce_is_set_aside(
    mail_world, model, alice, bob, join, queued
):
    join(alice, bob)
    alice.send("python-bounce+bob=example.net@lists.example.com", subject="Hi Bob")
    bob.expect_no_mail()
    assert _member(mail_world, model, "bob@example.net").soft_bounces == 0
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["mail to python's bounce address that is not a bounce"]


def test_a_bounce_of_mail_to_the_owner_is_kept_for_a_person(
    mail_world, mailbox, alice, join, queued
):
    join(alice)
    mail_world.host("example.com").bounce("listmaster@example.com")
    carol = mailbox("carol@example.org")
    carol.send("python@lists.example.com", subject="Outside")  # held: the owner is told
    carol.expect(subject="Your post to python awaits approval")
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["a bounce of mail python sent to its owner"]
