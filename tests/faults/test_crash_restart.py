"""Crash and restart: a QueueReceiver process SIGKILLed again and again in the middle of
its messages, a writer killed between writing a message and making it visible, and a
queue file cut short. Nothing is lost, nothing half-written reaches a handler.

(`tests/runtime/test_crash.py` does the same to `mailsim serve` while clients send.)

Delivery is **at least once**: a process killed after a handler finished but before
it recorded that (the journal entry, or the removal of the message) runs that handler
again after the restart. The test measures how often, and bounds it by what can be
in flight at one kill (kills times workers); a kill in the middle of a handler, which is
where almost all of them land, is followed by exactly one complete delivery.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from faults_support import DOMAIN, message, recording_app, wait_until
from mailsim_runtime.inbound import encode_stored
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.workers import QueueReceiver

KILLS = 4
WORKERS = 2
MESSAGES = 40

WORKER = """
import hashlib, os, signal, sys, threading, time
from mailsim_runtime import App, route, stateless
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.workers import QueueReceiver

folder, log = sys.argv[1], sys.argv[2]

def note(text):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, text.encode())  # one write: a line is there whole or not at all
    finally:
        os.close(fd)

@route("(user)@example.com", user=".+")
@stateless
def RECORD(message, user):
    which = f"{message['Message-ID']}>{message.recipient}"
    note(f"start {which}\\n")
    body = message.original.split(b"\\r\\n\\r\\n", 1)[1]
    payload, _, digest = body.rpartition(b"sha256=")
    whole = hashlib.sha256(payload).hexdigest().encode() == digest.strip()
    time.sleep(0.03)  # the handler's work: where most kills land
    note(f"done {which} {'ok' if whole else 'bad'}\\n")

app = App([sys.modules[__name__]], hostname="example.com", undeliverable=MemoryQueue())
receiver = QueueReceiver(app, folder, workers=int(sys.argv[3]), poll=0.05).start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait(120)
receiver.stop()
"""


def body_for(number: int) -> bytes:
    payload = (f"message {number}\r\n" + "x" * 70 + "\r\n") * 10
    return f"{payload}sha256={hashlib.sha256(payload.encode()).hexdigest()}\r\n".encode()


def dropped_by_an_mta(number: int) -> tuple[bytes, list[str]]:
    """A message as another MTA leaves it in the Maildir: envelope in its headers."""
    recipients = [f"u{number}@{DOMAIN}", f"v{number}@{DOMAIN}"][: 1 + number % 2]
    head = (
        f"Return-Path: <s@client.example>\r\nTo: {', '.join(recipients)}\r\n"
        f"Message-ID: <{number}@client.example>\r\nSubject: {number}\r\n\r\n"
    )
    return head.encode() + body_for(number), [f"<{number}@client.example>>{r}" for r in recipients]


class Worker:
    def __init__(self, folder: Path, log: Path, script: Path) -> None:
        self.args = [sys.executable, str(script), str(folder), str(log), str(WORKERS)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def lines(log: Path) -> tuple[Counter[str], Counter[str], list[str]]:
    """Starts and completions per delivery, and the completions' verdicts."""
    text = log.read_text() if log.exists() else ""
    starts: Counter[str] = Counter()
    dones: Counter[str] = Counter()
    verdicts = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "start":
            starts[rest] += 1
        elif kind == "done":
            which, _, verdict = rest.rpartition(" ")
            dones[which] += 1
            verdicts.append(verdict)
    return starts, dones, verdicts


