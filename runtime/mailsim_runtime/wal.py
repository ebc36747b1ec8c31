"""A write-ahead log: a batch of queued messages made durable by one flush of one file.

Flushing Maildir files the portable way costs an fsync of each file and one of its
folder, and the filesystem a journal commit for the new files: ten 2 KiB messages
flushed in turn took 2.3 ms on our machines. Writing the same ten messages into a
file whose blocks were all written beforehand and calling ``fdatasync`` changes no
metadata and costs one flush of the disk: 150 µs. So a
:class:`~mailsim_runtime.queue.MaildirQueue` opened with ``sync="wal"`` writes its
message files without flushing them and appends each batch to its process's
:class:`WriteAheadLog` before the batch is acknowledged. Every *checkpoint_every*
seconds, or when the log is full, a *checkpoint* makes everything on the queue's
filesystem durable with one ``syncfs(2)``, and the log starts again from its beginning.

The log also records the messages finished and the recipients a message reached,
written at once and flushed with the next batch or checkpoint, so a power cut undoes
little of the delivery side either.

A log belongs to one process, which holds a lock on it (:mod:`mailsim_runtime.locks`).
When that process is gone, :func:`read_log` tells what it wrote since its last
checkpoint, and :func:`unflushed` what of that may not be on disk. Whether anything is
missing depends on the machine, not the process: a process that died while the kernel
ran left all its writes in the page cache, while after a power cut (a new *boot id*)
the files written since the checkpoint may be missing, empty or hold an older
message's bytes. The queue's recovery puts them right
(:meth:`~mailsim_runtime.queue.MaildirQueue.recover`).

On disk: a 4 KiB header (magic, boot id, generation, time of the last checkpoint, CRC)
then records (a 32-byte head with magic, CRC-32, generation, time, kind and lengths,
then the key and the data). A checkpoint raises the generation, so records left from
before it are ignored, and a record cut short by a crash fails its CRC and ends the log.
"""

from __future__ import annotations

import enum
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailsim_runtime.locks import LockedFile, owner_name

__all__ = [
    "LOG_SIZE",
    "LogContents",
    "Record",
    "RecordKind",
    "Unflushed",
    "WriteAheadLog",
    "current_boot_id",
    "read_log",
    "unflushed",
]

LOG_SIZE = 32 * 1024 * 1024  # bytes; a log that fills up is checkpointed early
CHECKPOINT_EVERY = 5.0  # seconds: how much a power cut makes recovery replay
SUFFIX = ".wal"
_HEADER_SIZE = 4096
_HEADER = struct.Struct("<8s40sQQI")  # magic, boot id, generation, checkpoint ns, CRC
_HEADER_MAGIC = b"MSWAL\x00\x01\n"
_PREFIX = struct.Struct("<II")  # magic, CRC-32 of the rest of the record
_RECORD = struct.Struct("<QQBxHI")  # generation, ns, kind, key and data length
_RECORD_MAGIC = 0x4C41574D  # "MWAL"
_ZEROS = bytes(1024 * 1024)
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class RecordKind(enum.IntEnum):
    STORED = 1  # data: the message, acknowledged once the record is flushed
    FINISHED = 2  # the message is done with: not to be put back
    DELIVERED = 3  # data: a recipient the message reached (UTF-8, surrogateescape)


@dataclass(frozen=True)
class Record:
    kind: RecordKind
    key: str
    data: bytes
    time_ns: int  # CLOCK_MONOTONIC: comparable between the logs of one boot


@dataclass(frozen=True)
class LogContents:
    """What a log holds since its last checkpoint."""

    path: Path
    boot_id: str
    checkpoint_ns: int  # when its last checkpoint started (0: never)
    records: list[Record]


@dataclass
class Unflushed:
    """What logs of one earlier boot say may have been lost with the page cache."""

    stored: dict[str, bytes] = field(default_factory=dict)  # acknowledged, not finished
    finished: set[str] = field(default_factory=set)
    delivered: dict[str, list[str]] = field(default_factory=dict)


