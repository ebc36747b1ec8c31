"""A recording app and a real receiver for it, shared by the server and fault tests."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailsim_runtime import App, current_app, route, stateless
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.server import Receiver

DOMAIN = "example.com"


class Recorder:
    """Every delivery the app's handler was given, in order; safe across worker threads."""

    def __init__(self) -> None:
        self.items: list[MailRequest] = []
        self._changed = threading.Condition()

    def add(self, message: MailRequest) -> None:
        with self._changed:
            self.items.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[MailRequest]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.items) >= count, timeout):
                raise AssertionError(f"expected {count} deliveries, got {len(self.items)}")
            return list(self.items)

    def subjects(self) -> Counter[str]:
        with self._changed:
            return Counter(str(item["Subject"]) for item in self.items)


# Catch-all: any address at any host. Only the app's domain check stands between
# this route and an open relay, which is what the relay probes test.
@route("(user)@(host)", user=".+", host=".+")
@stateless
def RECORD(message: MailRequest, user: str, host: str) -> None:
    app = current_app()
    before = app.settings.get("before")  # a test's hook: may wait, or raise to fail
    if before is not None:
        before(message)
    app.settings["recorder"].add(message)


def recording_app(**settings: Any) -> tuple[App, Recorder]:
    """An app for DOMAIN whose one handler records every delivery."""
    recorder = Recorder()
    app = App(
        [sys.modules[__name__]],
        hostname=DOMAIN,
        settings={"recorder": recorder, **settings},
        undeliverable=MemoryQueue(),
    )
    return app, recorder


def receiver(app: App, path: Path, **options: Any) -> Receiver:
    """A receiver on a free loopback port, queueing into *path*/incoming (not started)."""
    options.setdefault("queue", path / "incoming")
    options.setdefault("workers", 4)
    options.setdefault("poll", 0.05)
    if isinstance(options.get("limits"), dict):
        options["limits"] = LimitsSection(**options["limits"])
    return Receiver(app, host="127.0.0.1", port=0, **options)


def message(subject: str = "hello", body: str = "hello world", to: str = f"a@{DOMAIN}") -> bytes:
    return (
        f"From: sender@client.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@client.example>\r\n\r\n{body}\r\n"
    ).encode()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll *condition* until it holds (the thing watched has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout} s: {what or condition}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Raw:
    """A byte-exact SMTP/LMTP client over a TCP port (from *source*, another loopback
    address, if given) or a UNIX socket; it reads whole replies."""

    def __init__(
        self, address: int | str | Path, timeout: float = 5.0, source: str | None = None
    ) -> None:
        if isinstance(address, int):
            self.sock: socket.socket = socket.create_connection(
                ("127.0.0.1", address), timeout, source_address=(source, 0) if source else None
            )
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(address))
        self.buffer = b""

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; unread: {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        """One whole (possibly multi-line) reply: its code and its text lines joined."""
        texts = []
        while True:
            line = self._line().decode()
            texts.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(texts)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> tuple[int, str]:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """Whether the server closed the connection (after what was already read)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def start_tls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock)
        self.buffer = b""

    def transaction(self, recipients: list[str] | None = None) -> None:
        """Greeting, EHLO, MAIL, RCPTs (default: one at DOMAIN), DATA: each accepted."""
        assert self.reply()[0] == 220
        assert self.command("EHLO client.example")[0] == 250
        assert self.command("MAIL FROM:<s@client.example>")[0] == 250
        for recipient in recipients or [f"a@{DOMAIN}"]:
            assert self.command(f"RCPT TO:<{recipient}>")[0] == 250
        assert self.command("DATA")[0] == 354


def send_one(port: int, data: bytes, recipient: str = f"a@{DOMAIN}") -> tuple[int, str]:
    """One message over a new connection: the reply to its DATA."""
    with Raw(port, timeout=10.0) as client:
        client.transaction([recipient])
        client.send(data + b".\r\n")
        return client.reply()
