"""``mailsim send``, ``sendmail`` and ``blast`` against real SMTP servers on loopback.

The servers are aiosmtpd's, run by :class:`Sink` below with a handler that records
what arrives and can refuse recipients, drop connections, speak LMTP or offer
STARTTLS.
"""

from __future__ import annotations

import asyncio
import mailbox
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from click.testing import CliRunner, Result

from mailsim.cli import main
from mailsim.cli._smtp import DEFAULT_HOST, DEFAULT_PORT, Server, resolve_server


@dataclass
class Arrived:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> Any:
        """The message parsed, with LF line ends (as Python text has them)."""
        return message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=policy.default)


@dataclass
class Recorder:
    """An aiosmtpd handler: keeps every message, refuses the addresses it is told to."""

    refuse: set[str] = field(default_factory=set)
    close_after: int | None = None  # drop the connection after this many messages on it
    lmtp: bool = False
    messages: list[Arrived] = field(default_factory=list)
    sessions: int = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from  # aiosmtpd says "<>"
        self.messages.append(Arrived(sender, list(envelope.rcpt_tos), envelope.content))
        count = getattr(session, "mailsim_count", 0) + 1
        session.mailsim_count = count
        if self.close_after is not None and count >= self.close_after:
            # After the 250 has been written: the transport flushes before closing.
            asyncio.get_running_loop().call_soon(server.transport.close)
        if self.lmtp:
            # LMTP answers once per recipient; the last one refused, to be told apart.
            replies = ["250 2.0.0 OK"] * len(envelope.rcpt_tos)
            if len(replies) > 1:
                replies[-1] = "452 4.2.2 mailbox full"
            return "\r\n".join(replies)
        return "250 OK"


class Sink:
    """A real SMTP (or LMTP) server on a free loopback port, in a thread of its own."""

    def __init__(self, handler: Recorder, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.port = 0

    def _protocol(self) -> SMTP:
        self.handler.sessions += 1
        kind = LMTP if self.handler.lmtp else SMTP
        return kind(self.handler, hostname="sink.test", tls_context=self.tls, loop=self.loop)

    def __enter__(self) -> Sink:
        self.thread.start()
        made = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(self._protocol, "127.0.0.1", 0), self.loop
        )
        self.server = made.result(timeout=10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def shut() -> None:
            assert self.server is not None
            self.server.close()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def messages(self) -> list[Arrived]:
        return self.handler.messages


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink(Recorder(refuse={"nobody@example.com", "nobody@example.net"})) as server:
        yield server


def run(*args: str, input: bytes | str | None = None, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), input=input, env=env or None)


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# send -------------------------------------------------------------------------------


