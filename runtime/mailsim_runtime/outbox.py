"""The durable outbox: outgoing mail on disk from before its first attempt until it is done.

A :class:`DurableOutbox` is a folder::

    tmp/              files being written (never read)
    queue/ID.eml      the message, written once
    queue/ID.json     its envelope and state: pending recipients, attempts, results,
                      when it was queued and when it is next due; replaced whole
                      (write, fsync, rename) at every change
    failed/ID.eml     bounces that could not be delivered either (never re-bounced),
    failed/ID.json    kept for the postmaster

Every write goes to ``tmp/``, is fsync'd, then renamed into place and the folder
fsync'd, so :meth:`DurableOutbox.add` returning means the message survives a
crash. The ``.json`` file is the record that an item exists: it is written after
the ``.eml`` and removed before it.

**Claims.** Before an attempt the relay *claims* an item: an exclusive, non-blocking
``flock`` on its ``.eml`` file, held until the attempt's outcome is written. A
claim succeeds for one taker only, across threads (each claim opens the file
anew) and across processes sharing the folder (``mailsim serve --workers N``),
and the kernel drops it when a process dies, so a crash never leaves an item
stuck. ``flock`` needs a local file system; do not share the folder over NFS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from mailsim_runtime.locks import try_lock
from mailsim_runtime.relay import Outgoing
from mailsim_runtime.transport import Envelope, RecipientResult

__all__ = ["DurableOutbox"]

log = logging.getLogger("mailsim.outbox")

_FORMAT = 1
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_ABANDONED = 3600.0  # seconds after which a half-written file is a crash's leftover


def _to_json(item: Outgoing) -> bytes:
    record = {
        "format": _FORMAT,
        "id": item.id,
        "sender": item.envelope.sender,
        "recipients": list(item.envelope.recipients),
        "pending": list(item.pending),
        "queued_at": item.queued_at.isoformat(),
        "next_attempt": item.next_attempt.isoformat(),
        "attempts": item.attempts,
        "results": {
            recipient: [result.code, result.text, result.remote]
            for recipient, result in item.results.items()
        },
    }
    return json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8")


def _from_json(data: bytes, message: bytes) -> Outgoing:
    record: dict[str, Any] = json.loads(data)
    if record.get("format") != _FORMAT:
        raise ValueError(f"unknown outbox record format {record.get('format')!r}")
    return Outgoing(
        id=record["id"],
        envelope=Envelope(record["sender"], tuple(record["recipients"])),
        message=message,
        queued_at=datetime.fromisoformat(record["queued_at"]),
        next_attempt=datetime.fromisoformat(record["next_attempt"]),
        attempts=int(record["attempts"]),
        pending=tuple(record["pending"]),
        results={
            recipient: RecipientResult(recipient, int(code), text, remote)
            for recipient, (code, text, remote) in record["results"].items()
        },
    )


class DurableOutbox:
    """An :class:`~mailsim_runtime.relay.Outbox` in a folder; see the module's notes.

    ``durable=False`` skips the fsyncs (for tests that do not test crashes).
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self._queue = self.path / "queue"
        self._failed = self.path / "failed"
        self._tmp = self.path / "tmp"
        for folder in (self._tmp, self._queue, self._failed):
            folder.mkdir(parents=True, exist_ok=True)
        self._claims: dict[str, int] = {}  # item id -> the locked file descriptor
        self._lock = threading.Lock()
        self._tidy()

    def __repr__(self) -> str:
        return f"<DurableOutbox {self.path}>"

    # Writing ----------------------------------------------------------------------

    def _fsync_folder(self, folder: Path) -> None:
        if not self.durable:
            return
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, target: Path, data: bytes, *, exclusive: bool = False) -> None:
        """Put *data* at *target* whole or not at all (the folder is fsync'd by the caller)."""
        temporary = self._tmp / f"{uuid.uuid4().hex}.{target.name}"
        with open(temporary, "xb") as handle:
            handle.write(data)
            if self.durable:
                handle.flush()
                os.fsync(handle.fileno())
        if exclusive:
            # link() refuses to replace: two items can never share an id unnoticed.
            try:
                os.link(temporary, target)
            finally:
                os.unlink(temporary)
        else:
            os.replace(temporary, target)

    def _paths(self, item_id: str, folder: Path | None = None) -> tuple[Path, Path]:
        if not _SAFE_ID.match(item_id):
            raise ValueError(f"not a safe outbox item id: {item_id!r}")
        folder = folder or self._queue
        return folder / f"{item_id}.eml", folder / f"{item_id}.json"

    def add(self, item: Outgoing) -> None:
        """Store a new item; durable once this returns."""
        message, record = self._paths(item.id)
        self._write(message, item.message, exclusive=True)
        self._write(record, _to_json(item), exclusive=True)
        self._fsync_folder(self._queue)

    def update(self, item: Outgoing) -> None:
        """Record *item*'s new state (after an attempt)."""
        _, record = self._paths(item.id)
        self._write(record, _to_json(item))
        self._fsync_folder(self._queue)

    def remove(self, item_id: str) -> None:
        """Forget an item (delivered, or every recipient failed)."""
        message, record = self._paths(item_id)
        record.unlink(missing_ok=True)
        message.unlink(missing_ok=True)
        self._fsync_folder(self._queue)

    def keep_failed(self, item: Outgoing) -> None:
        """Set a copy of *item* aside in ``failed/`` (an undeliverable bounce)."""
        message, record = self._paths(item.id, self._failed)
        self._write(message, item.message)
        self._write(record, _to_json(item))
        self._fsync_folder(self._failed)

    # Reading ----------------------------------------------------------------------

    def _load(self, item_id: str, folder: Path) -> Outgoing | None:
        message, record = self._paths(item_id, folder)
        try:
            return _from_json(record.read_bytes(), message.read_bytes())
        except FileNotFoundError:
            return None  # removed meanwhile, by another thread or process

    def _ids(self, folder: Path) -> list[str]:
        return sorted(name[:-5] for name in os.listdir(folder) if name.endswith(".json"))

    def _read_all(self, folder: Path) -> list[Outgoing]:
        found = []
        for item_id in self._ids(folder):
            try:
                item = self._load(item_id, folder)
            except (ValueError, KeyError, TypeError) as problem:
                log.error("%s: cannot read outbox item %s: %s", folder, item_id, problem)
                continue
            if item is not None:
                found.append(item)
        return found

    def items(self) -> list[Outgoing]:
        """Every queued item, oldest id first (claimed ones included)."""
        return self._read_all(self._queue)

    @property
    def failed(self) -> list[Outgoing]:
        """The bounces that could not be delivered, read from ``failed/``."""
        return self._read_all(self._failed)

    def __len__(self) -> int:
        return len(self._ids(self._queue))

    # Claims -----------------------------------------------------------------------

    def claim(self, item_id: str) -> Outgoing | None:
        """Take *item_id* for an attempt: its current state, or None when someone
        else holds it or it is gone. Release it with :meth:`release`."""
        message, _ = self._paths(item_id)
        with self._lock:
            if item_id in self._claims:
                return None
            try:
                fd = try_lock(message)
            except FileNotFoundError:
                return None
            if fd is None:
                return None
            try:
                item = self._load(item_id, self._queue)
            except BaseException:
                os.close(fd)  # closing drops the lock
                raise
            if item is None:
                os.close(fd)
                return None
            self._claims[item_id] = fd
            return item

    def release(self, item_id: str) -> None:
        """Give back a claim taken with :meth:`claim`."""
        with self._lock:
            fd = self._claims.pop(item_id, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the lock releases it

    # Housekeeping -----------------------------------------------------------------

    def _tidy(self) -> None:
        """Clear what a crash in the middle of a write left behind."""
        cutoff = time.time() - _ABANDONED
        records = set(self._ids(self._queue))
        orphans = [m for m in self._queue.glob("*.eml") if m.stem not in records]
        for leftover in [*self._tmp.iterdir(), *orphans]:
            with contextlib.suppress(FileNotFoundError):  # another process was quicker
                if leftover.stat().st_mtime < cutoff:
                    log.warning("%s: removing %s, left by a crash", self.path, leftover)
                    leftover.unlink()
