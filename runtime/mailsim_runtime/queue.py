"""Message queues: a crash-safe Maildir queue and an in-memory one with the same API.

A message pushed to a :class:`MaildirQueue` is written to ``tmp/``, fsync'd, renamed
into ``new/`` and the directory fsync'd, so once ``push`` returns the message
survives a crash (unless the queue was opened with ``durable=False``). A message is
taken out by renaming it from ``new/`` into ``cur/``: a rename succeeds for exactly
one taker, so any number of threads and processes can pop from one queue. Messages
over ``max_size`` are moved to ``oversize/`` when met, never silently lost.

Both queues are also :class:`~mailsim_runtime.routing.Sink` objects: pushing a
:class:`~mailsim_runtime.mail.MailRequest` with a reason records its envelope in
``Return-Path``, ``Delivered-To`` and ``X-Mailsim-Reason`` lines, as a local
delivery agent would.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from mailsim_runtime.mail import MailRequest, MailResponse

__all__ = ["MaildirQueue", "MemoryQueue", "as_queue_bytes"]

log = logging.getLogger("mailsim.queue")

_SUBFOLDERS = ("tmp", "new", "cur", "oversize")


def _header_safe(value: str) -> str:
    return " ".join(value.split()).encode("ascii", "backslashreplace").decode("ascii")


def as_queue_bytes(message: bytes | MailRequest | MailResponse, reason: str | None = None) -> bytes:
    """The bytes a queue stores for *message* (envelope lines first for a request)."""
    if isinstance(message, MailResponse):
        return message.as_bytes()
    if isinstance(message, bytes):
        return message
    lines = [
        f"Return-Path: <{_header_safe(message.sender)}>",
        f"Delivered-To: {_header_safe(message.recipient)}",
    ]
    if reason:
        lines.append(f"X-Mailsim-Reason: {_header_safe(reason)}")
    return "\r\n".join(lines).encode("ascii") + b"\r\n" + message.original


class MaildirQueue:
    """A queue in a Maildir folder, safe across threads, processes and crashes."""

    def __init__(
        self, path: str | os.PathLike[str], *, durable: bool = True, max_size: int | None = None
    ) -> None:
        self.path = Path(path)
        self.durable = durable
        self.max_size = max_size
        self._serial = itertools.count()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")
        for sub in _SUBFOLDERS:
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<MaildirQueue {self.path}>"

    def _unique(self) -> str:
        now = time.time()
        return (
            f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}"
            f"Q{next(self._serial)}T{threading.get_ident() % 100_000}.{self._host}"
        )

    def _fsync_dir(self, folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def push(self, message: bytes | MailRequest | MailResponse, reason: str | None = None) -> str:
        """Store *message*; returns its key. Durable (fsync'd) before it returns."""
        data = as_queue_bytes(message, reason)
        key = self._unique()
        temporary = self.path / "tmp" / key
        with open(temporary, "xb") as handle:
            handle.write(data)
            if self.durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.rename(temporary, self.path / "new" / key)
        if self.durable:
            self._fsync_dir(self.path / "new")
        return key

    def keys(self) -> list[str]:
        """Keys of the waiting messages, oldest first."""
        return sorted(os.listdir(self.path / "new"))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def count(self) -> int:
        return len(os.listdir(self.path / "new"))

    def __len__(self) -> int:
        return self.count()

    def get(self, key: str) -> bytes | None:
        try:
            return (self.path / "new" / key).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, key: str) -> bool:
        try:
            os.unlink(self.path / "new" / key)
        except FileNotFoundError:
            return False
        return True

    def pop(self) -> tuple[str, bytes] | None:
        """Take the oldest message out of the queue; None when it is empty."""
        for key in self.keys():
            claimed = self.path / "cur" / key
            try:
                os.rename(self.path / "new" / key, claimed)
            except FileNotFoundError:
                continue  # another worker took it first
            if self.max_size is not None and claimed.stat().st_size > self.max_size:
                os.rename(claimed, self.path / "oversize" / key)
                log.warning(
                    "%s: message %s is over %d bytes; set aside in oversize/",
                    self.path,
                    key,
                    self.max_size,
                )
                continue
            data = claimed.read_bytes()
            os.unlink(claimed)
            return key, data
        return None

    def oversize(self) -> list[str]:
        return sorted(os.listdir(self.path / "oversize"))

    def clear(self) -> int:
        """Remove every waiting message; returns how many."""
        removed = 0
        for key in self.keys():
            removed += self.remove(key)
        return removed


class MemoryQueue:
    """The same queue in memory, for tests and the simulated world."""

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}
        self._serial = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryQueue {len(self._items)} messages>"

    def push(self, message: bytes | MailRequest | MailResponse, reason: str | None = None) -> str:
        key = f"{next(self._serial):08d}"
        with self._lock:
            self._items[key] = as_queue_bytes(message, reason)
        return key

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def count(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return self.count()

    def get(self, key: str) -> bytes | None:
        return self._items.get(key)

    def remove(self, key: str) -> bool:
        with self._lock:
            return self._items.pop(key, None) is not None

    def pop(self) -> tuple[str, bytes] | None:
        with self._lock:
            if not self._items:
                return None
            key = next(iter(self._items))
            return key, self._items.pop(key)

    def clear(self) -> int:
        with self._lock:
            removed = len(self._items)
            self._items.clear()
            return removed