def test_send_delivers_one_message(sink: Sink) -> None:
    result = run(
        "send", "--to", "alice@example.com", "--to", "bob@example.com",
        "--from", "carol@example.org", "--subject", "Hello there", "--body", "Line one\nLine two\n",
        "--host", "127.0.0.1", "--port", str(sink.port),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"via 127.0.0.1:{sink.port}" in result.stdout
    [arrived] = sink.messages
    assert arrived.sender == "carol@example.org"
    assert arrived.recipients == ["alice@example.com", "bob@example.com"]
    message = arrived.message
    assert message["Subject"] == "Hello there"
    assert message["From"] == "carol@example.org"
    assert message["To"] == "alice@example.com, bob@example.com"
    assert message["Message-ID"] in result.stdout
    assert message.get_content() == "Line one\nLine two\n"
    assert b"\n" not in arrived.data.replace(b"\r\n", b"")  # CRLF only


def test_send_from_a_named_sender(sink: Sink) -> None:
    result = run(
        "send", "--to", "alice@example.com", "--from", "Carol Jones <carol@example.org>",
        "--port", str(sink.port),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [arrived] = sink.messages
    assert arrived.sender == "carol@example.org"
    assert arrived.message["From"] == "Carol Jones <carol@example.org>"
    assert arrived.message["Message-ID"].endswith("@example.org>")


def test_send_does_not_garble_a_non_ascii_address(sink: Sink) -> None:
    # aiosmtpd offers SMTPUTF8 only when asked to; this one does not.
    result = run("send", "--to", "jörg@example.com", "--port", str(sink.port))
    assert result.exit_code == 1
    assert "needs SMTPUTF8" in result.stderr
    assert sink.messages == []


def test_send_attaches_files(sink: Sink, tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 not really\x00\xff")
    result = run(
        "send", "--to", "alice@example.com", "--attach", str(report), "--body", "See attached",
        "--host", "127.0.0.1", "--port", str(sink.port),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    message = sink.messages[0].message
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.4 not really\x00\xff"


def test_send_names_a_missing_attachment(sink: Sink, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.txt"
    result = run(
        "send", "--to", "a@example.com", "--attach", str(missing), "--port", str(sink.port)
    )
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    assert sink.messages == []


def test_send_debug_shows_the_smtp_conversation(sink: Sink) -> None:
    result = run("send", "--to", "alice@example.com", "--debug", "--port", str(sink.port))
    assert result.exit_code == 0, result.output
    assert "mail FROM:" in result.stderr
    assert "rcpt TO:<alice@example.com>" in result.stderr
    assert "250" in result.stderr
    without = run("send", "--to", "alice@example.com", "--port", str(sink.port))
    assert "rcpt TO" not in without.stderr


def test_send_reports_a_refused_recipient(sink: Sink) -> None:
    result = run(
        "send", "--to", "nobody@example.com", "--host", "127.0.0.1", "--port", str(sink.port)
    )
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "nobody@example.com" in line
    assert "550 5.1.1 no such user here" in line
    assert sink.messages == []


def test_send_reports_each_refusal_when_some_are_accepted(sink: Sink) -> None:
    result = run(
        "send", "--to", "alice@example.com", "--to", "nobody@example.com", "--to", "x@y.example",
        "--to", "nobody@example.net", "--port", str(sink.port),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "refused nobody@example.com: 550" in result.stderr
    assert "refused nobody@example.net: 550" in result.stderr
    assert "refused 2 of 4 recipients" in result.stderr
    [arrived] = sink.messages
    assert arrived.recipients == ["alice@example.com", "x@y.example"]


def test_send_says_when_nothing_listens() -> None:
    port = free_port()
    result = run("send", "--to", "a@example.com", "--host", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 1
    assert f"cannot connect to 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_send_refuses_a_subject_with_a_line_break(sink: Sink) -> None:
    result = run(
        "send", "--to", "a@example.com", "--subject", "Hi\r\nBcc: victim@example.net",
        "--port", str(sink.port),
    )  # fmt: skip
    assert result.exit_code == 1
    assert sink.messages == []


def _project(folder: Path, port: int, protocol: str = "smtp") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mailsim.toml").write_text(
        '[app]\nhostname = "app.example.com"\nhandlers = ["app.handlers.sample"]\n'
        f'[receiver]\nhost = "0.0.0.0"\nport = {port}\nprotocol = "{protocol}"\n'
    )
    return folder


def test_send_goes_to_the_project_receiver_by_default(
    sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path / "project", sink.port)
    (project / "app").mkdir()
    monkeypatch.chdir(project / "app")  # the project is found from a folder inside it
    result = run("send", "--to", "echo@app.example.com", "--subject", "via the project")
    assert result.exit_code == 0, result.output
    assert sink.messages[0].message["Subject"] == "via the project"
    assert f"127.0.0.1:{sink.port}" in result.stdout


def test_server_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_server(None, None, None, None) == Server(DEFAULT_HOST, DEFAULT_PORT)
    assert resolve_server(None, "mx.example", 25, None) == Server("mx.example", 25)
    project = _project(tmp_path / "p", 2525, protocol="lmtp")
    assert resolve_server(project, None, None, None) == Server("127.0.0.1", 2525, lmtp=True)
    # Another port is another server: SMTP unless told, on the project's host.
    assert resolve_server(project, None, 26, None) == Server("127.0.0.1", 26)
    assert resolve_server(project, None, 26, "lmtp") == Server("127.0.0.1", 26, lmtp=True)


def test_send_names_a_broken_project(tmp_path: Path) -> None:
    (tmp_path / "mailsim.toml").write_text("[app]\nhandlers = 3\n")
    result = run("send", "--to", "a@example.com", "--project", str(tmp_path))
    assert result.exit_code == 1
    assert "mailsim.toml:2" in result.stderr


def test_send_speaks_lmtp_with_a_reply_per_recipient() -> None:
    with Sink(Recorder(lmtp=True)) as lmtp:
        result = run(
            "send", "--to", "alice@example.com", "--to", "bob@example.com",
            "--port", str(lmtp.port), "--protocol", "lmtp",
        )  # fmt: skip
        assert result.exit_code == 1
        assert "refused bob@example.com: 452 4.2.2 mailbox full" in result.stderr
        assert len(lmtp.messages) == 1
        # The connection stayed in step: a second message goes through on a new run.
        again = run(
            "send", "--to", "carol@example.com", "--port", str(lmtp.port), "--protocol", "lmtp"
        )
        assert again.exit_code == 0, again.output
        smtp = run("send", "--to", "carol@example.com", "--port", str(lmtp.port))
        assert smtp.exit_code == 1  # an LMTP server refuses EHLO and HELO


# STARTTLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made with openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_send_starttls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with Sink(Recorder(), tls=context) as tls:
        args = ["send", "--to", "a@example.com", "--port", str(tls.port), "--starttls", "--debug"]
        trusted = run(*args, SSL_CERT_FILE=str(cert))
        assert trusted.exit_code == 0, trusted.output
        assert "starttls" in trusted.stderr.lower()
        assert len(tls.messages) == 1
        untrusted = run(*args)
        assert untrusted.exit_code == 1
        assert "certificate not trusted" in untrusted.stderr
        assert len(tls.messages) == 1


def test_send_starttls_refuses_a_server_without_it(sink: Sink) -> None:
    result = run("send", "--to", "a@example.com", "--port", str(sink.port), "--starttls")
    assert result.exit_code == 1
    assert "does not offer STARTTLS" in result.stderr
    assert sink.messages == []


# sendmail -----------------------------------------------------------------------------

MUTT_MESSAGE = (
    b"From: Alice <alice@example.org>\n"
    b"To: bob@example.com, Carol <carol@example.com>\n"
    b"Cc: dave@example.com\n"
    b"Bcc: eve@example.com,\n"
    b"  frank@example.com\n"
    b"Subject: Lunch\n"
    b"\n"
    b"Shall we?\n"
    b".\n"
    b"Bcc: this line is the body, not a header\n"
)


def test_sendmail_t_reads_recipients_and_drops_bcc(sink: Sink) -> None:
    result = run("sendmail", "-t", "-oi", "--port", str(sink.port), input=MUTT_MESSAGE)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # silent on success, as sendmail is
    [arrived] = sink.messages
    assert arrived.sender == "alice@example.org"
    assert arrived.recipients == [
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "eve@example.com",
        "frank@example.com",
    ]
    assert b"\n" not in arrived.data.replace(b"\r\n", b"")
    message = arrived.message
    assert message["Bcc"] is None
    assert b"frank" not in arrived.data
    assert message["Subject"] == "Lunch"
    assert message.get_content() == "Shall we?\n.\nBcc: this line is the body, not a header\n"


def test_sendmail_as_mutt_calls_it(sink: Sink) -> None:
    result = run(
        "sendmail", "-oem", "-oi", "-B8BITMIME", "-N", "failure,delay", "-f", "me@example.org",
        "--port", str(sink.port), "--", "bob@example.com", "-leading-dash@example.com",
        input=MUTT_MESSAGE,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [arrived] = sink.messages
    assert arrived.sender == "me@example.org"
    assert arrived.recipients == ["bob@example.com"]  # without -t, only the arguments
    assert "-leading-dash@example.com" in result.stderr  # warned about, not sent to
    assert arrived.message["Bcc"] is not None  # left alone without -t


def test_sendmail_without_i_stops_at_a_lone_dot(sink: Sink) -> None:
    result = run("sendmail", "--port", str(sink.port), "bob@example.com", input=MUTT_MESSAGE)
    assert result.exit_code == 0, result.output
    assert sink.messages[0].message.get_content() == "Shall we?\n"


def test_sendmail_null_sender_and_from_line(sink: Sink) -> None:
    data = b"From alice@example.org Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n"
    result = run("sendmail", "-f", "<>", "--port", str(sink.port), "bob@example.com", input=data)
    assert result.exit_code == 0, result.output
    [arrived] = sink.messages
    assert arrived.sender == ""
    assert arrived.data.startswith(b"Subject: x\r\n")


def test_sendmail_needs_recipients(sink: Sink) -> None:
    result = run("sendmail", "--port", str(sink.port), input=b"Subject: x\n\nbody\n")
    assert result.exit_code == 1
    assert "no recipients" in result.stderr
    assert sink.messages == []


def test_sendmail_supports_only_deliver_mode(sink: Sink) -> None:
    result = run("sendmail", "-bs", "--port", str(sink.port), input=b"")
    assert result.exit_code == 1
    assert "-bs" in result.stderr
    assert (
        run("sendmail", "-bm", "--port", str(sink.port), "a@example.com", input=b"x\n").exit_code
        == 0
    )


def test_sendmail_fails_on_a_refused_recipient(sink: Sink) -> None:
    result = run("sendmail", "--port", str(sink.port), "nobody@example.com", input=b"\nhi\n")
    assert result.exit_code == 1
    assert "550" in result.stderr


# blast --------------------------------------------------------------------------------


def _message(number: int, to: str = "alice@example.com") -> bytes:
    return (
        f"From: sender{number}@example.org\nTo: {to}\nSubject: message {number}\n\nbody {number}\n"
    ).encode()


def _maildir(folder: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(folder, create=True)
    for data in messages:
        box.add(data)
    return folder


def test_blast_sends_a_maildir_over_one_connection(sink: Sink, tmp_path: Path) -> None:
    source = _maildir(tmp_path / "corpus", [_message(n) for n in range(5)])
    result = run("blast", str(source), "--host", "127.0.0.1", "--port", str(sink.port))
    assert result.exit_code == 0, result.output
    assert "sent 5, refused 0, skipped 0 of 5 messages" in result.stdout
    assert sorted(m.message["Subject"] for m in sink.messages) == [f"message {n}" for n in range(5)]
    assert sink.handler.sessions == 1
    assert {m.sender for m in sink.messages} == {f"sender{n}@example.org" for n in range(5)}


def test_blast_an_mbox_to_one_address(sink: Sink, tmp_path: Path) -> None:
    source = tmp_path / "corpus.mbox"
    box = mailbox.mbox(source)
    for number in range(3):
        box.add(_message(number))
    box.close()
    result = run(
        "blast", str(source), "--port", str(sink.port), "--to", "trap@example.com",
        "--sender", "",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [m.recipients for m in sink.messages] == [["trap@example.com"]] * 3
    assert {m.sender for m in sink.messages} == {""}


def test_blast_counts_refusals_and_messages_without_recipients(sink: Sink, tmp_path: Path) -> None:
    source = _maildir(
        tmp_path / "corpus",
        [_message(1), _message(2, to="nobody@example.com"), b"Subject: no one\n\nhi\n"],
    )
    result = run("blast", str(source), "--port", str(sink.port))
    assert result.exit_code == 1
    assert "sent 1, refused 1, skipped 1 of 3 messages" in result.stdout
    assert "refused nobody@example.com: 550 5.1.1" in result.stderr
    assert "no recipients" in result.stderr
    assert len(sink.messages) == 1


def test_blast_reconnects_when_the_server_drops_it(tmp_path: Path) -> None:
    source = _maildir(tmp_path / "corpus", [_message(n) for n in range(5)])
    with Sink(Recorder(close_after=2)) as dropping:
        result = run("blast", str(source), "--port", str(dropping.port))
        assert result.exit_code == 0, result.output
        assert "sent 5, refused 0" in result.stdout
        assert len(dropping.messages) == 5
        assert dropping.handler.sessions == 3


def test_blast_names_a_bad_source(sink: Sink, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = run("blast", str(missing), "--port", str(sink.port))
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    not_mbox = tmp_path / "notes.txt"
    not_mbox.write_text("hello\n")
    result = run("blast", str(not_mbox), "--port", str(sink.port))
    assert result.exit_code == 1
    assert "not an mbox file" in result.stderr
