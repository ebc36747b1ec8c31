"""Files that say a process is alive: exclusively locked while it runs, free once it ends.

A queue's claimers and write-ahead logs are named after such files. The operating
system drops an ``flock`` when the process holding it ends, even by SIGKILL, so
whoever finds a file unlocked knows its owner is gone and may take over what it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

__all__ = ["LockedFile", "held", "owner_name", "try_lock"]


def owner_name() -> str:
    """A name for a new owner, unique among live and dead ones: ``<pid>-<12 hex digits>``."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


class LockedFile:
    """A new file at *path*, created and locked for as long as this object lives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __repr__(self) -> str:
        return f"<LockedFile {self.path}>"

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def close(self) -> None:
        """Remove the file and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def try_lock(path: Path) -> int | None:
    """An open descriptor of the file at *path* holding its lock (closing it drops the
    lock), or None when a live process holds the lock. FileNotFoundError if it is gone."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def held(path: Path) -> bool:
    """Whether a live process holds the lock on the file at *path*."""
    try:
        fd = try_lock(path)
    except FileNotFoundError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False
