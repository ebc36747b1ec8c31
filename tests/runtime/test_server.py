"""The SMTP/LMTP receiver over real loopback sockets: RCPT decisions, durable
acceptance, group commit, delivery by the worker pool, TLS, LMTP, shutdown."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
from pathlib import Path

import aiosmtplib
import mailsim_runtime.queue as queue_module
import pytest
from mailsim_runtime.inbound import decode_stored
from mailsim_runtime.queue import MaildirQueue, syncfs_available
from mailsim_runtime.server import Receiver
from test_server_support import (
    DOMAIN,
    Raw,
    message,
    receiver,
    recording_app,
    self_signed_certificate,
    wait_until,
)

from mailsim.spec.relay import relay_probes


def queue_is_empty(queue: MaildirQueue) -> bool:
    return queue.count() == 0 and not queue.claimed()


def test_a_message_is_queued_then_delivered_to_each_recipient(tmp_path: Path) -> None:
    app, recorder = recording_app()
    with (
        receiver(app, tmp_path) as server,
        smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client,
    ):
        refused = client.sendmail(
            "someone@client.example", [f"a@{DOMAIN}", f"b@{DOMAIN}"], message()
        )
        assert refused == {}
        delivered = recorder.wait_for(2)
        wait_until(lambda: queue_is_empty(server.queue))
    assert sorted(d.recipient for d in delivered) == [f"a@{DOMAIN}", f"b@{DOMAIN}"]
    for item in delivered:
        assert item.sender == "someone@client.example"
        assert item.original.startswith(b"Received: from ")  # the trace line comes first
        assert b"with ESMTP" in item.original and item.original.endswith(message())
        assert item.peer is not None and item.peer.startswith("127.0.0.1:")


def test_unknown_recipients_are_refused_at_rcpt_and_the_rest_taken(tmp_path: Path) -> None:
    app, recorder = recording_app()
    with (
        receiver(app, tmp_path) as server,
        smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client,
    ):
        refused = client.sendmail(
            "s@client.example", ["x@elsewhere.example", f"a@{DOMAIN}"], message()
        )
        assert refused == {
            "x@elsewhere.example": (550, b"5.1.1 <x@elsewhere.example>: recipient rejected")
        }
        [item] = recorder.wait_for(1)
    assert item.recipient == f"a@{DOMAIN}"


def test_the_null_sender_and_postmaster_are_accepted(tmp_path: Path) -> None:
    app, recorder = recording_app()
    with (
        receiver(app, tmp_path) as server,
        smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client,
    ):
        client.sendmail("<>", [f"postmaster@{DOMAIN}"], message("bounce"))
        [item] = recorder.wait_for(1)
    assert (item.sender, item.recipient) == ("", f"postmaster@{DOMAIN}")


@pytest.mark.parametrize("probe", relay_probes(DOMAIN), ids=str)
def test_every_open_relay_probe_is_refused_at_rcpt(
    probe: object, tmp_path: Path, relay_server: Receiver
) -> None:
    sender, recipient = probe.sender, probe.recipient  # type: ignore[attr-defined]
    with Raw(relay_server.port) as client:
        client.reply()
        client.command("EHLO probe.example")
        code, text = client.command(f"MAIL FROM:<{sender}>")
        assert code == 250, text
        code, text = client.command(f"RCPT TO:<{recipient}>")
        assert code >= 500, f"{probe}: {code} {text}"  # never 250, nor a 4xx to retry


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> object:
    app, _ = recording_app()
    with receiver(app, tmp_path_factory.mktemp("relay")) as server:
        yield server


def test_aiosmtplib_client(tmp_path: Path) -> None:
    app, recorder = recording_app()

    async def send(port: int) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        return await aiosmtplib.send(
            message("async"),
            sender="a@client.example",
            recipients=[f"c@{DOMAIN}"],
            hostname="127.0.0.1",
            port=port,
            start_tls=False,
            timeout=10,
        )

    with receiver(app, tmp_path) as server:
        errors, reply = asyncio.run(send(server.port))
        [item] = recorder.wait_for(1)
    assert errors == {} and reply.startswith("2.0.0 OK, queued as ")
    assert item.recipient == f"c@{DOMAIN}"


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks(tmp_path: Path) -> None:
    app, recorder = recording_app()
    with receiver(app, tmp_path) as server:
        result = subprocess.run(
            [
                *("swaks", "--server", f"127.0.0.1:{server.port}", "--from", "s@client.example"),
                *("--to", f"d@{DOMAIN}", "--header", "Subject: from swaks", "--timeout", "10"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "<-  250 2.0.0 OK, queued as" in result.stdout
        [item] = recorder.wait_for(1)
        refused = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{server.port}", "--to", "x@elsewhere.example"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert b"Subject: from swaks" in item.original
    assert refused.returncode != 0
    assert "<** 550 5.1.1 <x@elsewhere.example>: recipient rejected" in refused.stdout


def test_accepted_sockets_have_nodelay_and_the_listener_a_deep_backlog(tmp_path: Path) -> None:
    app, _ = recording_app()
    with receiver(app, tmp_path) as server, Raw(server.port) as client:
        client.reply()
        [session] = list(server._sessions)
        assert session.transport is not None
        sock = session.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        if shutil.which("ss"):
            listing = subprocess.run(
                ["ss", "-Hltn", f"sport = :{server.port}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            assert int(listing[2]) >= 128  # Send-Q of a listening socket: its backlog


def test_the_250_waits_for_the_message_to_be_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, recorder = recording_app()
    server = receiver(app, tmp_path)
    entered, release = threading.Event(), threading.Event()
    push_many = server.queue.push_many

    def slow_push_many(messages: list[bytes]) -> list[str]:
        entered.set()
        release.wait(10)
        return push_many(messages)

    monkeypatch.setattr(server.queue, "push_many", slow_push_many)
    replies: list[tuple[int, str]] = []
    with server, Raw(server.port) as client:
        client.reply()
        client.command("HELO client.example")
        client.command("MAIL FROM:<s@client.example>")
        client.command(f"RCPT TO:<a@{DOMAIN}>")
        client.command("DATA")
        client.send(message() + b".\r\n")
        reader = threading.Thread(target=lambda: replies.append(client.reply()))
        reader.start()
        assert entered.wait(5)
        assert not replies and server.queue.count() == 0  # no 250 while the write waits
        release.set()
        reader.join(5)
        [(code, text)] = replies
        assert code == 250
        recorder.wait_for(1)
    assert text.startswith("2.0.0 OK, queued as ")


def test_concurrent_sessions_share_one_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, recorder = recording_app()
    server = receiver(app, tmp_path)
    writers = len(server.intake.writer._threads)  # each takes a batch while others flush
    assert writers == 2  # a durable queue's writer overlaps two flushes
    entered, release = threading.Semaphore(0), threading.Event()
    batches: list[int] = []
    push_many = server.queue.push_many

    def held_push_many(messages: list[bytes]) -> list[str]:
        batches.append(len(messages))
        if len(batches) <= writers:
            entered.release()
            release.wait(10)
        return push_many(messages)

    monkeypatch.setattr(server.queue, "push_many", held_push_many)

    def send(number: int) -> None:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.sendmail("s@client.example", [f"u{number}@{DOMAIN}"], message(f"m {number}"))

    with server:
        first = [threading.Thread(target=send, args=(n,)) for n in range(writers)]
        for thread in first:
            thread.start()
            assert entered.acquire(timeout=5)  # one writer held per message
        others = [threading.Thread(target=send, args=(n,)) for n in range(writers, 8 + writers)]
        for thread in others:
            thread.start()
        # The eight wait behind the held flushes: they all go in the next one.
        wait_until(lambda: server.intake.writer._jobs.qsize() == 8)
        release.set()
        for thread in [*first, *others]:
            thread.join(10)
        recorder.wait_for(8 + writers)
    assert batches[: writers + 1] == [1] * writers + [8]


@pytest.mark.skipif(not syncfs_available(), reason="syncfs(2) is not available here")
def test_syncfs_durability_flushes_the_filesystem_before_the_250(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, recorder = recording_app()
    server = receiver(app, tmp_path, durability="syncfs")
    flushes: list[int] = []
    real_syncfs = queue_module.syncfs

    def counting_syncfs(fd: int) -> None:
        real_syncfs(fd)
        flushes.append(server.queue.count())  # what new/ holds once each flush is done

    monkeypatch.setattr(queue_module, "syncfs", counting_syncfs)
    with server, smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.sendmail("s@client.example", [f"a@{DOMAIN}"], message())
        # The 250 came after both flushes: before the rename and after it.
        assert flushes[:2] == [0, 1]
        recorder.wait_for(1)
    assert server.queue.durable and server.queue.sync == "syncfs"


def test_a_failing_handler_loses_nothing(tmp_path: Path) -> None:
    app, recorder = recording_app()

    def fail(request: object) -> None:
        raise RuntimeError("the handler broke")

    app.settings["before"] = fail
    with (
        receiver(app, tmp_path) as server,
        smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client,
    ):
        client.sendmail("s@client.example", [f"a@{DOMAIN}"], message("broken"))
        wait_until(lambda: len(app.router.undeliverable) == 1)  # type: ignore[arg-type]
        wait_until(lambda: queue_is_empty(server.queue))
    assert not recorder.items


def test_a_delivery_that_raises_is_retried_until_it_works(tmp_path: Path) -> None:
    app, recorder = recording_app()
    deliver = app.deliver
    attempts: list[str] = []

    def flaky_deliver(request: object) -> object:
        attempts.append("x")
        if len(attempts) < 3:
            raise ConnectionError("the state database is down")
        return deliver(request)  # type: ignore[arg-type]

    app.deliver = flaky_deliver  # type: ignore[method-assign]
    server = receiver(app, tmp_path)
    server.dispatcher.retry_first = 0.01
    with server, smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.sendmail("s@client.example", [f"a@{DOMAIN}"], message("flaky"))
        recorder.wait_for(1)
        wait_until(lambda: queue_is_empty(server.queue))
    assert len(attempts) == 3


def test_on_start_it_delivers_what_a_crash_left(tmp_path: Path) -> None:
    from mailsim_runtime.inbound import encode_stored

    queue = MaildirQueue(tmp_path / "incoming")
    stored = encode_stored("s@client.example", [f"a@{DOMAIN}", f"b@{DOMAIN}"], None, message())
    waiting = queue.push(stored)
    # A message claimed by a process that died half way: a@ had it, b@ not yet.
    half_done = queue.push(stored.replace(b"hello", b"half done"))
    queue.record_delivered([(half_done, f"a@{DOMAIN}")])
    claim_and_die = (
        "import os, sys; from mailsim_runtime.queue import MaildirQueue; "
        "q = MaildirQueue(sys.argv[1]); assert q.claim(sys.argv[2], q.owner()); os._exit(0)"
    )
    subprocess.run(
        [sys.executable, "-c", claim_and_die, str(queue.path), half_done], check=True, timeout=30
    )
    assert len(queue.claimed()) == 1 and queue.keys() == [waiting]

    app, recorder = recording_app()
    with receiver(app, tmp_path):
        delivered = recorder.wait_for(3)
        wait_until(lambda: queue_is_empty(queue))
    pairs = sorted((d.recipient, b"half done" in d.original) for d in delivered)
    assert pairs == [(f"a@{DOMAIN}", False), (f"b@{DOMAIN}", False), (f"b@{DOMAIN}", True)]
    assert waiting not in queue.keys() and not queue.claimed()  # noqa: SIM118


def test_starttls_and_nothing_pipelined_before_the_handshake_survives(tmp_path: Path) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    app, recorder = recording_app()
    with receiver(app, tmp_path, certificate=certificate, private_key=key) as server:
        with Raw(server.port) as client:
            client.reply()
            code, offer = client.command("EHLO client.example")
            assert "STARTTLS" in offer and "AUTH" not in offer
            # Commands sent with STARTTLS, before the handshake, must be dropped
            # (RFC 3207 §4.2; CVE-2011-0411).
            client.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
            assert client.reply()[0] == 220
            client.start_tls()
            code, offer = client.command("EHLO client.example")
            assert code == 250 and "STARTTLS" not in offer
            assert client.command(f"RCPT TO:<a@{DOMAIN}>")[0] == 503  # no MAIL survived
            assert client.command("MAIL FROM:<s@client.example>")[0] == 250
            assert client.command(f"RCPT TO:<a@{DOMAIN}>")[0] == 250
            assert client.command("DATA")[0] == 354
            client.send(message() + b".\r\n")
            assert client.reply()[0] == 250
        [item] = recorder.wait_for(1)
    assert b"with ESMTPS" in item.original


def test_lmtp_over_tcp_answers_once_per_recipient(tmp_path: Path) -> None:
    app, recorder = recording_app()
    with receiver(app, tmp_path, protocol="lmtp") as server, Raw(server.port) as client:
        client.reply()
        assert client.command("EHLO client.example")[0] == 500  # LMTP has LHLO only
        assert client.command("LHLO client.example")[0] == 250
        assert client.command("MAIL FROM:<s@client.example>")[0] == 250
        assert client.command(f"RCPT TO:<a@{DOMAIN}>")[0] == 250
        assert client.command("RCPT TO:<x@elsewhere.example>")[0] == 550
        assert client.command(f"RCPT TO:<b@{DOMAIN}>")[0] == 250
        assert client.command("DATA")[0] == 354
        client.send(message() + b".\r\n")
        first, second = client.reply(), client.reply()
        assert first[0] == second[0] == 250
        assert first[1].startswith(f"2.1.5 <a@{DOMAIN}> OK")
        assert second[1].startswith(f"2.1.5 <b@{DOMAIN}> OK")
        assert recorder.wait_for(2)
    assert all(b"with LMTP" in d.original for d in recorder.items)


def test_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    app, recorder = recording_app()
    path = tmp_path / "lmtp.sock"
    with receiver(app, tmp_path, protocol="lmtp", socket_path=path), Raw(path) as client:
        client.reply()
        client.command("LHLO client.example")
        client.command("MAIL FROM:<s@client.example>")
        client.command(f"RCPT TO:<a@{DOMAIN}>")
        client.command("DATA")
        client.send(message() + b".\r\n")
        assert client.reply()[0] == 250
        [item] = recorder.wait_for(1)
    assert item.peer is None


def test_stop_lets_an_open_transaction_finish_and_closes_idle_sessions(tmp_path: Path) -> None:
    app, recorder = recording_app()
    server = receiver(app, tmp_path).start()
    busy, idle = Raw(server.port), Raw(server.port)
    for client in (busy, idle):
        client.reply()
        client.command("HELO client.example")
    busy.command("MAIL FROM:<s@client.example>")
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 10})
    stopper.start()
    assert idle.reply() == (421, "4.3.2 Service shutting down, try again later")
    assert busy.command(f"RCPT TO:<a@{DOMAIN}>")[0] == 250
    assert busy.command("DATA")[0] == 354
    busy.send(message() + b".\r\n")
    assert busy.reply()[0] == 250
    assert busy.reply()[0] == 421  # and then it is closed too
    stopper.join(10)
    assert not stopper.is_alive()
    # Stopping finishes deliveries under way and leaves the rest queued for the next
    # start: the accepted message was delivered or is waiting, never lost.
    waiting = server.queue.count() + len(server.queue.claimed())
    assert len(recorder.items) + waiting == 1
    with pytest.raises(OSError):
        Raw(server.port)
    busy.sock.close()
    idle.sock.close()


def test_stored_files_carry_the_envelope(tmp_path: Path) -> None:
    app, _ = recording_app()
    server = receiver(app, tmp_path)
    server.dispatcher.workers = 1
    stored: list[bytes] = []
    push_many = server.queue.push_many

    def keep(messages: list[bytes]) -> list[str]:
        stored.extend(messages)
        return push_many(messages)

    server.queue.push_many = keep  # type: ignore[method-assign]
    with server, smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.sendmail("s@client.example", [f"a@{DOMAIN}", f"A@{DOMAIN}"], message())
    [data] = stored
    envelope = decode_stored(data)
    assert envelope is not None
    assert envelope.sender == "s@client.example"
    assert envelope.recipients == (f"a@{DOMAIN}", f"A@{DOMAIN}")
    assert envelope.content.endswith(message())
