"""Background servers for development: pid files and logs in the project's ``run/``.

A background server is a ``mailsim`` command started in a session of its own,
its output appended to ``run/<name>.log``. It writes ``run/<name>.pid`` itself
once it listens, and removes it when it exits, so a pid file present means
"listening" unless its process is gone (a crash or SIGKILL: the file is then
stale and removed by whoever notices).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mailsim_runtime.config import Config

__all__ = [
    "alive",
    "log_path",
    "pid_path",
    "remove_pid_file",
    "running_pid",
    "setup_logging",
    "spawn",
    "terminate",
    "wait_ready",
    "write_pid_file",
]

LOG_LEVELS = ("debug", "info", "warning", "error")

# Run by an intermediate interpreter that exits at once, so the server is not
# the child of whoever ran `mailsim start` (no zombie, no controlling terminal).
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,"
    " stderr=log, start_new_session=True)\n"
    "print(child.pid)\n"
)
_MAILSIM = "import sys; from mailsim.cli import main; sys.exit(main(prog_name='mailsim'))"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`setup_logging` adds (and replaces when called again)."""


def setup_logging(level: str) -> None:
    """Log lines to stderr at *level*, each with its time, process and source."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # aiosmtpd (under SmtpSink) logs every command at INFO: only worth seeing when debugging.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def pid_path(config: Config, name: str) -> Path:
    return config.root / "run" / f"{name}.pid"


def log_path(config: Config, name: str) -> Path:
    return config.root / "run" / f"{name}.log"


def alive(pid: int) -> bool:
    """Whether process *pid* exists and has not ended (a zombie has ended)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False  # our own child, just reaped
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def running_pid(path: Path) -> int | None:
    """The pid in *path* if that process runs; a stale file is removed."""
    pid = read_pid(path)
    if pid is None:
        if path.exists():
            path.unlink(missing_ok=True)
        return None
    if alive(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def write_pid_file(path: Path) -> None:
    """Write this process's pid to *path* (atomically: a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{os.getpid()}\n")
    os.replace(temporary, path)


def remove_pid_file(path: Path) -> None:
    """Remove *path* if it still names this process."""
    if read_pid(path) == os.getpid():
        path.unlink(missing_ok=True)


def spawn(arguments: Sequence[str], *, log: Path, cwd: Path) -> int:
    """Start ``mailsim <arguments>`` in the background, output appended to *log*; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    launched = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log), sys.executable, "-c", _MAILSIM, *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if launched.returncode != 0 or not launched.stdout.strip().isdigit():
        raise OSError(f"could not start a background process: {launched.stderr.strip()}")
    return int(launched.stdout.strip())


def last_line(log: Path) -> str:
    """The last non-empty line of *log* (what a failed server said last)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "(empty log)"


def wait_ready(pid_file: Path, pid: int, timeout: float) -> bool:
    """Wait until process *pid* has written *pid_file* (True), or exited (False).

    Raises TimeoutError when neither happens within *timeout* seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pid(pid_file) == pid:
            return True
        if not alive(pid):
            return False
        time.sleep(0.05)  # polling another process's progress: there is nothing to wait on
    raise TimeoutError(f"not listening after {timeout:g} s")


def terminate(pid: int, timeout: float, *, force: bool = False) -> bool:
    """SIGTERM *pid* and wait up to *timeout* seconds for it to end; with *force*,
    SIGKILL it then. Whether it ended."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            if not force:
                return False
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            force = False
            deadline = time.monotonic() + 10
        time.sleep(0.05)  # as in wait_ready: another process, nothing to wait on
    return True
