"""Message queues: a crash-safe Maildir queue and an in-memory one with the same API.

A message pushed to a :class:`MaildirQueue` is written to ``tmp/``, flushed to disk,
renamed into ``new/`` and the directory flushed, so once ``push`` returns the message
survives a crash (unless the queue was opened with ``durable=False``). How it is
flushed is the queue's *sync* method: ``"fsync"`` (each file and folder; portable) or
``"syncfs"`` (one ``syncfs(2)`` of the queue's filesystem per batch; Linux). A message is
taken out by renaming it from ``new/`` into ``cur/``: a rename succeeds for exactly
one taker, so any number of threads and processes can pop from one queue. Messages
over ``max_size`` are moved to ``oversize/`` when met, never silently lost.

A receiver that must not lose a message once it is taken uses :meth:`MaildirQueue.claim`
instead: the message stays in ``cur/`` (named after the claiming :class:`QueueOwner`)
until :meth:`MaildirQueue.finish` removes it, and :meth:`MaildirQueue.recover` puts
back in line whatever a dead owner left claimed. Recipients already delivered are
recorded in ``delivered/`` so that a message is not delivered twice to them after a
crash. :meth:`MaildirQueue.push_many`, :meth:`MaildirQueue.record_delivered` and
:meth:`MaildirQueue.finish_many` make many changes durable with one flush of each
folder (group commit).

A message that is done with is not deleted but moved to ``spare/`` (up to *spares*
files), and a new message is written over a spare file: creating and deleting a file
per message is the dearest thing a busy queue does to an ext4 filesystem (the inode
allocator steps over every recently freed inode; measured on our machines, 370 to 440 µs
per message created and deleted against 75 to 90 µs written over a spare). A spare file
keeps its old message's bytes until it is reused; ``spares=0`` deletes instead, and
:meth:`MaildirQueue.remove` always deletes.

Both queues are also :class:`~mailsim_runtime.routing.Sink` objects: pushing a
:class:`~mailsim_runtime.mail.MailRequest` with a reason records its envelope in
``Return-Path``, ``Delivered-To`` and ``X-Mailsim-Reason`` lines, as a local
delivery agent would.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import fcntl
import functools
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, get_args

from mailsim_runtime.locks import LockedFile, held, owner_name
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.wal import (
    CHECKPOINT_EVERY,
    LOG_SIZE,
    SUFFIX,
    RecordKind,
    Unflushed,
    WriteAheadLog,
    current_boot_id,
    read_log,
    unflushed,
)

__all__ = [
    "Claim",
    "MaildirQueue",
    "MemoryQueue",
    "QueueOwner",
    "SyncMethod",
    "as_queue_bytes",
    "syncfs_available",
]

log = logging.getLogger("mailsim.queue")

_SUBFOLDERS = ("tmp", "new", "cur", "oversize", "spare")
_DELIVERED = "delivered"  # per-message journals of the recipients already delivered to
_OWNERS = "owners"  # one locked file per live claimer
_WAL = "wal"  # the write-ahead logs of processes storing with sync="wal"
_CLAIMED_BY = ":"  # cur/<key>:<owner>; a key never holds one
# An owner's name. Anything else in cur/ is not a claim: a message pop() is taking,
# or, in a Maildir a mail client also reads, one it has read ("<key>:2,S").
_OWNER_NAME = re.compile(r"\d+-[0-9a-f]{12}")

SyncMethod = Literal["fsync", "syncfs", "wal"]
_FSYNC_THREADS = 8  # fsyncs of one batch in flight at once
SPARES = 256  # spent message files a queue keeps to write new messages into
_SPARE_RESCAN = 1.0  # seconds between looks into spare/ for files other processes left


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
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = True,
        max_size: int | None = None,
        sync: SyncMethod = "fsync",
        spares: int = SPARES,
        checkpoint_every: float = CHECKPOINT_EVERY,
        log_size: int = LOG_SIZE,
    ) -> None:
        if sync not in get_args(SyncMethod):
            raise ValueError(f"sync must be one of {get_args(SyncMethod)}, not {sync!r}")
        if sync != "fsync" and not syncfs_available():
            raise ValueError(f"sync={sync!r} needs Linux's syncfs(2), not found in this C library")
        self.path = Path(path)
        self.durable = durable
        self.max_size = max_size
        self.sync = sync
        self._serial = itertools.count()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.spares = spares
        self._spare_names: collections.deque[str] = collections.deque()
        self._spares_seen = 0.0  # when spare/ was last listed
        self.checkpoint_every = checkpoint_every
        self.log_size = log_size
        self._log: WriteAheadLog | None = None  # this process's, opened when first needed
        self._log_pid = 0
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

    def _retire(self, path: Path) -> bool:
        """Take the file at *path* out of the queue: into ``spare/`` while there is
        room, else deleted. False if it was not there."""
        try:
            if len(self._spare_names) < self.spares:
                os.rename(path, self.path / "spare" / path.name)
                self._spare_names.append(path.name)
            else:
                os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def _open_for_writing(self, temporary: Path) -> BinaryIO:
        """A file at *temporary* to write a new message into: a spare one moved
        there when there is one, else a new one."""
        if not self._spare_names and self.spares:
            now = time.monotonic()
            if now - self._spares_seen >= _SPARE_RESCAN:
                # Other processes sharing the queue leave spares this one does not know of.
                self._spares_seen = now
                self._spare_names.extend(os.listdir(self.path / "spare"))
        while self._spare_names:
            try:
                name = self._spare_names.popleft()
            except IndexError:
                break  # taken by another thread meanwhile
            try:
                os.rename(self.path / "spare" / name, temporary)
            except FileNotFoundError:
                continue  # another process took it first
            return open(temporary, "r+b")
        return open(temporary, "xb")

    def _fsync_dir(self, folder: Path) -> None:
        if self.sync == "syncfs":
            self._syncfs()
            return
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _syncfs(self) -> None:
        # One flush of the whole filesystem costs about what one fsync does, and a
        # batch of ten files with their folder needs one, not eleven (BENCHMARKS.md).
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if syncfs_available():
                syncfs(fd)
            else:
                os.sync()  # a queue opened elsewhere with sync="wal", recovered here
        finally:
            os.close(fd)

    def log(self) -> WriteAheadLog:
        """This process's write-ahead log, in ``wal/`` (opened when first needed)."""
        with self._pool_lock:
            if self._log is None or self._log_pid != os.getpid():
                # A process started by fork() must not write into its parent's log.
                self._log = WriteAheadLog(
                    self.path / _WAL,
                    syncfs,
                    size=self.log_size,
                    checkpoint_every=self.checkpoint_every,
                )
                self._log_pid = os.getpid()
            return self._log

    def maintain(self) -> float | None:
        """Checkpoint the write-ahead log if one is due. Returns the seconds until the
        next one is due, or None when nothing awaits one (or there is no log)."""
        current = self._log
        if current is None or self._log_pid != os.getpid():
            return None
        due = current.due_in()
        if due == 0.0:
            current.checkpoint()
            return None
        return due

    def close(self) -> None:
        """Checkpoint this process's write-ahead log and remove it, if it has one.
        The queue stays usable: a new log is opened when next needed."""
        with self._pool_lock:
            current, self._log = self._log, None
        if current is not None and self._log_pid == os.getpid():
            current.close()

    def _fsync_all(self, fds: Sequence[int]) -> None:
        if self.sync == "syncfs":
            if fds:
                self._syncfs()
            return
        if len(fds) > 1:
            with self._pool_lock:
                if self._pool is None:
                    # Its threads only wait in the kernel, and start when first needed.
                    self._pool = ThreadPoolExecutor(
                        _FSYNC_THREADS, thread_name_prefix="mailsim-fsync"
                    )
        fsync_all(fds, self._pool)

    def push(self, message: bytes | MailRequest | MailResponse, reason: str | None = None) -> str:
        """Store *message*; returns its key. Durable (fsync'd) before it returns."""
        return self.push_many([as_queue_bytes(message, reason)])[0]

    def push_many(self, messages: Sequence[bytes]) -> list[str]:
        """Store every message of *messages* with one flush; their keys.

        Each is written to ``tmp/`` and fsync'd before any is renamed into ``new/``,
        so the directory is flushed once for the lot; with ``sync="wal"`` the files
        are not flushed at all, and the batch is appended to the write-ahead log
        instead (:mod:`mailsim_runtime.wal`). Nothing is stored if any write fails.
        """
        wal = self.log() if self.durable and self.sync == "wal" else None
        logged: list[tuple[str, bytes]] = []  # the batch, when the log takes it
        written: list[tuple[str, Path]] = []
        handles = []
        try:
            try:
                for data in messages:
                    key = self._unique()
                    temporary = self.path / "tmp" / key
                    handle = self._open_for_writing(temporary)
                    handles.append(handle)
                    written.append((key, temporary))
                    handle.write(data)
                    handle.truncate()  # what is left of a spare file's last message
                for handle in handles:
                    handle.flush()
                if wal is not None:
                    batch = [(key, data) for (key, _), data in zip(written, messages, strict=True)]
                    logged = batch if wal.fits(batch) else []
                if self.durable and not logged:
                    # All written first, then fsync'd at the same time: the
                    # filesystem joins concurrent fsyncs into one journal commit,
                    # so a batch costs about one flush of the disk, not one each.
                    self._fsync_all([handle.fileno() for handle in handles])
            finally:
                for handle in handles:
                    handle.close()
            for key, temporary in written:
                os.rename(temporary, self.path / "new" / key)
            if wal is not None and logged:
                # After the renames: a checkpoint that starts later covers them.
                wal.store(logged)
        except BaseException:
            for key, temporary in written:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / "new" / key)
            raise
        if self.durable and written and not logged:
            self._fsync_dir(self.path / "new")
        return [key for key, _ in written]

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
        """Delete message *key* (not kept as a spare: whoever removes one wants it gone)."""
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
            self._retire(claimed)
            return key, data
        return None

    def oversize(self) -> list[str]:
        return sorted(os.listdir(self.path / "oversize"))

    # Claims: taking a message without removing it ----------------------------------

    def owner(self) -> QueueOwner:
        """A new :class:`QueueOwner` for this queue (close it when done claiming)."""
        return QueueOwner(self.path / _OWNERS)

    def claim(self, key: str | None = None, owner: QueueOwner | None = None) -> Claim | None:
        """Take message *key* (or the oldest) out of line, leaving it in ``cur/``.

        The message stays there until :meth:`finish` (or :meth:`release`); if its
        *owner* dies first, :meth:`recover` puts it back. None when the message
        is gone (another taker was first) or the queue is empty.
        """
        for candidate in [key] if key is not None else self.keys():
            name = f"{candidate}{_CLAIMED_BY}{owner.name}" if owner is not None else candidate
            claimed = self.path / "cur" / name
            try:
                os.rename(self.path / "new" / candidate, claimed)
            except FileNotFoundError:
                continue  # another taker was first
            if self.max_size is not None and claimed.stat().st_size > self.max_size:
                os.rename(claimed, self.path / "oversize" / candidate)
                log.warning(
                    "%s: message %s is over %d bytes; set aside in oversize/",
                    self.path,
                    candidate,
                    self.max_size,
                )
                continue
            return Claim(candidate, name, claimed.read_bytes())
        return None

    def claimed(self) -> list[str]:
        """File names in ``cur/`` of claims: messages taken and not yet finished."""
        return sorted(
            name
            for name in os.listdir(self.path / "cur")
            if _OWNER_NAME.fullmatch(name.partition(_CLAIMED_BY)[2])
        )

    def release(self, claim: Claim) -> bool:
        """Put a claimed message back in line (it keeps its delivery journal)."""
        try:
            os.rename(self.path / "cur" / claim.name, self.path / "new" / claim.key)
        except FileNotFoundError:
            return False
        return True

    def finish(self, claim: Claim) -> None:
        """Remove a claimed message for good, with its delivery journal."""
        self.finish_many([claim])

    def finish_many(self, claims: Iterable[Claim], *, flush: bool = True) -> list[Path]:
        """:meth:`finish` for several messages, with one flush of ``cur/``.

        With ``flush=False`` nothing is fsync'd: the paths that need it are
        returned, for :meth:`flush` to make durable later (with others').
        """
        claims = list(claims)
        for claim in claims:
            self._retire(self.path / "cur" / claim.name)
        for claim in claims:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / _DELIVERED / claim.key)
        if self.durable and self.sync == "wal":
            # Flushed with the next batch stored or the next checkpoint.
            self.log().note(RecordKind.FINISHED, [(claim.key, b"") for claim in claims])
            return []
        pending = [self.path / "cur"] if self.durable and claims else []
        if flush:
            self.flush(pending)
            return []
        return pending

    def record_delivered(
        self, entries: Iterable[tuple[str, str]], *, flush: bool = True
    ) -> list[Path]:
        """Note that message *key* reached *recipient*, for each (key, recipient).

        After a crash, :meth:`delivered` tells which recipients of a message not
        to deliver it to again. The note is written at once (a process crash
        cannot lose it) and fsync'd before this returns; with ``flush=False`` the
        paths still to fsync are returned instead (see :meth:`finish_many`).
        """
        folder = self.path / _DELIVERED
        folder.mkdir(exist_ok=True)
        entries = list(entries)
        pending: dict[Path, None] = {}
        for key, recipient in entries:
            journal = folder / key
            if not journal.exists():
                pending[folder] = None  # a new entry in the folder
            self._append_delivered(key, [recipient])
            pending[journal] = None
        if self.durable and self.sync == "wal":
            notes = [(key, _journal_line(recipient)) for key, recipient in entries]
            self.log().note(RecordKind.DELIVERED, notes)
            return []
        paths = list(pending) if self.durable else []
        if flush:
            self.flush(paths)
            return []
        return paths

    def flush(self, paths: Iterable[Path]) -> None:
        """fsync each file or folder of *paths* once (the files, then the folders);
        gone ones are skipped. With ``sync="syncfs"`` or ``"wal"``, one flush of the
        filesystem."""
        unique = set(paths)
        if self.sync != "fsync":
            if unique:
                self._syncfs()
            return
        folders = {path for path in unique if path.is_dir()}
        for group in (unique - folders, folders):
            fds = []
            try:
                for path in sorted(group):
                    try:
                        fds.append(os.open(path, os.O_RDONLY))
                    except FileNotFoundError:
                        continue  # finished (and removed) since: nothing left to keep
                self._fsync_all(fds)
            finally:
                for fd in fds:
                    os.close(fd)

    def _append_delivered(self, key: str, recipients: Iterable[str]) -> None:
        with open(self.path / _DELIVERED / key, "a+b") as handle:
            lines = b"".join(_journal_line(recipient) + b"\n" for recipient in recipients)
            if handle.tell() and (handle.seek(-1, os.SEEK_END), handle.read(1))[1] != b"\n":
                lines = b"\n" + lines  # after a line a crash cut short: not a delivery
            handle.write(lines)

    def delivered(self, key: str) -> set[str]:
        """Recipients message *key* was already delivered to (see :meth:`record_delivered`)."""
        try:
            text = (self.path / _DELIVERED / key).read_bytes()
        except FileNotFoundError:
            return set()
        # A line cut short by a crash has no newline: that delivery was not recorded.
        lines = text.split(b"\n")[:-1]
        return {line.decode("utf-8", "surrogateescape") for line in lines if line}

    def recover(self, *, boot_id: str | None = None) -> int:
        """Put back in line every message whose claimer is gone; returns how many.

        A claimer is gone when its :class:`QueueOwner` lock is free: the operating
        system drops it when the process ends, even by SIGKILL. Journals of
        messages that no longer exist are removed.

        First the write-ahead logs of processes that are gone are replayed: after
        a power cut (a log written under another *boot_id* than this boot's, which
        is the default) every message they acknowledged and did not finish is put
        back as it was acknowledged, byte for byte, with the recipients it reached;
        then the filesystem is flushed and the logs removed.
        """
        self._replay_logs(current_boot_id() if boot_id is None else boot_id)
        verdicts: dict[str, bool] = {}
        recovered = 0
        for name in self.claimed():
            key, _, owner = name.partition(_CLAIMED_BY)
            if owner not in verdicts:
                verdicts[owner] = held(self.path / _OWNERS / owner)
            if verdicts[owner]:
                continue
            try:
                os.rename(self.path / "cur" / name, self.path / "new" / key)
            except FileNotFoundError:
                continue
            recovered += 1
        for owner, alive in verdicts.items():
            if not alive:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / _OWNERS / owner)
        self._drop_stale_journals()
        if recovered:
            log.warning("%s: %d claimed messages put back in line", self.path, recovered)
            if self.durable:
                self._fsync_dir(self.path / "new")
        return recovered

    def _replay_logs(self, boot_id: str) -> int:
        """Replay the logs of processes that are gone (see :meth:`recover`); returns
        how many messages had to be written back."""
        folder = self.path / _WAL
        if not folder.is_dir():
            return 0
        guard = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            # Two processes starting together must not both put back a message
            # that one of them has meanwhile delivered.
            fcntl.flock(guard, fcntl.LOCK_EX)
            dead = [path for path in sorted(folder.glob(f"*{SUFFIX}")) if not held(path)]
            if not dead:
                return 0
            logs = [read_log(path) for path in dead]
            restored = 0
            for boot in {contents.boot_id for contents in logs}:
                if boot and boot == boot_id:
                    continue  # the kernel outlived the process: its writes are all there
                same_boot = [contents for contents in logs if contents.boot_id == boot]
                restored += self._restore(unflushed(same_boot))
            # Also what the dead wrote this boot and the kernel has not flushed yet.
            self._syncfs()
            for path in dead:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            os.fsync(guard)
        finally:
            os.close(guard)
        if restored:
            log.warning("%s: %d messages written back from write-ahead logs", self.path, restored)
        return restored

    def _restore(self, lost: Unflushed) -> int:
        where: dict[str, Path] = {}
        for sub in ("new", "oversize"):
            for name in os.listdir(self.path / sub):
                where[name] = self.path / sub / name
        for name in os.listdir(self.path / "cur"):
            where[name.partition(_CLAIMED_BY)[0]] = self.path / "cur" / name
        for key in lost.finished:
            path = where.pop(key, None)
            if path is not None and path.parent.name != "oversize":
                self._retire(path)  # a finish the power cut undid
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / _DELIVERED / key)
        restored = 0
        for key, data in lost.stored.items():
            path = where.setdefault(key, self.path / "new" / key)
            try:
                if path.read_bytes() == data:
                    continue
            except FileNotFoundError:
                pass
            temporary = self.path / "tmp" / key
            temporary.write_bytes(data)
            os.replace(temporary, path)
            restored += 1
        for key, recipients in lost.delivered.items():
            if key not in where:
                continue  # finished since, in a way the log did not see
            (self.path / _DELIVERED).mkdir(exist_ok=True)
            missing = [name for name in recipients if name not in self.delivered(key)]
            if missing:
                self._append_delivered(key, missing)
        return restored

    def _drop_stale_journals(self) -> None:
        folder = self.path / _DELIVERED
        if not folder.is_dir():
            return
        journals = set(os.listdir(folder))
        if not journals:
            return
        present = set(os.listdir(self.path / "new"))
        present.update(name.partition(_CLAIMED_BY)[0] for name in self.claimed())
        for key in journals - present:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / key)

    def clear(self) -> int:
        """Remove every waiting message; returns how many."""
        removed = 0
        for key in self.keys():
            removed += self.remove(key)
        return removed


