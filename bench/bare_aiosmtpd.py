"""The bare aiosmtpd reference: an SMTP server on 127.0.0.1:PORT whose handler only
answers 250 and discards the message (aiosmtpd's own reading and parsing, no more).

    .venv/bin/python bench/bare_aiosmtpd.py PORT

Runs until SIGTERM or SIGINT. Part of ``bench/receive_compare.py``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from aiosmtpd.smtp import SMTP


class Discard:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = Discard()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bare-aiosmtpd", loop=loop),
        "127.0.0.1",
        port,
        backlog=100,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    print("listening", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
