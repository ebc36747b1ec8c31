"""The archive: every post kept, browsable as threaded HTML pages and by mail."""

from datetime import UTC, datetime
from html.parser import HTMLParser

EVIL_SUBJECT = '<script>alert("x")</script> & <b>bold</b>'
LIST = "python@lists.example.com"
ESCAPED_SUBJECT = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"


class Outline(HTMLParser):
    """The posts a list page shows, as (depth, subject), in page order; and any
    element a poster smuggled in."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.depth = 0
        self.posts: list[tuple[int, str]] = []
        self.tags: set[str] = set()
        self._title: list[str] | None = None
        self._item_depth = 0
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "ul":
            self.depth += 1
        elif tag == "li" and dict(attrs).get("id", "").startswith("post-"):
            self._item_depth = self.depth
        elif tag == "a" and self._item_depth:
            self._title = []

    def handle_endtag(self, tag):
        if tag == "ul":
            self.depth -= 1
        elif tag == "a" and self._title is not None:
            self.posts.append((self._item_depth - 1, "".join(self._title)))
            self._title, self._item_depth = None, 0

    def handle_data(self, data):
        if self._title is not None:
            self._title.append(data)


def _discussion(alice, bob, carol):
    """Two threads; the first one branches. Everyone is a member and gets every post."""
    people = (alice, bob, carol)

    def post(author, subject, body="", answering=None):
        if answering is None:
            author.send(LIST, subject=subject, body=body)
        else:
            author.reply(answering, body, subject=subject, to=LIST)
        return [p.expect(subject=f"[python] {subject[:20]}") for p in people if p is not author]

    plan, _ = post(alice, "Planning the sprint")  # bob's copy, then carol's
    dates, _ = post(bob, "Dates", "Monday?", answering=plan)  # alice's copy, then carol's
    post(carol, EVIL_SUBJECT, "<img src=x onerror=alert(1)> is not a picture here")
    post(alice, "Dates, again", "Tuesday.", answering=dates)
    post(bob, "Rooms", "Room 4?", answering=plan)


def test_every_post_is_archived_as_the_members_got_it(mail_world, mailbox, join, model):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    question = alice.send("python@lists.example.com", subject="Question", body="Why?")
    bob.expect(subject="[python] Question")
    answer = bob.reply(bob.last, "Because.", to="python@lists.example.com")
    alice.expect(subject="Re: [python] Question")
    with mail_world.app.bound():
        first, second = model.posts("python")
    assert (first.message_id, first.sender) == (question, "alice@example.org")
    assert first.subject == "Question"  # without the list's tag
    assert (second.message_id, second.in_reply_to, second.references) == (
        answer,
        question,
        (question,),
    )
    assert second.subject == "Re: Question"
    assert second.date == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # the world's clock
    assert b"List-Id: <python.lists.example.com>" in first.raw
    assert b"Subject: [python] Question" in first.raw


def test_the_html_archive_is_threaded(mail_world, mailbox, join, tmp_path, archive):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    join(alice, bob, carol)
    _discussion(alice, bob, carol)
    written = archive.write_archive(mail_world.app, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "index.html",
        *(f"python/{n}.html" for n in range(1, 6)),
        "python/index.html",
    ]
    page = Outline((tmp_path / "python" / "index.html").read_text())
    assert page.posts == [
        (0, "Planning the sprint"),
        (1, "Dates"),
        (2, "Dates, again"),
        (1, "Rooms"),
        (0, EVIL_SUBJECT),
    ]
    lists = (tmp_path / "index.html").read_text()
    assert '<a href="python/index.html">python</a>' in lists
    assert "5 posts" in lists


def test_the_html_archive_escapes_what_posters_write(mail_world, mailbox, join, tmp_path, archive):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    join(alice, bob, carol)
    _discussion(alice, bob, carol)
    archive.write_archive(mail_world.app, tmp_path)
    index = (tmp_path / "python" / "index.html").read_text()
    post = (tmp_path / "python" / "3.html").read_text()
    for page in (index, post):
        assert "<script>" not in page
        assert ESCAPED_SUBJECT in page
        assert Outline(page).tags.isdisjoint({"script", "b", "img"})
    assert "&lt;img src=x onerror=alert(1)&gt; is not a picture here" in post
    assert "carol at example.org" in post  # no bare addresses for harvesters


def test_each_post_page_links_its_parent_and_its_replies(
    mail_world, mailbox, join, tmp_path, archive
):
    alice, bob, carol = (mailbox(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    join(alice, bob, carol)
    _discussion(alice, bob, carol)
    archive.write_archive(mail_world.app, tmp_path)
    dates = (tmp_path / "python" / "2.html").read_text()
    assert '<dt>In reply to</dt><dd><a href="1.html">Planning the sprint</a>' in dates
    assert '<a href="4.html">Dates, again</a>' in dates
    assert "<pre>Monday?</pre>" in dates
    first = (tmp_path / "python" / "1.html").read_text()
    assert "In reply to" not in first
    assert first.index('href="2.html"') < first.index('href="5.html"')


def test_threads_survive_missing_and_looping_references(archive, model):

    def post(number, message_id, in_reply_to="", references=()):
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return model.Post(
            number, "python", message_id, in_reply_to, references, "", "", "", when, b""
        )

    posts = [
        post(1, "<a>", in_reply_to="<b>"),  # answers a later post: cannot be its child
        post(2, "<b>", in_reply_to="<a>"),
        post(3, "<c>", in_reply_to="<gone>", references=("<a>", "<gone>")),  # falls back
        post(4, "<d>", in_reply_to="<d>"),  # answers itself
    ]
    roots = archive.threads(posts)
    assert [(t.post.id, [r.post.id for r in t.replies]) for t in roots] == [(1, [2, 3]), (4, [])]


def test_the_archive_by_mail_lists_the_latest_posts(mail_world, mailbox, join):
    alice, bob = mailbox("alice@example.org"), mailbox("bob@example.org")
    join(alice, bob)
    for subject in ("One", "Two", "Three"):
        alice.send("python@lists.example.com", subject=subject)
        bob.expect(subject=f"[python] {subject}")
    mail_world.app.settings["archive_by_mail"] = 2
    carol = mailbox("carol@example.org")  # anyone may ask
    carol.send("python-archive@lists.example.com")
    answer = carol.expect(subject="The latest posts to python")
    assert "One" not in answer.body
    assert answer.body.index("Two") < answer.body.index("Three")
    assert "alice at example.org" in answer.body
    assert "https://lists.example.com/archive/python/" in answer.body


def test_the_archive_by_mail_of_a_quiet_or_missing_list(mail_world, mailbox, join):
    alice = mailbox("alice@example.org")
    join(alice)
    alice.send("python-archive@lists.example.com")
    alice.expect(subject="The latest posts to python", body="Nothing has been posted")
    alice.send("cobol-archive@lists.example.com")
    alice.expect(subject="There is no list called cobol")