def _journal_line(recipient: str) -> bytes:
    return recipient.encode("utf-8", "surrogateescape")


def fsync_all(fds: Sequence[int], pool: ThreadPoolExecutor | None = None) -> None:
    """fsync every file descriptor of *fds*, concurrently on *pool*'s threads (in turn
    without one); returns once all are done.

    One fsync after another costs one disk flush each (milliseconds on a real disk,
    the same for the tenth file as for the first), while fsyncs that arrive
    together may be joined by the filesystem (ext4's journal, XFS's log) into one
    commit. The first error is raised, after every fsync has finished.
    """
    if pool is None or len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)
        return
    others = [pool.submit(os.fsync, fd) for fd in fds[1:]]
    error: OSError | None = None
    try:
        os.fsync(fds[0])
    except OSError as failed:
        error = failed
    for future in others:
        try:
            future.result()
        except OSError as failed:
            error = error or failed
    if error is not None:
        raise error


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    # The C library is loaded once (reading it is not state that changes).
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def syncfs_available() -> bool:
    """Whether this system has ``syncfs(2)`` (Linux, glibc or musl)."""
    return _libc_syncfs() is not None


def syncfs(fd: int) -> None:
    """Flush everything written to the filesystem holding *fd* (``syncfs(2)``).

    Since Linux 5.8 it reports the writeback errors of that filesystem, as fsync
    reports a file's; they are raised as OSError.
    """
    function = _libc_syncfs()
    if function is None:
        raise OSError(errno.ENOSYS, "syncfs(2) is not available")
    if function(fd) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


@dataclass(frozen=True)
class Claim:
    """A message taken out of line by :meth:`MaildirQueue.claim`."""

    key: str
    name: str  # its file name in cur/
    data: bytes


class QueueOwner:
    """The right to hold claimed messages, for as long as this object (and process) lives.

    It is an exclusively locked file in the queue's ``owners/`` folder; claims
    carry its name. The lock dies with the process however it ends, which is how
    :meth:`MaildirQueue.recover` tells a live claimer's messages from a dead one's.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = owner_name()
        self._lock = LockedFile(folder / self.name)

    def __repr__(self) -> str:
        return f"<QueueOwner {self.name}>"

    def close(self) -> None:
        """Give up ownership (release or finish every claim first)."""
        self._lock.close()


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
