"""Reading the messages of a mail folder: a Maildir, an mbox file or a folder of ``.eml`` files.

``mailsim blast`` and ``mailsim cleanse`` take any of these as their source. Each
message comes with a label that names it in reports: its Maildir key, its file
name, or ``#n`` (counting from 1) in an mbox.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FolderError", "MessageFolder"]


class FolderError(ValueError):
    """The path is not a mail folder this module can read; the message says why."""


class MessageFolder:
    """The messages of a Maildir, an mbox file or a folder of ``.eml`` files, in order.

    Maildir messages come sorted by key (which, for keys made by mailsim's queues and
    most delivery agents, is the order they arrived in). The folder is looked at when
    this is made, so a wrong path fails here, naming the path.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            if (path / "new").is_dir() and (path / "cur").is_dir():
                self.kind = "Maildir"
            elif any(_is_eml(file) for file in path.iterdir()):
                self.kind = "folder of .eml files"
            else:
                raise FolderError(
                    f"{path}: not a Maildir (no new/ and cur/ folders) and holds no .eml files"
                )
        elif path.is_file():
            with path.open("rb") as handle:
                start = handle.read(5)
            if start and start != b"From ":
                raise FolderError(
                    f"{path}: not an mbox file (an mbox starts with a 'From ' line); "
                    "give a Maildir, an mbox file or a folder of .eml files"
                )
            self.kind = "mbox"
        elif path.exists():
            raise FolderError(f"{path}: not a folder or a file")
        else:
            raise FolderError(f"{path}: no such file or folder")

    def __repr__(self) -> str:
        return f"<MessageFolder {self.kind} {self.path}>"

    def __len__(self) -> int:
        if self.kind == "Maildir":
            return len(mailbox.Maildir(self.path, factory=None, create=False))
        if self.kind == "mbox":
            box = mailbox.mbox(self.path, create=False)
            try:
                return len(box)
            finally:
                box.close()
        return sum(1 for file in self.path.iterdir() if _is_eml(file))

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        """``(label, message bytes)`` for each message."""
        if self.kind == "Maildir":
            maildir = mailbox.Maildir(self.path, factory=None, create=False)
            for key in sorted(maildir.keys()):
                try:
                    data = maildir.get_bytes(key)
                except KeyError:
                    continue  # taken out of the folder since it was listed
                yield key, data
        elif self.kind == "mbox":
            box = mailbox.mbox(self.path, create=False)
            try:
                for number, key in enumerate(box.iterkeys(), 1):
                    yield f"#{number}", box.get_bytes(key)
            finally:
                box.close()
        else:
            for file in sorted(self.path.iterdir()):
                if _is_eml(file):
                    yield file.name, file.read_bytes()


def _is_eml(file: Path) -> bool:
    return file.suffix.lower() == ".eml" and file.is_file()
