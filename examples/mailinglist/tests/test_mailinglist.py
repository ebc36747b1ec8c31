"""The Lamson mailing-list conversation, as a mailsim test."""

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
