"""Crash safety: `mailsim serve`, durable by fsync or by write-ahead log, SIGKILLed again and again
while clients send, loses no message it answered 250, and delivers nothing
half-written.

Each message carries a checksum of its body; the handler checks it and appends
"<id> ok|bad" to a file with one write. A message whose handler had run just
before a kill may run again after the restart (at least once); the test counts
such repeats and bounds them by what can be in flight at one kill.
"""

from __future__ import annotations

import hashlib
import os
import signal
import smtplib
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest
from test_server_support import free_port, wait_until

KILLS = 3
CLIENTS = 4
WORKERS = 4

HANDLERS = """
import hashlib, os
from mailsim_runtime import current_app, route, stateless

@route("(user)@example.com", user=".+")
@stateless
def RECORD(message, user):
    body = message.original.split(b"\\r\\n\\r\\n", 1)[1]
    payload, _, digest = body.rpartition(b"sha256=")
    ok = hashlib.sha256(payload).hexdigest().encode() == digest.strip()
    line = f"{message['Message-ID']}>{message.recipient} {'ok' if ok else 'bad'}\\n".encode()
    fd = os.open(current_app().settings["delivered"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one write: a line is there whole or not at all
    finally:
        os.close(fd)
"""


def make_project(folder: Path, port: int, durability: str) -> Path:
    package = folder / "crashapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(HANDLERS)
    (folder / "mailsim.toml").write_text(
        textwrap.dedent(f"""
        [app]
        hostname = "example.com"
        handlers = ["crashapp.handlers"]

        [receiver]
        port = {port}
        durability = "{durability}"
        workers = {WORKERS}

        [settings]
        delivered = "{folder / "delivered.txt"}"
        """)
    )
    return folder


def body_for(number: int) -> bytes:
    payload = (f"message {number}\r\n" + "x" * 70 + "\r\n") * 20
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return f"{payload}sha256={digest}\r\n".encode()


class Server:
    def __init__(self, project: Path) -> None:
        self.project = project
        self.pid_file = project / "run" / "serve.pid"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        log = open(self.project / "serve.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-c", "from mailsim.cli import main; main()", "serve"),
                *("-p", str(self.project), "--pid-file", str(self.pid_file)),
                *("--log-level", "warning"),
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        process = self.process
        wait_until(lambda: self.pid_file.exists() or process.poll() is not None, timeout=30)
        assert process.poll() is None, (self.project / "serve.log").read_text()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@pytest.mark.parametrize("durability", ["fsync", "wal"])
def test_sigkill_mid_stream_loses_nothing_accepted(tmp_path: Path, durability: str) -> None:
    port = free_port()
    project = make_project(tmp_path / "project", port, durability)
    server = Server(project)
    accepted: set[str] = set()  # "<message id>>recipient" of each 250
    lock = threading.Lock()
    done = threading.Event()
    numbers = iter(range(1_000_000))

    def client() -> None:
        while not done.is_set():
            with lock:
                number = next(numbers)
            message_id = f"<{number}@client.example>"
            # Every other message has two recipients: each must have it once.
            recipients = [f"u{number}@example.com", f"v{number}@example.com"][: 1 + number % 2]
            data = (
                f"From: c@client.example\r\nTo: {', '.join(recipients)}\r\n"
                f"Message-ID: {message_id}\r\nSubject: {number}\r\n\r\n"
            ).encode() + body_for(number)
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as connection:
                    connection.sendmail("c@client.example", recipients, data)
            except (OSError, smtplib.SMTPException):
                # Killed under us, or not back yet: this one did not get its 250.
                done.wait(0.02)  # a pause before reconnecting, not synchronisation
                continue
            with lock:
                accepted.update(f"{message_id}>{recipient}" for recipient in recipients)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    server.start()
    for thread in threads:
        thread.start()
    try:
        for _ in range(KILLS):
            with lock:
                target = len(accepted) + 40
            wait_until(lambda target=target: len(accepted) >= target, timeout=30)  # type: ignore[misc]
            server.kill()
            server.start()
        with lock:
            target = len(accepted) + 20
        wait_until(lambda: len(accepted) >= target, timeout=30)
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    delivered_file = project / "delivered.txt"

    def delivered() -> Counter[str]:
        lines = delivered_file.read_text().splitlines() if delivered_file.exists() else []
        return Counter(lines)

    wait_until(lambda: accepted <= {line.split()[0] for line in delivered()}, timeout=30)
    assert server.stop() == 0
    lines = delivered()
    ids = Counter(line.split()[0] for line in lines.elements())
    assert all(line.endswith(" ok") for line in lines), "a half-written message was delivered"
    assert accepted <= set(ids), f"lost: {sorted(accepted - set(ids))}"
    repeats = sum(count - 1 for count in ids.values())
    # At most the messages being delivered at each kill can be delivered again.
    assert repeats <= KILLS * WORKERS, f"{repeats} repeated deliveries"
    incoming = project / "run" / "incoming"
    assert not os.listdir(incoming / "new") and not os.listdir(incoming / "cur")
    # The dead processes' logs were replayed at each start, the last one closed.
    assert not list(incoming.glob("wal/*.wal"))
    print(
        f"\n{len(accepted)} copies accepted, {len(ids)} delivered, {repeats} delivered "
        f"twice, {KILLS} kills"
    )