def current_boot_id() -> str:
    """This boot of the machine (Linux's random boot id); "" where there is none."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


class WriteAheadLog:
    """This process's log in *folder*, created and filled with zeros up front.

    *flush_filesystem* makes everything written to the queue's filesystem durable
    (``syncfs`` of an open file there); it is what a checkpoint calls. Safe to use from
    many threads.
    """

    def __init__(
        self,
        folder: Path,
        flush_filesystem: Callable[[int], None],
        *,
        size: int = LOG_SIZE,
        checkpoint_every: float = CHECKPOINT_EVERY,
        boot_id: str | None = None,
    ) -> None:
        if size < 2 * _HEADER_SIZE:
            raise ValueError(f"a write-ahead log needs at least {2 * _HEADER_SIZE} bytes")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{owner_name()}{SUFFIX}"
        self.size = size
        self.checkpoint_every = checkpoint_every
        self.boot_id = current_boot_id() if boot_id is None else boot_id
        self.checkpoints = 0
        self._flush_filesystem = flush_filesystem
        self._lock = threading.Lock()
        self._generation = 1
        self._position = _HEADER_SIZE
        self._since = time.monotonic()  # the last checkpoint, or the first record after it
        self._file = LockedFile(self.path)
        try:
            self._fill()
        except BaseException:
            self._file.close()
            raise

    def __repr__(self) -> str:
        return f"<WriteAheadLog {self.path} {self._position - _HEADER_SIZE} bytes>"

    def _fill(self) -> None:
        # Every block written now, so that appending later changes no metadata and
        # fdatasync has only the data to flush (unwritten extents would need a commit).
        fd = self._file.fd
        for offset in range(0, self.size, len(_ZEROS)):
            os.pwrite(fd, _ZEROS[: self.size - offset], offset)
        self._write_header(checkpoint_ns=0)
        os.fsync(fd)
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _write_header(self, checkpoint_ns: int) -> None:
        fields = (_HEADER_MAGIC, self.boot_id.encode("ascii"), self._generation, checkpoint_ns)
        packed = _HEADER.pack(*fields, 0)
        crc = zlib.crc32(packed[: _HEADER.size - 4])
        os.pwrite(self._file.fd, _HEADER.pack(*fields, crc), 0)

    def fits(self, entries: Sequence[tuple[str, bytes]]) -> bool:
        """Whether *entries* (key, data) can be logged at all (a bigger batch is
        flushed file by file instead)."""
        return _logged_size(_encoded(entries)) <= self.size - _HEADER_SIZE

    def store(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Log *messages* (key, bytes) and flush the log: once this returns they
        survive a power cut, whatever becomes of their files."""
        self._append(RecordKind.STORED, messages, flush=True)

    def note(self, kind: RecordKind, entries: Iterable[tuple[str, bytes]]) -> None:
        """Log *entries* (key, data) of *kind* without flushing: the next
        :meth:`store` or checkpoint flushes them."""
        self._append(kind, entries, flush=False)

    def _append(
        self, kind: RecordKind, entries: Iterable[tuple[str, bytes]], *, flush: bool
    ) -> None:
        encoded = _encoded(entries)
        size = _logged_size(encoded)
        if not encoded:
            return
        if size > self.size - _HEADER_SIZE:
            raise ValueError(f"{size} bytes do not fit in the log {self.path}")
        with self._lock:
            fd = self._file.fd
            if self._position + size > self.size or self._overdue():
                self._checkpoint()
            if self._position == _HEADER_SIZE:
                self._since = time.monotonic()
            # Stamped after any checkpoint began, so that none is taken to cover them.
            stamp = time.monotonic_ns()
            blob = b"".join(self._record(kind, name, data, stamp) for name, data in encoded)
            os.pwrite(fd, blob, self._position)
            self._position += len(blob)
        if flush:
            # Outside the lock: flushes of several batches overlap (the disk takes
            # them in parallel), and a checkpoint meanwhile covers this batch too.
            os.fdatasync(fd)

    def _record(self, kind: RecordKind, name: bytes, data: bytes, stamp: int) -> bytes:
        head = _RECORD.pack(self._generation, stamp, kind, len(name), len(data))
        crc = zlib.crc32(data, zlib.crc32(name, zlib.crc32(head)))
        return _PREFIX.pack(_RECORD_MAGIC, crc) + head + name + data

    def _overdue(self) -> bool:
        return (
            self._position > _HEADER_SIZE
            and time.monotonic() - self._since >= self.checkpoint_every
        )

    def due_in(self) -> float | None:
        """Seconds until a checkpoint is due (0: now); None when nothing awaits one."""
        with self._lock:
            if self._position == _HEADER_SIZE:
                return None
            return max(self.checkpoint_every - (time.monotonic() - self._since), 0.0)

    def checkpoint(self) -> None:
        """Make everything on the filesystem durable, and start the log afresh."""
        with self._lock:
            self._checkpoint()

    def _checkpoint(self) -> None:
        # The time is taken before the flush: whatever any process wrote before it,
        # by then in some log, is on disk once the flush returns.
        started = time.monotonic_ns()
        self._flush_filesystem(self._file.fd)
        self._generation += 1
        self._write_header(checkpoint_ns=started)
        os.fdatasync(self._file.fd)
        self._position = _HEADER_SIZE
        self._since = time.monotonic()
        self.checkpoints += 1

    def close(self) -> None:
        """Checkpoint what is logged, then remove the log."""
        with self._lock:
            if self._position > _HEADER_SIZE:
                self._checkpoint()
            self._file.close()


