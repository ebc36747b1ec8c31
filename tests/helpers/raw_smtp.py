"""A byte-exact SMTP/LMTP client, for tests that must say exactly what a server hears."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path


class Raw:
    """An SMTP/LMTP client over a TCP port (from *source*, another loopback address, if
    given) or a UNIX socket, that sends bytes as given and reads whole replies."""

    def __init__(
        self, address: int | str | Path, timeout: float = 5.0, source: str | None = None
    ) -> None:
        if isinstance(address, int):
            self.sock: socket.socket = socket.create_connection(
                ("127.0.0.1", address), timeout, source_address=(source, 0) if source else None
            )
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(address))
        self.buffer = b""

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; unread: {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        """One whole (possibly multi-line) reply: its code and its text lines joined."""
        texts = []
        while True:
            line = self._line().decode()
            texts.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(texts)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, line: str) -> tuple[int, str]:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """Whether the server closed the connection (after what was already read)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False

    def start_tls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(self.sock)
        self.buffer = b""

    def transaction(self, recipients: list[str]) -> None:
        """Greeting, EHLO, MAIL, RCPTs, DATA: each must be accepted."""
        assert self.reply()[0] == 220
        assert self.command("EHLO client.example")[0] == 250
        assert self.command("MAIL FROM:<s@client.example>")[0] == 250
        for recipient in recipients:
            assert self.command(f"RCPT TO:<{recipient}>")[0] == 250
        assert self.command("DATA")[0] == 354
