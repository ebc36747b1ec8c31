"""Posts from non-members: held for the owner (by default) or politely refused."""

import re

APPROVE = re.compile(r"python-moderate-approve-[a-z0-9]+@lists\.example\.com")
REJECT = re.compile(r"python-moderate-reject-[a-z0-9]+@lists\.example\.com")


def _held_for(owner, poster):
    """The owner's request to decide on *poster*'s post: (approve, reject) addresses."""
    request = owner.expect(subject=f"Post to python from {poster} needs approval")
    assert request["Auto-Submitted"] == "auto-generated"
    approve, reject = APPROVE.search(request.body), REJECT.search(request.body)
    assert approve and reject, request.body
    return request, approve.group(0), reject.group(0)


def test_a_non_members_post_waits_for_the_owner(mail_world, mailbox, join, owner):
    alice, carol = mailbox("alice@example.org"), mailbox("carol@example.org")
    join(alice)
    carol.send("python@lists.example.com", subject="A question", body="May I ask here?")
    waiting = carol.expect(subject="Your post to python awaits approval")
    assert '"A question"' in waiting.body
    request, _, _ = _held_for(owner, "carol@example.org")
    assert "Subject: A question" in request.body
    assert "May I ask here?" in request.body  # the owner sees what was written
    alice.expect_no_mail()
    mail_world.expect_state("app.handlers.mailinglist", "python:carol@example.org", "START")


def test_approving_sends_the_post_to_the_members(mail_world, mailbox, join, owner):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    join(alice, bob)
    sent = carol.send("python@lists.example.com", subject="A question", body="May I ask?")
    carol.expect(subject="Your post to python awaits approval")
    _, approve, _ = _held_for(owner, "carol@example.org")
    owner.send(approve, subject="ok")
    for member in (alice, bob):
        post = member.expect(subject="[python] A question", body="May I ask?")
        assert post.message_id == sent  # the thread starts at carol's own message
        assert post.from_ == "carol@example.org"
    carol.expect_no_mail()
    owner.expect_no_mail()


def test_rejecting_tells_the_poster_and_posts_nothing(mail_world, mailbox, join, owner):
    alice, carol = mailbox("alice@example.org"), mailbox("carol@example.org")
    join(alice)
    carol.send("python@lists.example.com", subject="Buy my book", body="It is very good.")
    carol.expect(subject="Your post to python awaits approval")
    _, _, reject = _held_for(owner, "carol@example.org")
    owner.send(reject)
    turned_down = carol.expect(subject="Your post to python was not accepted")
    assert '"Buy my book"' in turned_down.body
    alice.expect_no_mail()


def test_only_the_first_decision_counts(mail_world, mailbox, join, owner):
    alice, carol = mailbox("alice@example.org"), mailbox("carol@example.org")
    join(alice)
    carol.send("python@lists.example.com", subject="Hi all")
    carol.expect(subject="Your post to python awaits approval")
    _, approve, reject = _held_for(owner, "carol@example.org")
    owner.send(approve)
    alice.expect(subject="[python] Hi all")
    owner.send(reject)
    owner.expect(subject="Nothing waits for approval at that address")
    carol.expect_no_mail()  # approved, and not told otherwise afterwards


def test_only_the_owner_may_decide(mail_world, mailbox, join, owner, queued):
    alice, carol = mailbox("alice@example.org"), mailbox("carol@example.org")
    join(alice)
    carol.send("python@lists.example.com", subject="Let me in")
    carol.expect(subject="Your post to python awaits approval")
    _, approve, _ = _held_for(owner, "carol@example.org")
    carol.send(approve)  # she saw the address somewhere
    alice.expect_no_mail()
    carol.expect_no_mail()
    reasons = [m["X-Mailsim-Reason"] for m in queued("undeliverable")]
    assert reasons == ["a moderation decision for python from someone not its owner"]
    owner.send(approve)  # the post was still waiting
    alice.expect(subject="[python] Let me in")


def test_a_list_set_up_to_refuse_non_members_answers_them(mail_world, mailbox, join, owner):
    alice, carol = mailbox("alice@example.org"), mailbox("carol@example.org")
    join(alice, list_name="announce")  # [settings.lists.announce] in mailsim.toml
    carol.send("announce@lists.example.com", subject="Hello", body="Let me in")
    refusal = carol.expect(subject="Only members can post to announce")
    assert "announce-subscribe@lists.example.com" in refusal.body
    assert refusal["Auto-Submitted"] == "auto-replied"
    alice.expect_no_mail()
    owner.expect_no_mail()


def test_the_owner_can_switch_a_list_to_refusing(mail_world, mailbox, join, owner, model):
    alice, carol = mailbox("alice@example.org"), mailbox("carol@example.org")
    join(alice)
    with mail_world.app.bound():
        model.set_non_members("python", "refuse")
    carol.send("python@lists.example.com", subject="Hello", body="Let me in")
    carol.expect(subject="Only members can post to python")
    alice.expect_no_mail()
    owner.expect_no_mail()
    with mail_world.app.bound():
        assert model.held("python") == []


def test_bulk_mail_from_a_non_member_is_held_without_an_answer(mail_world, mailbox, join, owner):
    alice, news = mailbox("alice@example.org"), mailbox("news@example.net")
    join(alice)
    news.send(
        "python@lists.example.com",
        subject="Our newsletter",
        body="This month in the shop.",
        headers={"Precedence": "bulk"},
    )
    news.expect_no_mail()  # RFC 3834: no automatic answer to bulk mail
    _held_for(owner, "news@example.net")
    alice.expect_no_mail()