def _encoded(entries: Iterable[tuple[str, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(key.encode("utf-8", "surrogateescape"), data) for key, data in entries]


def _logged_size(encoded: Sequence[tuple[bytes, bytes]]) -> int:
    """The bytes the records of *encoded* (key, data) take in a log."""
    return sum(_PREFIX.size + _RECORD.size + len(name) + len(data) for name, data in encoded)


def read_log(path: Path) -> LogContents:
    """The records of the log at *path* since its last checkpoint (in the order written)."""
    with open(path, "rb") as handle:
        content = handle.read()
    header = content[: _HEADER.size]
    if len(header) < _HEADER.size:
        return LogContents(path, "", 0, [])
    magic, boot, generation, checkpoint_ns, crc = _HEADER.unpack(header)
    if magic != _HEADER_MAGIC or crc != zlib.crc32(header[: _HEADER.size - 4]):
        # Only a checkpoint rewrites the header, after flushing the filesystem: a
        # header torn by a crash means nothing in the log was left unflushed.
        return LogContents(path, "", 0, [])
    records = []
    position = _HEADER_SIZE
    while position + _PREFIX.size + _RECORD.size <= len(content):
        magic_number, crc = _PREFIX.unpack_from(content, position)
        head = content[position + _PREFIX.size : position + _PREFIX.size + _RECORD.size]
        record_generation, stamp, kind, key_length, data_length = _RECORD.unpack(head)
        if magic_number != _RECORD_MAGIC or record_generation != generation:
            break
        start = position + _PREFIX.size + _RECORD.size
        end = start + key_length + data_length
        body = content[start:end]
        if len(body) < key_length + data_length or crc != zlib.crc32(body, zlib.crc32(head)):
            break  # cut short by a crash: never acknowledged
        try:
            record_kind = RecordKind(kind)
        except ValueError:
            break
        key = body[:key_length].decode("utf-8", "surrogateescape")
        records.append(Record(record_kind, key, body[key_length:], stamp))
        position = end
    boot_id = boot.rstrip(b"\0").decode("ascii", "replace")
    return LogContents(path, boot_id, checkpoint_ns, records)


def unflushed(logs: Sequence[LogContents]) -> Unflushed:
    """What the logs of one boot (all their processes gone) say may be missing on disk.

    A message stored before the latest checkpoint of any of them is left out: that
    checkpoint flushed the whole filesystem after its file was written.
    """
    covered = max((log.checkpoint_ns for log in logs), default=0)
    found = Unflushed()
    for log in logs:
        for record in log.records:
            if record.kind is RecordKind.STORED:
                if record.time_ns > covered:
                    found.stored[record.key] = record.data
            elif record.kind is RecordKind.FINISHED:
                # Whenever it was logged: a message finished is never put back.
                found.finished.add(record.key)
            else:
                recipient = record.data.decode("utf-8", "surrogateescape")
                found.delivered.setdefault(record.key, []).append(recipient)
    for key in found.finished:
        found.stored.pop(key, None)
        found.delivered.pop(key, None)
    return found
