"""Protocol abuse: a whole transaction pipelined before STARTTLS, 10,000 recipients,
endless lines, slow clients, a flood of connections from one address. Each gets its
standard reply, and a well-behaved client on the side is served all the while.

(`tests/runtime/test_server_limits.py` has the limits one by one and the smuggling
endings; these push them further and check the bystander each time.)
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from faults_support import (
    DOMAIN,
    Raw,
    Recorder,
    message,
    queue_empty,
    receiver,
    recording_app,
    send_one,
    wait_until,
)
from helpers.mailservers import make_certificate
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.server import Receiver

TIMEOUT = 1.0  # the command timeout these tests run with, in seconds
BYSTANDER = "127.0.0.2"  # another client: any 127/8 address reaches the loopback listener


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Receiver, Recorder]]:
    app, recorder = recording_app()
    limits = LimitsSection(
        command_timeout=timedelta(seconds=TIMEOUT), connections_per_client=5, recipients=1000
    )
    with receiver(app, tmp_path, limits=limits) as server:
        yield server, recorder


def bystander_is_served(server: Receiver, recorder: Recorder, subject: str) -> float:
    """A client from another address sends one message; the seconds it took to its 250."""
    before = len(recorder.items)
    started = time.monotonic()
    with Raw(server.port, source=BYSTANDER) as client:
        client.transaction()
        client.send(message(subject) + b".\r\n")
        assert client.reply()[0] == 250
    elapsed = time.monotonic() - started
    recorder.wait_for(before + 1)
    return elapsed


def test_a_transaction_pipelined_before_starttls_is_discarded(tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    app, recorder = recording_app()
    with receiver(
        app, tmp_path, certificate=certificate.certificate, private_key=certificate.key
    ) as server:
        with Raw(server.port) as client:
            client.reply()
            client.command("EHLO client.example")
            # Everything after STARTTLS in the same segment must be thrown away
            # (RFC 3207 §4.2, CVE-2011-0411), not run once the handshake is done.
            client.send(
                b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\n"
                b"RCPT TO:<a@"
                + DOMAIN.encode()
                + b">\r\nDATA\r\n"
                + message("injected")
                + b".\r\nQUIT\r\n"
            )
            assert client.reply()[0] == 220
            context = ssl.create_default_context(cafile=str(certificate.certificate))
            client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
            client.buffer = b""
            # The first reply after the handshake answers the first command after it.
            assert client.command("NOOP") == (250, "OK")
            assert client.command("EHLO client.example")[0] == 250
            assert client.command(f"RCPT TO:<a@{DOMAIN}>")[0] == 503  # no MAIL survived
        bystander_is_served(server, recorder, "after")
        wait_until(lambda: queue_empty(tmp_path / "incoming"))
    assert [item["Subject"] for item in recorder.items] == ["after"]


def test_ten_thousand_recipients(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    done = threading.Event()
    waits: list[float] = []

    def bystanders() -> None:  # served all along, not after the flood
        for number in range(3):
            if done.is_set():
                break
            waits.append(bystander_is_served(server, recorder, f"side {number}"))

    with Raw(server.port, timeout=60) as client:
        client.reply()
        client.command("EHLO client.example")
        client.command("MAIL FROM:<s@client.example>")
        side = threading.Thread(target=bystanders)
        side.start()
        client.send(b"".join(b"RCPT TO:<r%d@%s>\r\n" % (n, DOMAIN.encode()) for n in range(10_000)))
        replies = [client.reply() for _ in range(10_000)]
        assert all(code == 250 for code, _ in replies[:1000])
        assert set(replies[1000:]) == {(452, "4.5.3 Too many recipients for one message")}
        assert client.command("DATA")[0] == 354  # the session is still usable
        client.send(message("many") + b".\r\n")
        assert client.reply()[0] == 250
        done.set()
        side.join(60)
    deliveries = recorder.wait_for(1000 + len(waits), timeout=60)
    many = [d.recipient for d in deliveries if d["Subject"] == "many"]
    assert sorted(many) == sorted(f"r{n}@{DOMAIN}" for n in range(1000))
    assert waits and max(waits) < 5.0, waits


def test_an_endless_command_line(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    with Raw(server.port) as client:
        client.reply()
        # A line that does end, however long: refused, and the session goes on.
        client.send(b"NOOP " + b"x" * 100_000 + b"\r\n")
        assert client.reply() == (500, "5.5.2 Command line too long (RFC 5321 section 4.5.3.1.4)")
        assert client.command("NOOP")[0] == 250
        # One that never ends: read and dropped until the command timeout.
        started = time.monotonic()
        client.send(b"MAIL FROM:<" + b"y" * 2_000_000)
        bystander_is_served(server, recorder, "meanwhile")
        assert client.reply() == (421, "4.4.2 Command timeout exceeded, closing connection")
        assert client.closed()
        assert time.monotonic() - started < TIMEOUT + 3
    assert recorder.subjects() == {"meanwhile": 1}


def test_an_endless_line_in_data(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    with Raw(server.port) as client:
        client.transaction()
        client.send(b"Subject: endless\r\n\r\n" + b"z" * 3_000_000)
        bystander_is_served(server, recorder, "meanwhile")
        assert client.reply() == (421, "4.4.2 Command timeout exceeded, closing connection")
    with Raw(server.port) as client:  # and ended, at last: refused with its reason
        client.transaction()
        client.send(b"Subject: long\r\n\r\n" + b"z" * 3_000_000 + b"\r\n.\r\n")
        code, text = client.reply()
        assert code == 500 and text.startswith("5.5.2 Line too long"), text
        assert client.command("NOOP")[0] == 250
    assert recorder.subjects() == {"meanwhile": 1}


@pytest.mark.parametrize("where", ["command", "data"])
def test_a_slow_client_is_cut_off_at_the_command_timeout(
    served: tuple[Receiver, Recorder], where: str
) -> None:
    """A slowloris: one byte every 0.1 s (a byte a second, scaled to the 1 s timeout).
    Bytes trickling in do not keep a session alive; only commands (and DATA in
    64 KB steps) do."""
    server, recorder = served
    with Raw(server.port) as client:
        if where == "data":
            client.transaction()
        else:
            client.reply()
        started = time.monotonic()
        closed_at: list[float] = []

        def trickle() -> None:
            for byte in b"MAIL FROM:<slow@client.example" * 10:  # bounded: 300 bytes
                try:
                    client.sock.send(bytes([byte]))
                except OSError:
                    closed_at.append(time.monotonic() - started)
                    return
                time.sleep(0.1)

        slow = threading.Thread(target=trickle)
        slow.start()
        waited = bystander_is_served(server, recorder, f"beside {where}")
        assert waited < TIMEOUT  # not held up by the slow one
        assert client.reply() == (421, "4.4.2 Command timeout exceeded, closing connection")
        elapsed = time.monotonic() - started
        slow.join(10)
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2, elapsed
    assert recorder.subjects() == {f"beside {where}": 1}


def test_a_flood_of_connections_from_one_client(served: tuple[Receiver, Recorder]) -> None:
    server, recorder = served
    greetings: list[tuple[int, str]] = []
    held: list[socket.socket] = []
    lock = threading.Lock()

    def connect() -> None:
        client = Raw(server.port)
        greeting = client.reply()
        with lock:
            greetings.append(greeting)
            held.append(client.sock)

    flood = [threading.Thread(target=connect) for _ in range(40)]
    for thread in flood:
        thread.start()
    for thread in flood:
        thread.join(30)
    try:
        codes = sorted(code for code, _ in greetings)
        assert codes == [220] * 5 + [421] * 35
        refusal = next(text for code, text in greetings if code == 421)
        assert refusal == "4.7.0 Too many connections from your host, try again later"
        # Another client is served while the five are held.
        assert bystander_is_served(server, recorder, "other client") < 5.0
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, the first client may connect again.
    wait_until(lambda: not server.intake._per_client.get("127.0.0.1"), what="all counted out")
    assert send_one(server.port, message("again"))[0] == 250
    recorder.wait_for(2)
    assert recorder.subjects() == {"other client": 1, "again": 1}
