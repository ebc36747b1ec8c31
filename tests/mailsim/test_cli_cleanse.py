"""``mailsim cleanse``: clean messages copied in canonical form, the others set aside."""

from __future__ import annotations

import mailbox
import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mailsim.cli import main
from mailsim.cli.cleanse import cleansed

GOOD = b"From: a@example.org\nTo: b@example.com\nSubject: hi\n\nhello\n"
GOOD_MULTIPART = (
    b"From: a@example.org\nTo: b@example.com\nSubject: with a file\nMIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="XYZ"\n\n'
    b"--XYZ\nContent-Type: text/plain; charset=utf-8\n\nsee the file\n"
    b"--XYZ\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
    b'Content-Disposition: attachment; filename="x.bin"\n\nAAECAw==\n'
    b"--XYZ--\n"
)
BROKEN = {
    b"From: a@example.org\nSubject: x\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n"
    b"\naGVsbG8gd29ybGQ*\n": "InvalidBase64",
    b"From: a@example.org\nSubject: x\nMIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=XYZ\n\n--XYZ\n\nhello\n": "CloseBoundaryNotFound",
    b"From: a@example.org\nSubject: x\n\nhel\0lo\n": "NUL",
    b"From: a@example.org\nThis is not a header\nSubject: x\n\nhello\n": "MissingHeaderBody",
    b"From: a@example.org\nTo: <<<@>>>\nSubject: x\n\nhello\n": "To: InvalidHeaderDefect",
    b"From: a@example.org\nContent-Type: text/plain; charset=x-nonsense\n\nhi\n": "x-nonsense",
    b"From: a@example.org\nSubject: x\n\n" + b"a" * 1200 + b"\n": "1200 characters",
    b"From: J\xf6rg <a@example.org>\nSubject: x\n\nhello\n": "From: UndecodableBytes",
}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.mbox"
    box = mailbox.mbox(path)
    for data in [GOOD, *BROKEN, GOOD_MULTIPART]:
        box.add(data)
    box.close()
    return path


def test_clean_messages_are_copied_and_the_rest_explained(corpus: Path, tmp_path: Path) -> None:
    target = tmp_path / "clean"
    result = run("cleanse", str(corpus), str(target))
    assert result.exit_code == 0, result.output
    count = len(BROKEN) + 2
    assert f"wrote 2 of {count} messages to {target}; set aside {len(BROKEN)}" in result.stdout
    set_aside = [line for line in result.stdout.splitlines() if line.startswith("set aside #")]
    assert len(set_aside) == len(BROKEN)
    for number, (line, reason) in enumerate(zip(set_aside, BROKEN.values(), strict=True), 2):
        assert line.startswith(f"set aside #{number}: ")
        assert reason in line
    written = [(target / "new" / key).read_bytes() for key in sorted(os.listdir(target / "new"))]
    assert len(written) == 2
    for data in written:
        assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF wire form
    subjects = sorted(message_from_bytes(d, policy=policy.default)["Subject"] for d in written)
    assert subjects == ["hi", "with a file"]


def test_the_canonical_form_reads_the_same(tmp_path: Path) -> None:
    canonical, reasons = cleansed(GOOD_MULTIPART)
    assert reasons == []
    assert canonical is not None
    message = message_from_bytes(canonical, policy=policy.default)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == b"\x00\x01\x02\x03"
    assert cleansed(canonical) == (canonical, [])  # cleansing is idempotent


def test_a_maildir_and_quiet(tmp_path: Path) -> None:
    source = mailbox.Maildir(tmp_path / "source", create=True)
    source.add(GOOD)
    source.add(next(iter(BROKEN)))
    result = run("cleanse", "--quiet", str(tmp_path / "source"), str(tmp_path / "clean"))
    assert result.exit_code == 0
    assert result.stdout == f"wrote 1 of 2 messages to {tmp_path / 'clean'}; set aside 1\n"
    # SOURCE is untouched.
    assert len(mailbox.Maildir(tmp_path / "source", create=False)) == 2


def test_bad_paths_are_named(corpus: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = run("cleanse", str(missing), str(tmp_path / "out"))
    assert result.exit_code == 1
    assert str(missing) in result.stderr
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = run("cleanse", str(corpus), str(a_file))
    assert result.exit_code == 1
    assert f"{a_file}: exists and is not a folder" in result.stderr
    cluttered = tmp_path / "cluttered"
    cluttered.mkdir()
    (cluttered / "notes.txt").write_text("x")
    result = run("cleanse", str(corpus), str(cluttered))
    assert result.exit_code == 1
    assert "not empty and not a Maildir" in result.stderr
    assert not (cluttered / "new").exists()
