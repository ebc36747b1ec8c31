"""Receive throughput of ``mailsim serve`` against the strongest references, in one run.

Every server listens on 127.0.0.1 and gets the same load from Postfix's
``smtp-source``: 2 KB messages, 10 sessions, first a new connection per message,
then reused connections (``-d``). The servers:

- Postfix ``smtp-sink`` (C; accepts and discards): the ceiling;
- Salmon (``salmon-mail``), its generated project (``salmon gen``) whose sample
  handler routes every address and changes state, receiving SMTP, with its accept
  backlog raised from asyncore's 5 to 100 and logging at WARNING;
- bare aiosmtpd whose handler discards (``bench/bare_aiosmtpd.py``);
- ``mailsim serve`` with ``bench/state_handlers.py`` (routes, changes state in SQLite),
  ``--log-level warning``, durable (``durability = "fsync"``: 250 only once the message
  is fsync'd; ``"syncfs"``: once the queue's filesystem is flushed) and not
  (``"none"``), with 1 process and with ``--workers N``.

The figure is messages per second: the count divided by smtp-source's wall time
(best of *rounds*, the servers measured in turn within each round, so a noisy
moment hurts every server alike). Only ratios compare between runs.

    .venv/bin/python bench/receive_compare.py [--messages N] [--rounds R]
        [--salmon bench/.salmon-venv] [--workers 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
DOMAIN = "bench.example.com"
SESSIONS = 10
SIZE = 2048
DURABLE_MODES = ("fsync", "syncfs", "wal")  # [receiver] durability values measured
START_TIMEOUT = 30.0  # seconds a server gets to listen
RUN_TIMEOUT = 300.0  # seconds one smtp-source run may take at most


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {START_TIMEOUT} s")


@contextlib.contextmanager
def running(
    command: list[str], port: int, what: str, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start *command*, wait until *port* listens, yield; then SIGTERM it (by pid)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_listening(port, process, what)
            yield process
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
            raise
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to *process* and its group (by pid): `serve --workers N` has children."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def load(port: int, messages: int, reuse: bool) -> float:
    """smtp-source's run against *port*: messages per second."""
    command = [SMTP_SOURCE, "-s", str(SESSIONS), "-m", str(messages), "-l", str(SIZE)]
    command += ["-f", "sender@client.example", "-t", f"user@{DOMAIN}", "-M", "client.example"]
    if reuse:
        command.append("-d")
    started = time.perf_counter()
    done = subprocess.run(
        [*command, f"127.0.0.1:{port}"], capture_output=True, timeout=RUN_TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"smtp-source failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}"
        )
    return messages / elapsed


# The servers ---------------------------------------------------------------------


@dataclass
class Server:
    name: str
    label: str

    @contextlib.contextmanager
    def serve(self, port: int) -> Iterator[None]:
        raise NotImplementedError
        yield


class SmtpSink(Server):
    @contextlib.contextmanager
    def serve(self, port: int) -> Iterator[None]:
        # -u nobody: smtp-sink drops root after binding.
        with running([SMTP_SINK, "-u", "nobody", f"127.0.0.1:{port}", "100"], port, self.label):
            yield


class BareAiosmtpd(Server):
    @contextlib.contextmanager
    def serve(self, port: int) -> Iterator[None]:
        command = [sys.executable, str(BENCH / "bare_aiosmtpd.py"), str(port)]
        with running(command, port, self.label):
            yield


class Salmon(Server):
    def __init__(self, name: str, label: str, venv: Path, folder: Path) -> None:
        super().__init__(name, label)
        self.venv = venv
        self.project = folder / "salmon-project"

    def prepare(self) -> None:
        """``salmon gen``, then what a deployment changes: SMTP, backlog 100, WARNING."""
        subprocess.run([str(self.venv / "bin" / "salmon"), "gen", str(self.project)], check=True)
        boot = self.project / "config" / "boot.py"
        text = boot.read_text()
        text = text.replace("LMTPReceiver", "SMTPReceiver")
        text += (
            "\n# Benchmark: asyncore's accept backlog of 5 drops most new connections\n"
            "# under load; any deployment raises it.\n"
            "settings.receiver.socket.listen(100)\n"
        )
        boot.write_text(text)
        logging_conf = self.project / "config" / "logging.conf"
        logging_conf.write_text(logging_conf.read_text().replace("level=DEBUG", "level=WARNING"))

    @contextlib.contextmanager
    def serve(self, port: int) -> Iterator[None]:
        settings = self.project / "config" / "settings.py"
        text = settings.read_text()
        start = text.index("receiver_config")
        end = text.index("\n", start)
        settings.write_text(
            text[:start] + f"receiver_config = {{'host': '127.0.0.1', 'port': {port}}}" + text[end:]
        )
        pid = self.project / "run" / "bench.pid"
        pid.unlink(missing_ok=True)
        command = [str(self.venv / "bin" / "salmon"), "start", "--no-daemon", "--force"]
        command += ["--boot", "config.boot", "--pid", str(pid)]
        with running(command, port, self.label, cwd=self.project):
            yield


