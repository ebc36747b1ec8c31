"""A copy of a project served by ``mailsim serve``, for running specs live.

Used by the live tests and the live-vs-world benchmark, and usable in a project's
own CI: the copy's ``[receiver]`` listens on a free loopback port and its
``[relay]`` points at another, where ``mailsim run --live`` starts its sink.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mailsim_runtime.config import load_config

from mailsim.live.smtp import Endpoint

__all__ = ["ServedProject", "free_port", "serve_copy"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _without_tables(text: str, names: set[str]) -> str:
    """A TOML text without the tables *names* (and their sub-tables)."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        header = re.match(r"\s*\[+\s*([\w.]+)\s*\]+", line)
        if header:
            skipping = header.group(1).split(".")[0] in names
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


@dataclass
class ServedProject:
    """A running ``mailsim serve`` of a project copy."""

    project: Path
    address: Endpoint  # where the server listens
    sink: Endpoint  # where its relay delivers: start the run's sink here
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.project / "serve.log"

    @property
    def state_url(self) -> str:
        """The served app's state database, for ``mailsim run --state-url``."""
        return load_config(self.project).database.url

    def run_live(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``mailsim run --live`` against this server, from the project folder."""
        return subprocess.run(
            [_mailsim(), "run", "--live", str(self.address), "--sink", str(self.sink), *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _mailsim() -> str:
    return str(Path(sys.executable).parent / "mailsim")


@contextmanager
def serve_copy(
    project: Path, workdir: Path, *, start_timeout: float = 60, retry_first: str = "1s"
) -> Iterator[ServedProject]:
    """Copy *project* into *workdir*, serve it, and stop it when the block ends."""
    copy = workdir / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("run", "__pycache__"))
    receiver, sink = free_port(), free_port()
    config = copy / "mailsim.toml"
    config.write_text(
        _without_tables(config.read_text(), {"receiver", "relay"})
        + f'\n[receiver]\nhost = "127.0.0.1"\nport = {receiver}\n'
        + f'\n[relay]\nhost = "127.0.0.1"\nport = {sink}\nretry_first = "{retry_first}"\n'
    )
    with (copy / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [_mailsim(), "serve", "--project", str(copy), "--log-level", "info"],
            cwd=copy,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", receiver), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"mailsim serve of {copy} did not start:\n"
                            + (copy / "serve.log").read_text()
                        ) from None
                    time.sleep(0.05)  # polling for the port, bounded by the deadline
            yield ServedProject(
                copy, Endpoint("127.0.0.1", receiver), Endpoint("127.0.0.1", sink), process
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
