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

__all__ = ["LockedFile", "held", "owner_name"]


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

    def close(self, *, remove: bool = True) -> None:
        """Drop the lock (and the file, unless *remove* is false)."""
        if self._fd is None:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def held(path: Path) -> bool:
    """Whether a live process holds the lock on the file at *path*."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock taken just above, if any
    return False
