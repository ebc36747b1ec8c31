"""What the fault tests share (no tests here): an app that records its deliveries, a
receiver on a free loopback port, a byte-exact SMTP client, deadlines instead of
sleeps, and a tiny tmpfs to fill up.

Every wait is a deadline on a condition; every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.receiving import (
    DOMAIN,
    Raw,
    Recorder,
    free_port,
    message,
    receiver,
    recording_app,
    send_one,
    wait_until,
)


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


# The shared helpers are re-exported: the tests import everything from here.
__all__ = [
    "DOMAIN",
    "Raw",
    "Recorder",
    "free_port",
    "message",
    "queue_empty",
    "receiver",
    "recording_app",
    "remount",
    "send_one",
    "tmpfs",
    "wait_until",
]
