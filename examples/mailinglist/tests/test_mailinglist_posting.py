"""Posts: who gets them, with which headers, in which thread, from which envelope."""

from mailsim_runtime import MailRequest

LIST_HEADERS = {
    "List-Id": "<python.lists.example.com>",
    "List-Help": "<mailto:python-help@lists.example.com>",
    "List-Post": "<mailto:python@lists.example.com>",
    "List-Subscribe": "<mailto:python-subscribe@lists.example.com>",
    "List-Unsubscribe": "<mailto:python-unsubscribe@lists.example.com>",
    "List-Archive": "<https://lists.example.com/archive/python/>, "
    "<mailto:python-archive@lists.example.com>",
    "List-Owner": "<mailto:python-owner@lists.example.com>",
    "Precedence": "list",
}


def test_a_post_reaches_every_other_member_with_the_list_headers(mail_world, mailbox, join):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    dave = mailbox("dave@example.org")
    join(alice, bob, carol)
    alice.send("python@lists.example.com", subject="Hello", body="Hi everyone")
    for member in (bob, carol):
        post = member.expect(subject="[python] Hello", sender="alice@example.org")
        for header, value in LIST_HEADERS.items():
            assert post[header] == value, header
        assert post.body.strip() == "Hi everyone"
    alice.expect_no_mail()  # the poster gets no copy
    dave.expect_no_mail()


def test_each_member_gets_an_envelope_naming_them_for_bounces(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.net")
    join(alice, bob)
    alice.send("python@lists.example.com", subject="VERP")
    post = bob.expect(subject="[python] VERP")
    assert post.sender == "python-bounce+bob=example.net@lists.example.com"
    assert post.from_ == "alice@example.org"  # the author is still the author


def test_threads_are_kept(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    question_id = alice.send("python@lists.example.com", subject="Question", body="Why?")
    question = bob.expect(subject="[python] Question")
    assert question.message_id == question_id
    answer_id = bob.reply(question, "Because.", to="python@lists.example.com")
    answer = alice.expect(subject="Re: [python] Question", body="Because.")
    assert answer.message_id == answer_id
    assert answer["In-Reply-To"] == question_id
    assert answer["References"] == question_id
    assert answer["Subject"].count("[python]") == 1  # the tag is not added twice


def test_a_post_without_message_id_gets_one_id_for_every_member(mail_world, mailbox, join, model):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    join(alice, bob, carol)
    # Straight to the app: a person's mail program in the world always adds an id.
    raw = b"From: alice@example.org\r\nTo: python@lists.example.com\r\nSubject: No id\r\n\r\nHi\r\n"
    post = MailRequest("127.0.0.1", "alice@example.org", "python@lists.example.com", raw)
    mail_world.app.deliver(post)
    mail_world.run_until_quiet()
    ids = {person.expect(subject="[python] No id").message_id for person in (bob, carol)}
    with mail_world.app.bound():
        [archived] = model.posts("python")
    assert ids == {archived.message_id}
    assert archived.message_id.endswith("@lists.example.com>")


def test_a_disabled_member_gets_no_posts_but_may_still_post(mail_world, mailbox, join, model):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    with mail_world.app.bound():
        model.disable_member("python", "bob@example.org", "a test")
    alice.send("python@lists.example.com", subject="Anyone?")
    bob.expect_no_mail()
    bob.send("python@lists.example.com", subject="I am here", body="but I hear nothing")
    alice.expect(subject="[python] I am here")


def test_automatic_mail_to_the_list_is_set_aside_not_posted(mail_world, mailbox, join, queued):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    alice.send(
        "python@lists.example.com",
        subject="Out of office",
        body="I am away",
        headers={"Auto-Submitted": "auto-replied"},
    )
    bob.expect_no_mail()
    alice.expect_no_mail()  # and no answer either
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["automatic mail (Auto-Submitted: auto-replied) sent to the list address"]


def test_a_bounce_sent_to_the_list_address_is_set_aside(mail_world, mailbox, join, owner, queued):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.net")
    join(alice)
    bob.send("python-subscribe@lists.example.com", subject="subscribe")
    confirm = bob.expect(subject="Please confirm: subscribe to python")
    mail_world.host("example.net").bounce("bob@example.net")
    bob.reply(confirm)  # the welcome, from python@, bounces back to python@
    alice.expect_no_mail()
    owner.expect_no_mail()
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["a bounce (null envelope sender) sent to the list address"]


def test_a_careless_servers_bounce_is_set_aside_but_a_question_about_one_is_not(
    mail_world, mailbox, join, queued
):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    daemon = mailbox("mailer-daemon@example.org")  # bounces with a sender: it happens
    join(alice, bob)
    daemon.send("python@lists.example.com", subject="Undelivered Mail Returned to Sender")
    bob.send("python@lists.example.com", subject="Mail delivery failed on my server, help")
    alice.expect(subject="[python] Mail delivery failed on my server, help")
    alice.expect_no_mail()
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["a bounce sent to the list address"]


def test_a_post_that_comes_back_to_its_list_is_a_loop(mail_world, mailbox, join, queued):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    alice.send("python@lists.example.com", subject="Loop")
    post = bob.expect(subject="[python] Loop")
    # Bob's mail program forwards list mail back to the list, headers and all.
    bob.send(
        "python@lists.example.com",
        subject=post.subject,
        headers={"List-Id": post["List-Id"]},
    )
    alice.expect_no_mail()
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["the list's own post came back to it (a mail loop)"]


def test_the_same_post_twice_goes_out_once(mail_world, mailbox, join, queued):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    headers = {"Message-ID": "<same.1@example.org>"}
    alice.send("python@lists.example.com", subject="Twice", headers=headers)
    alice.send("python@lists.example.com", subject="Twice", headers=headers)
    bob.expect(subject="[python] Twice")
    bob.expect_no_mail()
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["<same.1@example.org> was posted to python before"]


def test_a_post_to_a_list_nobody_started_is_answered(mail_world, mailbox, owner):
    alice = mailbox("alice@example.org")
    alice.send("cobol@lists.example.com", subject="Hello?", body="Anyone here?")
    answer = alice.expect(subject="There is no list called cobol")
    assert "cobol-subscribe@lists.example.com" in answer.body
    assert answer["Auto-Submitted"] == "auto-replied"
    owner.expect_no_mail()
