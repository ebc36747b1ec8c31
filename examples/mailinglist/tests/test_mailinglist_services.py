"""The addresses every post names in its headers: help, archive (see the archive
tests) and owner; and the open-relay probes against all of them."""


def test_help_explains_every_address(mail_world, mailbox):
    carol = mailbox("carol@example.org")
    asked = carol.send("python-help@lists.example.com", subject="help")
    answer = carol.expect(subject="How the python list works", sender="python@lists.example.com")
    for address in ("python", "python-subscribe", "python-unsubscribe", "python-archive"):
        assert f"{address}@lists.example.com" in answer.body
    assert answer["In-Reply-To"] == asked
    assert answer["Auto-Submitted"] == "auto-replied"


def test_help_is_not_sent_to_robots(mail_world, mailbox):
    robot = mailbox("robot@example.net")
    robot.send(
        "python-help@lists.example.com",
        subject="Automatic reply",
        headers={"Auto-Submitted": "auto-replied"},
    )
    robot.expect_no_mail()


def test_mail_for_the_owner_address_reaches_the_owner(mail_world, mailbox, join, owner):
    carol = mailbox("carol@example.org")
    sent = carol.send("python-owner@lists.example.com", subject="Who runs this?", body="Hi")
    forwarded = owner.expect(subject="Who runs this?", body="Hi")
    assert forwarded.message_id == sent
    assert forwarded.from_ == "carol@example.org"  # the owner's reply goes straight to carol
    assert forwarded.sender == "python-bounce@lists.example.com"  # bounces come to the list


def test_an_owner_in_the_lists_own_domain_gets_nothing_forwarded(mail_world, mailbox, queued):
    mail_world.app.settings["owner"] = "postmaster@lists.example.com"
    carol = mailbox("carol@example.org")
    carol.send("python-owner@lists.example.com", subject="Hello?")
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["mail for the owner of python, who has no address elsewhere"]


def test_the_list_server_is_not_an_open_relay(mail_world):
    report = mail_world.check_open_relay()
    assert not report.open, report


def test_mail_to_postmaster_is_kept_for_a_person_not_taken_for_a_list(mail_world, mailbox, queued):
    alice = mailbox("alice@example.org")
    alice.send("postmaster@lists.example.com", subject="Your server sends me mail")
    alice.send("abuse-subscribe@lists.example.com", subject="subscribe")  # refused at RCPT
    alice.expect(subject="Undelivered Mail", body="abuse-subscribe@lists.example.com")
    alice.expect_no_mail()
    [kept] = queued("undeliverable")
    assert kept["Subject"] == "Your server sends me mail"
    assert mail_world.app.router.match("python.dev@lists.example.com")  # dots are fine
    assert not mail_world.app.router.match("abuse@lists.example.com")
