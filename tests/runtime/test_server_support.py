"""Helpers the receiver tests share (no tests here): an app that records what it is
delivered, a receiver on a free loopback port, and a raw SMTP client for what
smtplib will not send (bare line ends, pipelining, LMTP's replies)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.raw_smtp import Raw
from mailsim_runtime import App, current_app, route, stateless
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.server import Receiver

__all__ = ["Raw"]  # the server tests import the raw client from here too

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
