"""What the receiver adds to the Maildir queue and around it: batched pushes, claims
that survive their owner's death, delivery journals, the stored envelope format,
the content checks, the group-commit writer and the QueueReceiver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mailsim_runtime.durable import GroupCommitWriter
from mailsim_runtime.inbound import (
    BARE_LINE_END,
    NUL_IN_CONTENT,
    check_content,
    decode_stored,
    encode_stored,
    envelope_from_headers,
)
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.server import QueueReceiver
from test_server_support import DOMAIN, message, recording_app

RAW = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def test_push_many_stores_all_in_order(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    keys = queue.push_many([RAW, RAW + b"2", RAW + b"3"])
    assert queue.keys() == keys
    assert [queue.get(k) for k in keys] == [RAW, RAW + b"2", RAW + b"3"]
    assert not list((tmp_path / "q" / "tmp").iterdir())


def test_push_many_stores_nothing_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = MaildirQueue(tmp_path / "q")
    real_rename = os.rename
    renamed: list[object] = []

    def failing_rename(source: object, target: object) -> None:
        if renamed:
            raise OSError(28, "No space left on device")
        renamed.append(target)
        real_rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space"):
        queue.push_many([RAW, RAW])
    monkeypatch.undo()
    assert queue.count() == 0 and not list((tmp_path / "q" / "tmp").iterdir())


def test_a_claim_stays_until_finished(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    owner = queue.owner()
    claim = queue.claim(key, owner)
    assert claim is not None and claim.data == RAW and claim.key == key
    assert queue.count() == 0 and queue.claimed() == [claim.name]
    assert queue.claim(key, owner) is None  # taken once only
    assert queue.recover() == 0  # its owner lives
    queue.record_delivered([(key, "a@example.com")])
    queue.finish(claim)
    assert queue.claimed() == [] and queue.delivered(key) == set()
    owner.close()


def test_release_puts_a_claim_back(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    claim = queue.claim(owner=queue.owner())
    assert claim is not None
    assert queue.release(claim) and queue.keys() == [key]


def test_recover_returns_the_claims_of_a_dead_process(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    script = (
        "import os, sys; from mailsim_runtime.queue import MaildirQueue; "
        "q = MaildirQueue(sys.argv[1]); assert q.claim(owner=q.owner()); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", script, str(queue.path)], check=True, timeout=30)
    assert queue.count() == 0 and len(queue.claimed()) == 1
    assert queue.recover() == 1
    assert queue.keys() == [key] and queue.claimed() == []
    assert list((queue.path / "owners").iterdir()) == []


def test_the_delivery_journal_ignores_a_torn_last_line(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    queue.record_delivered([(key, "a@example.com"), (key, "b@example.com")])
    with open(queue.path / "delivered" / key, "ab") as journal:
        journal.write(b"c@exam")  # a crash in the middle of a write
    assert queue.delivered(key) == {"a@example.com", "b@example.com"}


def test_recover_drops_journals_of_messages_that_are_gone(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    kept = queue.push(RAW)
    queue.record_delivered([(kept, "a@example.com"), ("gone", "a@example.com")])
    queue.recover()
    assert sorted(os.listdir(queue.path / "delivered")) == [kept]


def test_the_writer_completes_futures_in_batches(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    writer = GroupCommitWriter(queue).start()
    keys = [future.result(5) for future in [writer.store(RAW) for _ in range(20)]]
    claim = queue.claim(keys[0])
    assert claim is not None
    pending = queue.record_delivered([(keys[0], "a@example.com")], flush=False)
    assert pending == [queue.path / "delivered", queue.path / "delivered" / keys[0]]
    writer.flush(pending).result(5)
    assert queue.delivered(keys[0]) == {"a@example.com"}
    writer.flush(queue.finish_many([claim], flush=False)).result(5)
    writer.close()
    assert queue.count() == 19 and queue.claimed() == []
    assert writer.items == 22 and writer.batches <= 22
    with pytest.raises(RuntimeError, match="closed"):
        writer.store(RAW)


def test_encode_and_decode_an_envelope() -> None:
    data = encode_stored("s@x.example", ["a@y.example", "b@y.example"], "1.2.3.4:5", RAW)
    stored = decode_stored(data)
    assert stored is not None
    assert stored.sender == "s@x.example"
    assert stored.recipients == ("a@y.example", "b@y.example")
    assert stored.peer == "1.2.3.4:5" and stored.content == RAW
    assert decode_stored(RAW) is None
    with pytest.raises(ValueError):
        decode_stored(data[:60])
    with pytest.raises(ValueError):
        encode_stored("s@x.example", ["a\r\nX-Evil: 1@y.example"], None, RAW)


def test_check_content() -> None:
    fine = b"Subject: x\r\n\r\nbody\r\n"
    assert check_content(fine, 3, header_size=100, received_headers=2) is None
    assert check_content(b"a\nb\r\n", 1, header_size=0, received_headers=0) == BARE_LINE_END
    assert check_content(b"a\rb\r\n", 1, header_size=0, received_headers=0) == BARE_LINE_END
    assert check_content(b"a\0b\r\n", 1, header_size=0, received_headers=0) == NUL_IN_CONTENT
    looped = b"Received: a\r\nreceived : b\r\n\r\nbody\r\n"
    assert check_content(looped, 4, header_size=0, received_headers=3) is None
    assert check_content(looped, 4, header_size=0, received_headers=2) is not None
    assert check_content(fine, 3, header_size=5, received_headers=0) is not None


def test_envelope_from_the_headers_another_mta_wrote() -> None:
    def accepts(address: str) -> bool:
        return address.endswith("@" + DOMAIN)

    delivered = b"Return-Path: <s@x.example>\r\nDelivered-To: list@example.com\r\n" + RAW
    stored = envelope_from_headers(delivered, accepts)
    assert stored is not None
    assert (stored.sender, stored.recipients) == ("s@x.example", ("list@example.com",))
    addressed = b"To: a@example.com, b@elsewhere.example\r\nCc: c@example.com\r\n" + RAW
    stored = envelope_from_headers(addressed, accepts)
    assert stored is not None and stored.recipients == ("a@example.com", "c@example.com")
    assert envelope_from_headers(RAW, accepts) is None


def test_queue_receiver_delivers_what_another_mta_drops(tmp_path: Path) -> None:
    app, recorder = recording_app()
    maildir = MaildirQueue(tmp_path / "Maildir")
    for number in range(10):
        maildir.push(
            f"Return-Path: <s{number}@x.example>\r\nDelivered-To: u{number}@{DOMAIN}\r\n".encode()
            + message(f"m {number}")
        )
    maildir.push(RAW)  # no envelope to be found: set aside, not lost
    with QueueReceiver(app, maildir.path, workers=3, poll=0.05) as receiver:
        delivered = recorder.wait_for(10)
        maildir.push(f"Delivered-To: late@{DOMAIN}\r\n".encode() + message("late"))
        recorder.wait_for(11)
        assert receiver.wait_idle(5)
    assert sorted(d.recipient for d in delivered) == sorted(f"u{n}@{DOMAIN}" for n in range(10))
    assert len(app.router.undeliverable) == 1  # type: ignore[arg-type]
    assert maildir.count() == 0 and maildir.claimed() == []


def test_mail_a_client_has_read_is_not_a_claim(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "Maildir")
    (queue.path / "cur" / "1700000000.M1P2.host:2,S").write_bytes(RAW)
    (queue.path / "cur" / "1700000001.M1P2.host").write_bytes(RAW)  # pop() taking it
    assert queue.claimed() == []
    assert queue.recover() == 0
    assert queue.count() == 0 and len(os.listdir(queue.path / "cur")) == 2
