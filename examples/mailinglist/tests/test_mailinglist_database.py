"""Outside the world: the app as `mailsim serve` builds it, in a copy of the project.

Nothing here is simulated but the transport: conversations, confirmations, members,
the archive and the spam filter's counts all live in the project's database. Each
test runs on SQLite (the project's own ``run/mailinglist.sqlite3``) and on
PostgreSQL, in a schema of its own at ``MAILSIM_TEST_POSTGRES_URL`` (default: the
local server's database ``test``); without a server there, the PostgreSQL runs are
skipped, unless ``MAILSIM_REQUIRE_POSTGRES=1`` makes that a failure.
"""

import email
import email.policy
import importlib
import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from mailsim_runtime import MailRequest
from mailsim_runtime.config import load_config
from mailsim_runtime.project import load_project
from mailsim_runtime.transport import FunctionTransport

PROJECT = Path(__file__).resolve().parent.parent
MODULE = "app.handlers.mailinglist"
POSTGRES = os.environ.get(
    "MAILSIM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SQLITE_URL = 'url = "sqlite:///run/mailinglist.sqlite3"'


def _postgres_schema(request):
    """A URL to a new, empty schema, dropped when the test ends."""
    schema = f"mailinglist_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:  # any failure to reach the server means "not here"
        admin.dispose()
        reason = f"PostgreSQL not reachable at {POSTGRES}: {str(error).splitlines()[0]}"
        if os.environ.get("MAILSIM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)

    def drop():
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    request.addfinalizer(drop)
    separator = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request, tmp_path):
    """A copy of the project, its [database] on SQLite or PostgreSQL."""
    folder = tmp_path / "mailinglist"
    ignore = shutil.ignore_patterns("run", "features", "tests", "__pycache__")
    shutil.copytree(PROJECT, folder, ignore=ignore)
    (folder / "run").mkdir()  # as `mailsim serve` makes it
    if request.param == "postgresql":
        settings = folder / "mailsim.toml"
        text = settings.read_text()
        assert SQLITE_URL in text
        settings.write_text(text.replace(SQLITE_URL, f'url = "{_postgres_schema(request)}"'))
    return folder


@pytest.fixture
def build(project):
    """``build(transport)``: the app of the copy, with durable parts; closed at the end."""
    apps = []

    def build(transport):
        app = load_project(project, transport=transport, in_memory=False)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.database.dispose()


def _mail(sender, recipient, subject, body=""):
    raw = f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    return MailRequest("127.0.0.1", sender, recipient, raw.encode())


def _parsed(sent):
    return email.message_from_bytes(sent.message, policy=email.policy.default)


def _join(app, transport, person):
    app.deliver(_mail(person, "python-subscribe@lists.example.com", "subscribe"))
    confirm = _parsed(transport.sent[-1])
    assert confirm["Subject"] == "Please confirm: subscribe to python"
    assert transport.sent[-1].envelope.recipients == (person,)
    app.deliver(_mail(person, str(confirm["From"]), "Re: confirm"))
    assert _parsed(transport.sent[-1])["Subject"] == "Welcome to python"


def test_subscribing_and_posting(project, build):
    transport = FunctionTransport()
    app = build(transport)
    _join(app, transport, "alice@example.org")
    _join(app, transport, "bob@example.net")
    assert app.states.get(MODULE, "python:alice@example.org") == "POSTING"
    sent = len(transport.sent)
    app.deliver(_mail("alice@example.org", "python@lists.example.com", "Hello", "Hi all"))
    [post] = transport.sent[sent:]
    assert post.envelope.sender == "python-bounce+bob=example.net@lists.example.com"
    assert post.envelope.recipients == ("bob@example.net",)
    assert _parsed(post)["Subject"] == "[python] Hello"

    engine = sa.create_engine(load_config(project).database.url)  # a fresh look
    try:
        with engine.connect() as connection:
            members = connection.execute(
                sa.text("SELECT address FROM mailing_list_members ORDER BY address")
            )
            assert list(members.scalars()) == ["alice@example.org", "bob@example.net"]
            subjects = connection.execute(sa.text("SELECT subject FROM mailing_list_archive"))
            assert list(subjects.scalars()) == ["Hello"]
    finally:
        engine.dispose()


def test_a_post_sent_twice_goes_out_once(project, build):
    transport = FunctionTransport()
    app = build(transport)
    _join(app, transport, "alice@example.org")
    _join(app, transport, "bob@example.net")
    sent = len(transport.sent)
    post = _mail("alice@example.org", "python@lists.example.com", "Twice")
    post.original = b"Message-ID: <twice@example.org>\r\n" + post.original
    app.deliver(post)
    app.deliver(post)
    assert [s.envelope.recipients for s in transport.sent[sent:]] == [("bob@example.net",)]


def test_the_spam_filter_is_trained_once_and_kept(project, build):
    counts = build(FunctionTransport()).spam.counts
    assert counts == (22, 20)
    assert build(FunctionTransport()).spam.counts == counts  # not trained a second time


def test_the_archive_command_writes_the_pages(project, build, monkeypatch, capsys):
    transport = FunctionTransport()
    app = build(transport)
    _join(app, transport, "alice@example.org")
    app.deliver(_mail("alice@example.org", "python@lists.example.com", "Archived"))
    monkeypatch.chdir(project)
    archive = importlib.import_module("app.archive")
    assert archive.main([str(project / "public")]) == 0
    assert "wrote 3 pages" in capsys.readouterr().out
    assert "Archived" in (project / "public" / "python" / "1.html").read_text()
