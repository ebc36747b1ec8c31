"""What the fault tests share (no tests here): an app that records its deliveries, a
receiver on a free loopback port, a byte-exact SMTP client, deadlines instead of
sleeps, and a tiny tmpfs to fill up.

Every wait is a deadline on a condition; every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.raw_smtp import Raw as SharedRaw
from mailsim_runtime import App, current_app, route, stateless
from mailsim_runtime.config import LimitsSection
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.server import Receiver

DOMAIN = "example.com"


class Recorder:
    """Every delivery the app's handler was given, in order; safe across threads."""

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


@route("(user)@(host)", user=".+", host=".+")
@stateless
def RECORD(message: MailRequest, user: str, host: str) -> None:
    app = current_app()
    hook = app.settings.get("before")
    if hook is not None:
        hook(message)
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
    if "limits" in options and isinstance(options["limits"], dict):
        options["limits"] = LimitsSection(**options["limits"])
    return Receiver(app, host="127.0.0.1", port=0, **options)


def message(subject: str = "hello", body: str = "hello world", to: str = f"a@{DOMAIN}") -> bytes:
    return (
        f"From: sender@client.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@client.example>\r\n\r\n{body}\r\n"
    ).encode()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll *condition* until it holds, or fail after *timeout* seconds."""
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


class Raw(SharedRaw):
    """The shared raw client, its transaction addressed to the test app by default."""

    def __init__(self, port: int, timeout: float = 10.0, source: str | None = None) -> None:
        super().__init__(port, timeout, source)

    def transaction(self, recipients: list[str] | None = None) -> None:
        super().transaction(recipients or [f"a@{DOMAIN}"])


def send_one(port: int, data: bytes, recipient: str = f"a@{DOMAIN}") -> tuple[int, str]:
    """One message over a new connection: the reply to its DATA."""
    with Raw(port) as client:
        client.transaction([recipient])
        client.send(data + b".\r\n")
        return client.reply()


def queue_empty(path: Path) -> bool:
    return not os.listdir(path / "new") and not [
        name for name in os.listdir(path / "cur") if ":" in name
    ]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of *size* mounted at *path*; the test is skipped where mounting is
    not allowed (not root, or no CAP_SYS_ADMIN in this container)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs at *path* read-only ("ro") or read-write ("rw")."""
    subprocess.run(
        ["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True, timeout=30
    )
