"""Messages per second a Receiver answers 250, durable (fsync) against not, in one run.

A Receiver (SMTP, 4 handler threads, a trivial stateless handler) runs in a
process of its own; this process plays *sessions* concurrent clients, each
sending 2 KB messages over one connection (or a new connection per message with
--new-connections), pipelining MAIL, RCPT and DATA. The figure is 250 replies
per second, measured once with ``durability = "fsync"`` and once with
``"none"``; their ratio is what durability costs when sessions share flushes
(group commit). A writer job is a message to store or (with fsync) a worker's
bookkeeping to flush; each batch of jobs costs one round of fsyncs. Absolute
figures compare between runs on one machine only.

    .venv/bin/python bench/receive_throughput.py [--messages N] [--sessions 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Literal

from mailsim_runtime import App, route, stateless
from mailsim_runtime.mail import MailRequest

HOST = "bench.example.com"
BODY = ("x" * 76 + "\r\n") * 24  # with the headers, about 2 KB


@route("(user)@(host)", user=".+", host=".+")
@stateless
def DISCARD(message: MailRequest, user: str, host: str) -> None:
    """The handler does nothing: the receiver's own work is measured."""


def serve(durability: str, queue: str, report: Connection) -> None:
    """The server process: a Receiver until SIGTERM, then its writer's figures."""
    from mailsim_runtime.server import Receiver

    app = App([sys.modules[__name__]], hostname=HOST)
    mode: Literal["fsync", "none"] = "fsync" if durability == "fsync" else "none"
    receiver = Receiver(app, port=0, queue=queue, durability=mode, workers=4)
    receiver.serve_forever(grace=5, ready=lambda r: report.send(r.port))
    writer = receiver.intake.writer
    report.send((writer.items, writer.batches, receiver.dispatcher.delivered))


async def expect(reader: asyncio.StreamReader, code: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line.startswith(code):
            raise RuntimeError(f"expected {code!r}, got {line!r}")
        if line[3:4] != b"-":
            return


async def session(port: int, number: int, count: int, new_connections: bool) -> None:
    message = (
        f"From: s{number}@client.example\r\nTo: u{number}@{HOST}\r\n"
        f"Subject: bench {number}\r\n\r\n{BODY}.\r\n"
    ).encode()
    envelope = f"MAIL FROM:<s{number}@client.example>\r\nRCPT TO:<u{number}@{HOST}>\r\nDATA\r\n"
    reader = writer = None
    for _ in range(count):
        if writer is None or new_connections:
            if writer is not None:
                writer.write(b"QUIT\r\n")
                writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await expect(reader, b"220")
            writer.write(b"EHLO client.example\r\n")
            await expect(reader, b"250")
        assert reader is not None
        writer.write(envelope.encode())
        await expect(reader, b"250")
        await expect(reader, b"250")
        await expect(reader, b"354")
        writer.write(message)
        await expect(reader, b"250")
    if writer is not None:
        writer.write(b"QUIT\r\n")
        await writer.drain()
        writer.close()


async def clients(port: int, sessions: int, messages: int, new_connections: bool) -> float:
    per_session = messages // sessions
    started = time.perf_counter()
    await asyncio.gather(*(session(port, n, per_session, new_connections) for n in range(sessions)))
    return per_session * sessions / (time.perf_counter() - started)


def measure(
    durability: str, sessions: int, messages: int, new_connections: bool
) -> tuple[float, int, int]:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
        here, there = context.Pipe()
        process = context.Process(target=serve, args=(durability, folder + "/incoming", there))
        process.start()
        port = here.recv()
        rate = asyncio.run(clients(port, sessions, messages, new_connections))
        assert process.pid is not None
        os.kill(process.pid, signal.SIGTERM)
        items, batches, _ = here.recv()
        process.join(30)
    return rate, items, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--new-connections", action="store_true")
    options = parser.parse_args()
    mode = "a new connection per message" if options.new_connections else "reused connections"
    print(f"{options.messages} messages of ~2 KB, {options.sessions} sessions, {mode}")
    results = {}
    for durability in ("none", "fsync"):
        rate, items, batches = measure(
            durability, options.sessions, options.messages, options.new_connections
        )
        results[durability] = rate
        print(
            f"  durability={durability:5}  {rate:7.0f} msg/s  "
            f"({items} writer jobs in {batches} batches, {items / max(batches, 1):.1f} a batch)"
        )
    print(f"  durable / none = {results['fsync'] / results['none']:.2f}")


if __name__ == "__main__":
    main()
