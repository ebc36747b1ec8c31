"""Helpers the receiver tests share (no tests here): an app that records what it is
delivered, a receiver on a free loopback port, and a raw SMTP client for what
smtplib will not send (bare line ends, pipelining, LMTP's replies)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailsim_runtime import App, current_app, route, stateless
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.server import Receiver

DOMAIN = "example.com"


@dataclass(frozen=True)
class Delivered:
    sender: str
    recipient: str
    data: bytes
    peer: str | None


class Recorder:
    """What the app's handler was given, in order; safe across worker threads."""

    def __init__(self) -> None:
        self.items: list[Delivered] = []
        self._changed = threading.Condition()

    def add(self, message: MailRequest) -> None:
        with self._changed:
            self.items.append(
                Delivered(message.sender, message.recipient, message.original, message.peer)
            )
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivered]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.items) >= count, timeout):
                raise AssertionError(f"expected {count} deliveries, got {self.items}")
            return list(self.items)


# Catch-all: any address at any host. Only the app's domain check stands between
# this route and an open relay, which is what the relay probes test.
@route("(user)@(host)", user=".+", host=".+")
@stateless
def RECORD(message: MailRequest, user: str, host: str) -> None:
    app = current_app()
    failure = app.settings.get("fail")
    if failure is not None:
        failure(message)
    app.settings["recorder"].add(message)


def recording_app() -> tuple[App, Recorder]:
    """An app for DOMAIN whose one handler records every delivery."""
    recorder = Recorder()
    app = App(
        [sys.modules[__name__]],
        hostname=DOMAIN,
        settings={"recorder": recorder},
        undeliverable=MemoryQueue(),
    )
    return app, recorder


def limits(**changes: Any) -> LimitsSection:
    return LimitsSection(**changes)


def receiver(app: App, path: Path, **options: Any) -> Receiver:
    """A receiver on a free loopback port, queueing into *path*/incoming (not started)."""
    options.setdefault("queue", path / "incoming")
    options.setdefault("workers", 4)
    options.setdefault("poll", 0.05)
    return Receiver(app, host="127.0.0.1", port=0, **options)


def message(subject: str = "hello", body: str = "hello world", to: str = f"a@{DOMAIN}") -> bytes:
    return (
        f"From: sender@client.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@client.example>\r\n\r\n{body}\r\n"
    ).encode()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll *condition* until it holds (the thing watched has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Raw:
    """A byte-exact SMTP/LMTP client over a TCP or UNIX socket."""

    def __init__(self, address: int | str | Path, timeout: float = 5.0) -> None:
        if isinstance(address, int):
            self.sock: socket.socket = socket.create_connection(("127.0.0.1", address), timeout)
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


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key (the openssl command line makes them)."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={DOMAIN}", "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return certificate, key
