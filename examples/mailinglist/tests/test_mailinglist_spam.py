"""Spam: every post is scored by the app's SpamBayes filter; spam waits in the spam queue.

The filter starts out trained on the small corpus in data/ (app.training, run by
[app] setup), so the world filters from its first message.
"""

import importlib
import json

PILLS = (
    "CHEAP VIAGRA 80% OFF",
    "Cheap Viagra and Cialis, no prescription needed, discreet shipping. "
    "ORDER NOW: http://cheap-pills.example/order",
)
FORTUNE = (
    "Make money fast from home",
    "MAKE MONEY FAST working from home! Guaranteed income, click here: "
    "http://easy-money.example/start Act now!!!",
)


def test_the_filter_is_trained_once_from_the_corpus(mail_world):
    training = importlib.import_module("app.training")
    ham = len(list((training.CORPUS / "ham").glob("*.eml")))
    spam = len(list((training.CORPUS / "spam").glob("*.eml")))
    assert mail_world.app.spam.counts == (ham, spam)
    training.train_when_empty(mail_world.app)  # a filter that knows something is kept
    assert mail_world.app.spam.counts == (ham, spam)


def test_spam_from_a_stranger_bothers_nobody(mail_world, mailbox, join, owner, queued):
    alice, spammer = mailbox("alice@example.org"), mailbox("deals@cheap-pills.example")
    join(alice)
    subject, body = PILLS
    spammer.send("python@lists.example.com", subject=subject, body=body)
    spammer.expect_no_mail()  # no "awaits approval": that would be backscatter
    owner.expect_no_mail()  # nothing to moderate
    alice.expect_no_mail()
    [kept] = queued("spam")
    assert kept["Subject"] == subject
    assert kept["X-Mailsim-Reason"].startswith("spam: scored")


def test_spam_from_a_member_is_not_posted(mail_world, mailbox, join, queued, model):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    subject, body = FORTUNE
    bob.send("python@lists.example.com", subject=subject, body=body)
    alice.expect_no_mail()
    assert [m["Subject"] for m in queued("spam")] == [subject]
    with mail_world.app.bound():
        assert model.posts("python") == []  # nor archived


def test_an_ordinary_post_is_not_spam(mail_world, mailbox, join, queued):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    bob.send(
        "python@lists.example.com",
        subject="Free software licences",
        body="Is the MIT licence fine for a library we sell with our hardware?",
    )
    alice.expect(subject="[python] Free software licences")
    assert queued("spam") == []


def test_spam_for_the_owner_is_not_passed_on(mail_world, mailbox, owner, queued):
    spammer = mailbox("deals@cheap-pills.example")
    subject, body = PILLS
    spammer.send("python-owner@lists.example.com", subject=subject, body=body)
    owner.expect_no_mail()
    assert [m["Subject"] for m in queued("spam")] == [subject]


def test_the_stored_tokens_are_what_the_corpus_gives_today(mail_world):
    # data/tokens.json spares every new world tokenizing the corpus; after a change
    # to data/ or to the tokenizer, `python -m app.training` writes it again.
    training = importlib.import_module("app.training")
    stored = json.loads(training.TOKENS.read_text(encoding="utf-8"))
    fresh = training.tokenize_corpus(mail_world.app.spam)
    assert stored["corpus"] == fresh["corpus"], "data/ changed: run python -m app.training"
    for kind in training.KINDS:
        assert stored[kind] == fresh[kind], "the tokenizer changed: run python -m app.training"
