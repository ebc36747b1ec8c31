"""Limits and SMTP smuggling: each refused with its standard reply, with nothing
queued, and without disturbing other clients."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from mailsim_runtime.server import Receiver
from test_server_support import (
    DOMAIN,
    Raw,
    Recorder,
    limits,
    message,
    receiver,
    recording_app,
    wait_until,
)

SMALL = limits(
    message_size=20_000,
    recipients=3,
    line_length=200,
    header_size=2_000,
    received_headers=5,
    connections_per_client=3,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Receiver, Recorder]]:
    app, recorder = recording_app()
    with receiver(app, tmp_path, limits=SMALL) as server:
        yield server, recorder


def others_unaffected(server: Receiver, recorder: Recorder) -> None:
    """A well-behaved client still gets its message through."""
    before = len(recorder.items)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        assert client.sendmail("ok@client.example", [f"ok@{DOMAIN}"], message("fine")) == {}
    recorder.wait_for(before + 1)


def transaction(client: Raw) -> None:
    """Greeting, EHLO, MAIL and one RCPT, each answered 2xx; then DATA → 354."""
    assert client.reply()[0] == 220
    assert client.command("EHLO client.example")[0] == 250
    assert client.command("MAIL FROM:<s@client.example>")[0] == 250
    assert client.command(f"RCPT TO:<a@{DOMAIN}>")[0] == 250
    assert client.command("DATA")[0] == 354


def data_reply(server: Receiver, content: bytes) -> tuple[int, str]:
    with Raw(server.port) as client:
        transaction(client)
        client.send(content + b".\r\n")
        return client.reply()


def test_size_announced_too_big_is_refused_at_mail(
    served: tuple[Receiver, Recorder],
) -> None:
    server, recorder = served
    with Raw(server.port) as client:
        client.reply()
        code, offer = client.command("EHLO client.example")
        assert "SIZE 20000" in offer
        code, text = client.command("MAIL FROM:<s@client.example> SIZE=20001")
        assert (code, text) == (552, "5.3.4 Message too big: the limit is 20000 bytes")
    others_unaffected(server, recorder)


def test_a_message_too_big_is_refused_after_data(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    code, text = data_reply(server, message(body="x" * 100 + "\r\n") * 300)
    assert code == 552 and text.startswith("5.3.4 ")
    others_unaffected(server, recorder)
    assert len(recorder.items) == 1  # only the other client's


def test_too_many_recipients(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    with Raw(server.port) as client:
        client.reply()
        client.command("EHLO client.example")
        client.command("MAIL FROM:<s@client.example>")
        for number in range(3):
            assert client.command(f"RCPT TO:<r{number}@{DOMAIN}>")[0] == 250
        assert client.command(f"RCPT TO:<r3@{DOMAIN}>") == (
            452,
            "4.5.3 Too many recipients for one message",
        )
        client.command("DATA")
        client.send(message() + b".\r\n")
        assert client.reply()[0] == 250  # the first three are taken
    assert sorted(d.recipient for d in recorder.wait_for(3)) == [f"r{n}@{DOMAIN}" for n in range(3)]


def test_a_line_too_long(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    # 200 octets with CRLF are allowed; 201 are not.
    assert data_reply(server, message(body="x" * 198))[0] == 250
    for long_line in ("x" * 199, "x" * 5000):
        code, text = data_reply(server, message(body=long_line))
        assert code == 500 and text.startswith("5.5.2 Line too long"), text
    recorder.wait_for(1)
    others_unaffected(server, recorder)
    assert len(recorder.items) == 2


def test_a_dot_at_the_end_of_a_too_long_line_does_not_end_the_data(
    served: tuple[Receiver, Recorder],
) -> None:
    server, recorder = served
    with Raw(server.port) as client:
        transaction(client)
        # The tail of the long line is ".\r\n": it must not be taken for the end.
        client.send(b"Subject: x\r\n\r\n" + b"y" * 1000 + b".\r\nmore\r\n.\r\n")
        code, _ = client.reply()
        assert code == 500
        assert client.command("NOOP")[0] == 250  # in step: nothing was left unread
    others_unaffected(server, recorder)


def test_a_header_too_big(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"z" * 60) for n in range(40))
    code, text = data_reply(server, headers + message())
    assert (code, text) == (552, "5.3.4 Message header too big: the limit is 2000 bytes")
    others_unaffected(server, recorder)


def test_too_many_received_headers_is_a_loop(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    trace = b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    assert data_reply(server, trace * 4 + message())[0] == 250
    code, text = data_reply(server, trace * 5 + message())
    assert (code, text) == (554, "5.4.6 Too many Received headers (5): a mail loop")
    recorder.wait_for(1)
    others_unaffected(server, recorder)


def test_too_many_connections_from_one_client(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    held = [Raw(server.port) for _ in range(3)]
    for client in held:
        assert client.reply()[0] == 220
    with Raw(server.port) as extra:
        assert extra.reply() == (
            421,
            "4.7.0 Too many connections from your host, try again later",
        )
        assert extra.closed()
    held.pop().sock.close()
    wait_until(lambda: len(server._sessions) == 2)
    others_unaffected(server, recorder)
    for client in held:
        assert client.command("NOOP")[0] == 250
        client.sock.close()


def test_an_idle_client_times_out_with_421(tmp_path: Path) -> None:
    app, recorder = recording_app()
    quick = limits(command_timeout=timedelta(seconds=0.3))
    with receiver(app, tmp_path, limits=quick) as server, Raw(server.port) as client:
        client.reply()
        client.command("EHLO client.example")
        assert client.reply() == (421, "4.4.2 Command timeout exceeded, closing connection")
        assert client.closed()
        others_unaffected(server, recorder)


# SMTP smuggling (REFERENCE.md): each ending tries to end the first message early so
# that what follows becomes a second, forged one.
ENDINGS = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\0.\r\n",
    b"\r\n.\0\r\n",
]
SMUGGLED = (
    b"MAIL FROM:<admin@" + DOMAIN.encode() + b">\r\n"
    b"RCPT TO:<victim@" + DOMAIN.encode() + b">\r\n"
    b"DATA\r\n"
    b"From: admin@" + DOMAIN.encode() + b"\r\nSubject: smuggled\r\n\r\nforged\r\n"
)


@pytest.mark.parametrize("ending", ENDINGS, ids=repr)
def test_smuggling_endings_are_refused_and_make_no_second_message(
    ending: bytes, served: tuple[Receiver, Recorder]
) -> None:
    server, recorder = served
    with Raw(server.port) as client:
        transaction(client)
        client.send(b"Subject: first\r\n\r\nfirst" + ending + SMUGGLED + b".\r\nQUIT\r\n")
        code, text = client.reply()
        assert code == 550 and text.startswith("5.6.0 Message refused: "), text
        assert client.reply()[0] == 221  # the very next reply: no second transaction
        assert client.closed()
    others_unaffected(server, recorder)
    [only] = recorder.items
    assert b"forged" not in only.original and only.recipient == f"ok@{DOMAIN}"
    wait_until(lambda: server.queue.count() == 0 and not server.queue.claimed())


def test_a_bare_lf_anywhere_is_refused(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    code, text = data_reply(server, b"Subject: x\r\n\r\nline one\nline two\r\n")
    assert (code, text) == (
        550,
        "5.6.0 Message refused: bare CR or LF in its content (RFC 5321 section 2.3.8)",
    )
    code, _ = data_reply(server, b"Subject: x\r\n\r\nline one\rline two\r\n")
    assert code == 550
    assert not recorder.items


def test_control_characters_in_addresses_are_refused(served: tuple[Receiver, Recorder]) -> None:
    server, _ = served
    with Raw(server.port) as client:
        client.reply()
        client.command("EHLO client.example")
        assert client.command('MAIL FROM:<"a\rb"@client.example>')[0] == 553
        assert client.command("MAIL FROM:<s@client.example>")[0] == 250
        assert client.command(f'RCPT TO:<"x\rX-Evil: 1"@{DOMAIN}>')[0] == 553


def test_dot_stuffing_is_undone(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    assert data_reply(server, b"..Subject: dots\r\n\r\n..leading\r\n..\r\nx\r\n")[0] == 250
    [item] = recorder.wait_for(1)
    assert item.original.endswith(b"\r\n.Subject: dots\r\n\r\n.leading\r\n.\r\nx\r\n")
