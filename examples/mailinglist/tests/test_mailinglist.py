"""Joining and leaving: every state of app.handlers.mailinglist, and every request in it.

States: START (not a member), CONFIRMING_SUBSCRIBE, POSTING (a member),
CONFIRMING_UNSUBSCRIBE. A conversation is one person on one list: "python:alice@…".
"""

MODULE = "app.handlers.mailinglist"


def test_subscribe_confirm_post_unsubscribe(mail_world, mailbox):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    for person in (alice, bob):
        person.send("python-subscribe@lists.example.com", subject="subscribe")
        person.reply(person.expect(subject="Please confirm: subscribe to python"))
        person.expect(subject="Welcome to python")
    alice.send("python@lists.example.com", subject="Hello", body="Hi everyone")
    post = bob.expect(subject="[python] Hello", body="Hi everyone")
    assert post["List-Id"] == "<python.lists.example.com>"
    carol.expect_no_mail()
    bob.send("python-unsubscribe@lists.example.com")
    bob.reply(bob.expect(subject="Please confirm: unsubscribe from python"))
    bob.expect(subject="You have left python")
    assert mail_world.state(MODULE, "python:bob@example.org") == "START"
    assert mail_world.state(MODULE, "python:alice@example.org") == "POSTING"


def test_a_confirmation_expires_after_three_days(mail_world, mailbox):
    alice = mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = alice.expect(subject="Please confirm: subscribe to python")
    mail_world.clock.advance(days=3)
    alice.reply(confirm)
    alice.expect_no_mail()  # no welcome: the secret has expired
    mail_world.expect_state(MODULE, "python:alice@example.org", "CONFIRMING_SUBSCRIBE")


def test_a_confirmation_in_time_is_accepted(mail_world, mailbox):
    alice = mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = alice.expect(subject="Please confirm: subscribe to python")
    mail_world.clock.advance(days=2, hours=23)
    alice.reply(confirm)
    alice.expect(subject="Welcome to python")


def test_asking_again_after_the_confirmation_expired_sends_a_new_one(mail_world, mailbox):
    alice = mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    old = alice.expect(subject="Please confirm: subscribe to python")
    mail_world.clock.advance(days=4)
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    new = alice.expect(subject="Please confirm: subscribe to python")
    assert new.from_ != old.from_  # a new secret
    alice.reply(old)
    alice.expect_no_mail()
    alice.reply(new)
    alice.expect(subject="Welcome to python")
    mail_world.expect_state(MODULE, "python:alice@example.org", "POSTING")


def test_replies_thread_under_the_request_and_are_marked_automatic(mail_world, mailbox):
    alice = mailbox("alice@example.org")
    request = alice.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = alice.expect(subject="Please confirm: subscribe to python")
    assert confirm["In-Reply-To"] == request
    answer = alice.reply(confirm)
    welcome = alice.expect(subject="Welcome to python", sender="python@lists.example.com")
    assert welcome["In-Reply-To"] == answer
    assert welcome["Auto-Submitted"] == "auto-replied"  # RFC 3834: robots leave it alone
    assert "python-unsubscribe@lists.example.com" in welcome.body


def test_the_first_member_creates_the_list_with_the_owner_from_the_settings(
    mail_world, mailbox, model
):
    alice = mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = alice.expect(subject="Please confirm: subscribe to python")
    with mail_world.app.bound():
        assert model.find_list("python") is None  # asking is not joining
    alice.reply(confirm)
    alice.expect(subject="Welcome to python")
    with mail_world.app.bound():
        created = model.find_list("python")
        assert created is not None
        assert (created.owner, created.non_members) == ("listmaster@example.com", "moderate")
        assert model.members("python") == ["alice@example.org"]
        assert model.list_names() == ["python"]