def test_a_queue_receiver_killed_mid_message_loses_nothing(tmp_path: Path) -> None:
    folder, log, script = tmp_path / "maildir", tmp_path / "delivered.txt", tmp_path / "w.py"
    script.write_text(textwrap.dedent(WORKER))
    queue = MaildirQueue(folder)
    expected: set[str] = set()
    for number in range(MESSAGES):
        data, deliveries = dropped_by_an_mta(number)
        queue.push(data)  # tmp/ -> fsync -> new/, as an MTA delivers
        expected.update(deliveries)
    # What an MTA killed while writing leaves: a file in tmp/, never to be read.
    (folder / "tmp" / "1700000000.half.example").write_bytes(
        b"Return-Path: <s@client.example>\r\nTo: half@example.com\r\nSubject: half\r\n\r\npar"
    )
    worker = Worker(folder, log, script)
    worker.start()
    mid_message = 0
    try:
        for kill in range(KILLS):
            done_before = sum(lines(log)[1].values())

            def in_flight(done_before: int = done_before) -> bool:
                starts, dones, _ = lines(log)
                # Some progress since the last kill, and a handler in the middle of one.
                return sum(dones.values()) >= done_before + 3 and starts - dones != Counter()

            wait_until(in_flight, timeout=30, what=f"a handler mid-message before kill {kill}")
            worker.kill()
            starts, dones, _ = lines(log)
            unfinished = sum((starts - dones).values())  # ever, this kill's included
            mid_message = unfinished
            worker.start()
        wait_until(lambda: expected <= set(lines(log)[1]), timeout=60, what="all delivered")
        wait_until(lambda: not queue.keys() and not queue.claimed(), what="the queue drained")
    finally:
        assert worker.stop() == 0
    starts, dones, verdicts = lines(log)
    assert set(dones) == expected, "lost, or a delivery nobody sent"
    assert set(verdicts) == {"ok"}, "a half-written message reached a handler"
    assert "half@example.com" not in log.read_text()
    repeats = sum(count - 1 for count in dones.values())
    assert repeats <= KILLS * WORKERS, f"{repeats} repeated deliveries"
    assert os.listdir(folder / "tmp") == ["1700000000.half.example"]
    # Each kill is aimed at a handler seen mid-message, but it may finish in the instant
    # between the look and the kill: what must hold is that kills did land mid-message.
    assert mid_message >= 1, "no kill interrupted a handler: the test proved nothing"
    print(
        f"\n{len(expected)} deliveries expected, {sum(dones.values())} completed, "
        f"{repeats} repeated; {KILLS} kills interrupted {mid_message} handlers mid-message"
    )


KILLED_WRITER = """
import os, signal, sys
from mailsim_runtime.inbound import encode_stored
from mailsim_runtime.queue import MaildirQueue

queue = MaildirQueue(sys.argv[1])
# Die the moment the first message is written, before any is made visible in new/.
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
stored = [
    encode_stored("s@client.example", [f"k{n}@example.com"], None, b"Subject: k\\r\\n\\r\\nk\\r\\n")
    for n in range(3)
]
queue.push_many(stored)
"""


def test_a_writer_killed_before_the_rename_leaves_nothing_to_deliver(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    process = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(folder)],
        timeout=60,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL
    assert len(os.listdir(folder / "tmp")) == 3 and not os.listdir(folder / "new")
    queue = MaildirQueue(folder)
    kept = encode_stored("s@client.example", [f"a@{DOMAIN}"], None, message("kept"))
    queue.push(kept)
    app, recorder = recording_app()
    with QueueReceiver(app, queue, workers=2, poll=0.05) as receiver:
        recorder.wait_for(1)
        assert receiver.wait_idle(10)
    assert [item["Subject"] for item in recorder.items] == ["kept"]  # never the k messages


def test_a_queue_file_cut_short_never_reaches_a_handler(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "incoming")
    whole = encode_stored("s@client.example", [f"a@{DOMAIN}"], None, message("whole"))
    cut = encode_stored("s@client.example", [f"b@{DOMAIN}"], None, message("cut", "z" * 500))
    queue.push(whole)
    key = queue.push(cut)
    path = queue.path / "new" / key
    path.write_bytes(path.read_bytes()[:-200])  # a disk that lied about its fsync
    app, recorder = recording_app()
    with QueueReceiver(app, queue, workers=2, poll=0.05) as receiver:
        recorder.wait_for(1)
        wait_until(lambda: len(app.router.undeliverable) == 1)  # type: ignore[arg-type]
        assert receiver.wait_idle(10)
    assert [item["Subject"] for item in recorder.items] == ["whole"]
    undeliverable = app.router.undeliverable
    assert undeliverable is not None
    [kept] = [undeliverable.get(k) for k in undeliverable]  # type: ignore[attr-defined]
    assert kept is not None and b"the file is cut short" in kept
