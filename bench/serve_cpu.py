"""Where `mailsim serve` spends its CPU: time per message, by thread, under load.

Serves the benchmark's state-changing app (``bench/state_handlers.py``: each message
routed, its conversation's state changed in SQLite) with ``mailsim serve`` (one
process), sends it *messages* 2 KB messages with Postfix's ``smtp-source`` (10
sessions, a new connection per message), waits until every one has been delivered,
and prints the process's user and system CPU per message for each of its threads
(from ``/proc``): the event loop is the main thread; the others are the queue
writer and the delivery workers (``py-spy dump`` names them, when py-spy is
installed). CPU time, unlike throughput, hardly moves with what else the machine is
doing, so it shows where a message's cost is.

    .venv/bin/python bench/serve_cpu.py [--durability fsync|syncfs|wal|none] [--messages N]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from receive_compare import DOMAIN, SIZE, SMTP_SOURCE, free_port, running, wait_listening

BENCH = Path(__file__).resolve().parent


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """User and system seconds of each thread of *pid*, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[int, tuple[float, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        times[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return times


def thread_names(pid: int) -> dict[int, str]:
    """Python's names for the threads of *pid*, by thread id, if py-spy can tell."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return {}
    dump = subprocess.run(
        [str(spy), "dump", "--pid", str(pid), "--json"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if dump.returncode != 0:
        return {}
    return {
        int(thread["os_thread_id"]): str(thread["thread_name"] or thread["thread_id"])
        for thread in json.loads(dump.stdout)
        if thread.get("os_thread_id")
    }


def send(port: int, messages: int) -> float:
    command = [SMTP_SOURCE, "-s", "10", "-m", str(messages), "-l", str(SIZE)]
    command += ["-f", "sender@client.example", "-t", f"user@{DOMAIN}", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--durability", default="syncfs", choices=["fsync", "syncfs", "wal", "none"]
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailsim-cpu-") as workdir:
        project = Path(workdir)
        shutil.copy(BENCH / "state_handlers.py", project / "state_handlers.py")
        (project / "mailsim.toml").write_text(
            f'[app]\nhostname = "{DOMAIN}"\nhandlers = ["state_handlers"]\n\n'
            f'[receiver]\nqueue = "run/incoming"\ndurability = "{options.durability}"\n'
            'workers = 4\n\n[database]\nurl = "sqlite:///run/state.sqlite3"\n'
        )
        port = free_port()
        command = [str(Path(sys.executable).parent / "mailsim"), "serve", "--port", str(port)]
        command += ["--log-level", "warning"]
        with running(command, port, "mailsim serve", cwd=project) as process:
            wait_listening(port, process, "mailsim serve")
            send(port, 200)  # warm up: imports, caches, the database file
            queue = project / "run" / "incoming"
            before = thread_times(process.pid)
            started = time.perf_counter()
            received = send(port, options.messages)
            while os.listdir(queue / "new") or os.listdir(queue / "cur"):
                time.sleep(0.05)
            delivered = time.perf_counter() - started
            after = thread_times(process.pid)
            names = thread_names(process.pid)
    per_message = collections.Counter[str]()
    for tid, (user, system) in after.items():
        was_user, was_system = before.get(tid, (0.0, 0.0))
        name = names.get(tid, "MainThread" if tid == process.pid else f"thread {tid}")
        per_message[f"{name} user"] += (user - was_user) / options.messages * 1e6
        per_message[f"{name} system"] += (system - was_system) / options.messages * 1e6
    print(
        f"mailsim serve, durability {options.durability}: {options.messages} messages, "
        f"received at {options.messages / received:,.0f}/s, "
        f"all delivered at {options.messages / delivered:,.0f}/s"
    )
    print(f"{'thread':<40}{'µs CPU per message':>20}")
    for name, micros in per_message.most_common():
        if micros >= 1:
            print(f"{name:<40}{micros:>20,.0f}")
    print(f"{'all threads':<40}{sum(per_message.values()):>20,.0f}")
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "durability": options.durability,
                    "messages": options.messages,
                    "received": options.messages / received,
                    "delivered": options.messages / delivered,
                    "per_message": dict(per_message.most_common()),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