def test_one_person_on_two_lists_has_two_conversations(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    join(alice, list_name="rust")
    mail_world.expect_state(MODULE, "python:alice@example.org", "POSTING")
    mail_world.expect_state(MODULE, "rust:alice@example.org", "POSTING")
    mail_world.expect_state(MODULE, "rust:bob@example.org", "START")
    bob.send("rust-subscribe@lists.example.com", subject="subscribe")
    bob.expect(subject="Please confirm: subscribe to rust")
    alice.send("python@lists.example.com", subject="Only python", body="Hi")
    bob.expect(subject="[python] Only python")
    bob.expect_no_mail()


# START ----------------------------------------------------------------------------


def test_leaving_a_list_you_are_not_on_says_so(mail_world, mailbox):
    carol = mailbox("carol@example.org")
    carol.send("python-unsubscribe@lists.example.com", subject="unsubscribe")
    notice = carol.expect(subject="You are not on python")
    assert "carol@example.org is not on it" in notice.body
    mail_world.expect_state(MODULE, "python:carol@example.org", "START")


# CONFIRMING_SUBSCRIBE -------------------------------------------------------------


def test_a_wrong_secret_does_nothing(mail_world, mailbox):
    alice = mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    alice.expect(subject="Please confirm: subscribe to python")
    alice.send("python-confirm-0000@lists.example.com", subject="yes")
    alice.expect_no_mail()
    mail_world.expect_state(MODULE, "python:alice@example.org", "CONFIRMING_SUBSCRIBE")


def test_someone_else_cannot_confirm_for_you(mail_world, mailbox):
    alice, mallory = mailbox("alice@example.org"), mailbox("mallory@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = alice.expect(subject="Please confirm: subscribe to python")
    mallory.send(confirm.from_, subject="yes")  # the secret address, from elsewhere
    mallory.expect_no_mail()
    mail_world.expect_state(MODULE, "python:alice@example.org", "CONFIRMING_SUBSCRIBE")
    mail_world.expect_state(MODULE, "python:mallory@example.org", "START")


def test_changing_your_mind_before_confirming(mail_world, mailbox):
    alice = mailbox("alice@example.org")
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = alice.expect(subject="Please confirm: subscribe to python")
    alice.send("python-unsubscribe@lists.example.com", subject="no, sorry")
    alice.expect(subject="You are not on python")
    mail_world.expect_state(MODULE, "python:alice@example.org", "START")
    assert mail_world.app.confirmations.storage.find("python", "alice@example.org") is None
    alice.reply(confirm)
    alice.expect_no_mail()


def test_a_post_while_confirming_is_a_non_members_post(mail_world, mailbox, join, owner):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice)
    bob.send("python-subscribe@lists.example.com", subject="subscribe")
    bob.expect(subject="Please confirm: subscribe to python")
    bob.send("python@lists.example.com", subject="Eager", body="Hello already")
    bob.expect(subject="Your post to python awaits approval")
    owner.expect(subject="Post to python from bob@example.org needs approval")
    alice.expect_no_mail()
    mail_world.expect_state(MODULE, "python:bob@example.org", "CONFIRMING_SUBSCRIBE")


# POSTING --------------------------------------------------------------------------


def test_subscribing_twice_says_you_are_on_the_list(mail_world, mailbox, join):
    alice = mailbox("alice@example.org")
    join(alice)
    alice.send("python-subscribe@lists.example.com", subject="subscribe")
    notice = alice.expect(subject="You are already on python")
    assert "alice@example.org is on it" in notice.body
    mail_world.expect_state(MODULE, "python:alice@example.org", "POSTING")


def test_a_member_who_left_gets_no_more_posts(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    bob.send("python-unsubscribe@lists.example.com")
    bob.reply(bob.expect(subject="Please confirm: unsubscribe from python"))
    bob.expect(subject="You have left python", body="no longer on the python mailing list")
    alice.send("python@lists.example.com", subject="Still there?")
    bob.expect_no_mail()


# CONFIRMING_UNSUBSCRIBE -----------------------------------------------------------


def test_a_wrong_secret_when_leaving_keeps_you_on_the_list(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    bob.send("python-unsubscribe@lists.example.com")
    bob.expect(subject="Please confirm: unsubscribe from python")
    mail_world.expect_state(MODULE, "python:bob@example.org", "CONFIRMING_UNSUBSCRIBE")
    bob.send("python-confirm-0000@lists.example.com")
    bob.expect_no_mail()
    mail_world.expect_state(MODULE, "python:bob@example.org", "POSTING")
    alice.send("python@lists.example.com", subject="Still here")
    bob.expect(subject="[python] Still here")


def test_posting_while_leaving_still_reaches_the_list(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    bob.send("python-unsubscribe@lists.example.com")
    confirm = bob.expect(subject="Please confirm: unsubscribe from python")
    bob.send("python@lists.example.com", subject="Goodbye all", body="Thanks for the help")
    alice.expect(subject="[python] Goodbye all", body="Thanks for the help")
    mail_world.expect_state(MODULE, "python:bob@example.org", "CONFIRMING_UNSUBSCRIBE")
    bob.reply(confirm)
    bob.expect(subject="You have left python")


def test_asking_to_leave_twice_sends_a_new_confirmation(mail_world, mailbox, join):
    bob = mailbox("bob@example.org")
    join(bob)
    bob.send("python-unsubscribe@lists.example.com")
    first = bob.expect(subject="Please confirm: unsubscribe from python")
    bob.send("python-unsubscribe@lists.example.com")
    second = bob.expect(subject="Please confirm: unsubscribe from python")
    assert second.from_ != first.from_  # a new secret, and the old one is void
    bob.reply(first)  # a wrong secret: bob stays on the list
    bob.expect_no_mail()
    mail_world.expect_state(MODULE, "python:bob@example.org", "POSTING")


def test_subscribing_while_leaving_cancels_the_leaving(mail_world, mailbox, join):
    bob = mailbox("bob@example.org")
    join(bob)
    bob.send("python-unsubscribe@lists.example.com")
    confirm = bob.expect(subject="Please confirm: unsubscribe from python")
    bob.send("python-subscribe@lists.example.com", subject="changed my mind")
    bob.expect(subject="You are already on python")
    mail_world.expect_state(MODULE, "python:bob@example.org", "POSTING")
    assert mail_world.app.confirmations.storage.find("python", "bob@example.org") is None
    bob.reply(confirm)
    bob.expect_no_mail()
    mail_world.expect_state(MODULE, "python:bob@example.org", "POSTING")