class MailsimServe(Server):
    def __init__(
        self, name: str, label: str, folder: Path, durability: str, processes: int
    ) -> None:
        super().__init__(name, label)
        self.project = folder / f"mailsim-{name}"
        self.durability = durability
        self.processes = processes

    def prepare(self) -> None:
        self.project.mkdir()
        shutil.copy(BENCH / "state_handlers.py", self.project / "state_handlers.py")
        (self.project / "mailsim.toml").write_text(
            f'[app]\nhostname = "{DOMAIN}"\nhandlers = ["state_handlers"]\n\n'
            f'[receiver]\nqueue = "run/incoming"\ndurability = "{self.durability}"\n'
            "workers = 4\n\n"
            '[database]\nurl = "sqlite:///run/state.sqlite3"\n'
        )

    @contextlib.contextmanager
    def serve(self, port: int) -> Iterator[None]:
        command = [str(Path(sys.executable).parent / "mailsim"), "serve", "--port", str(port)]
        command += ["--log-level", "warning", "--workers", str(self.processes), "--grace", "5"]
        with running(command, port, self.label, cwd=self.project):
            yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes for serve --workers")
    parser.add_argument("--salmon", type=Path, default=BENCH / ".salmon-venv")
    parser.add_argument("--only", help="comma-separated server names to run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    for tool in (SMTP_SOURCE, SMTP_SINK):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is missing: bench/run --setup installs Debian's postfix")
    with tempfile.TemporaryDirectory(prefix="mailsim-bench-") as workdir:
        folder = Path(workdir)
        w = options.workers
        servers: list[Server] = [
            SmtpSink("smtp-sink", "Postfix smtp-sink (C, discards)"),
            Salmon(
                "salmon", "Salmon 3 (route + state change, backlog 100)", options.salmon, folder
            ),
            BareAiosmtpd("aiosmtpd", "bare aiosmtpd (discards)"),
            *(
                MailsimServe(
                    f"serve-{mode}{'' if processes == 1 else f'-w{processes}'}",
                    f"mailsim serve{'' if processes == 1 else f' --workers {processes}'}, "
                    + ("durability none" if mode == "none" else f"durable ({mode})"),
                    folder,
                    mode,
                    processes,
                )
                for processes in (1, w)
                for mode in ("none", *DURABLE_MODES)
            ),
        ]
        if options.only:
            wanted = set(options.only.split(","))
            servers = [s for s in servers if s.name in wanted]
        for server in servers:
            if isinstance(server, Salmon) and not (options.salmon / "bin" / "salmon").exists():
                raise SystemExit(f"no Salmon in {options.salmon}: bench/run --setup installs it")
            prepare = getattr(server, "prepare", None)
            if prepare is not None:
                prepare()
        results: dict[str, dict[str, float]] = {s.name: {"new": 0.0, "reuse": 0.0} for s in servers}
        for round_number in range(options.rounds):
            for server in servers:
                port = free_port()
                with server.serve(port):
                    load(port, min(200, options.messages), reuse=True)  # warm up
                    for mode, reuse in (("new", False), ("reuse", True)):
                        rate = load(port, options.messages, reuse)
                        best = results[server.name]
                        best[mode] = max(best[mode], rate)
                print(
                    f"  round {round_number + 1}: {server.label}: "
                    f"{results[server.name]['new']:,.0f} / {results[server.name]['reuse']:,.0f}",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"{options.messages} messages of {SIZE} bytes, {SESSIONS} sessions, smtp-source, "
        f"best of {options.rounds}"
    )
    print(f"{'server':<48}{'new conn/msg':>14}{'reused':>10}")
    for server in servers:
        figures = results[server.name]
        print(f"{server.label:<48}{figures['new']:>14,.0f}{figures['reuse']:>10,.0f}")
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "messages": options.messages,
                    "rounds": options.rounds,
                    "sessions": SESSIONS,
                    "size": SIZE,
                    "workers": options.workers,
                    "durable_modes": list(DURABLE_MODES),
                    "labels": {s.name: s.label for s in servers},
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
