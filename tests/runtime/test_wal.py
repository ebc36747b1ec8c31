"""The write-ahead log, and a Maildir queue that stores through it (sync="wal").

A power cut cannot be made here, so it is imitated: a process stores, finishes and
journals messages through the log and dies without closing it; then whatever the
page cache could have lost is taken away (files missing, empty, holding another
message's bytes, renames undone) and the queue is recovered as if the machine had
booted again.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import mailsim_runtime.queue as queue_module
import pytest
from helpers.receiving import wait_until
from mailsim_runtime.durable import GroupCommitWriter
from mailsim_runtime.queue import MaildirQueue
from mailsim_runtime.wal import (
    LogContents,
    Record,
    RecordKind,
    WriteAheadLog,
    read_log,
    unflushed,
)

pytestmark = pytest.mark.skipif(
    not queue_module.syncfs_available(), reason="the write-ahead log needs Linux's syncfs(2)"
)

LATER_BOOT = "a-boot-after-the-power-cut"


def message(number: int, size: int = 300) -> bytes:
    head = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {number}\r\n\r\n".encode()
    return head + (f"{number} " * size).encode()[:size] + b"\r\n"


class Flushes:
    """A stand-in for syncfs that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        os.fstat(fd)  # a real, open file descriptor
        self.calls += 1


def new_log(folder: Path, **options: object) -> tuple[WriteAheadLog, Flushes]:
    flushes = Flushes()
    return WriteAheadLog(folder, flushes, **options), flushes  # type: ignore[arg-type]


# The log itself ----------------------------------------------------------------------


def test_a_batch_is_read_back_as_stored(tmp_path: Path) -> None:
    log, _ = new_log(tmp_path, boot_id="boot-1")
    log.store([("k1", message(1)), ("k2", message(2))])
    log.note(RecordKind.FINISHED, [("k1", b"")])
    log.note(RecordKind.DELIVERED, [("k2", b"rcpt@example.com")])
    contents = read_log(log.path)
    assert contents.boot_id == "boot-1"
    assert contents.checkpoint_ns == 0
    assert [(r.kind, r.key, r.data) for r in contents.records] == [
        (RecordKind.STORED, "k1", message(1)),
        (RecordKind.STORED, "k2", message(2)),
        (RecordKind.FINISHED, "k1", b""),
        (RecordKind.DELIVERED, "k2", b"rcpt@example.com"),
    ]
    assert os.path.getsize(log.path) == log.size  # filled up front: appends change no size


def test_a_checkpoint_flushes_the_filesystem_and_leaves_nothing_to_replay(
    tmp_path: Path,
) -> None:
    log, flushes = new_log(tmp_path)
    log.store([("k1", message(1))])
    before = time.monotonic_ns()
    log.checkpoint()
    assert flushes.calls == 1
    contents = read_log(log.path)
    assert contents.records == []
    assert contents.checkpoint_ns >= before
    assert log.due_in() is None  # nothing logged since


def test_records_from_before_a_checkpoint_are_not_read_again(tmp_path: Path) -> None:
    log, _ = new_log(tmp_path)
    log.store([("old", message(1, size=5000))])
    log.checkpoint()
    log.store([("new", message(2, size=10))])  # shorter: the old bytes lie beyond it
    assert [r.key for r in read_log(log.path).records] == ["new"]


@pytest.mark.parametrize("damage", ["flipped byte", "cut short"])
def test_a_record_damaged_by_a_crash_ends_the_log(tmp_path: Path, damage: str) -> None:
    log, _ = new_log(tmp_path)
    log.store([("k1", message(1))])
    log.store([("k2", message(2))])
    end = read_size(log)
    log.store([("k3", message(3))])
    if damage == "flipped byte":
        with open(log.path, "r+b") as handle:
            handle.seek(end + 100)
            byte = handle.read(1)
            handle.seek(end + 100)
            handle.write(bytes([byte[0] ^ 0x01]))
    else:
        os.truncate(log.path, end + 50)
    assert [r.key for r in read_log(log.path).records] == ["k1", "k2"]


def read_size(log: WriteAheadLog) -> int:
    """Where the next record of *log* will go."""
    return log._position


def test_a_torn_header_means_nothing_was_left_unflushed(tmp_path: Path) -> None:
    log, _ = new_log(tmp_path)
    log.store([("k1", message(1))])
    with open(log.path, "r+b") as handle:
        handle.seek(10)
        handle.write(b"\xff\xff")
    assert read_log(log.path).records == []


def test_a_full_log_is_checkpointed_before_it_overflows(tmp_path: Path) -> None:
    log, flushes = new_log(tmp_path, size=16 * 1024)
    for number in range(40):  # about 14 KiB per 40 records of 350 bytes: more than it holds
        log.store([(f"k{number}", message(number))])
    assert log.checkpoints >= 1 and flushes.calls == log.checkpoints
    keys = [r.key for r in read_log(log.path).records]
    assert keys and keys == [f"k{n}" for n in range(40 - len(keys), 40)]
    room = log.size - 4096 - 32 - 4  # all after the header, less one record head and key
    huge = [("huge", b"x" * (room + 1))]
    assert not log.fits(huge)
    with pytest.raises(ValueError, match="do not fit"):
        log.store(huge)
    just = [("just", b"x" * room)]
    assert log.fits(just)
    log.store(just)
    assert [r.data for r in read_log(log.path).records] == [just[0][1]]


def test_a_checkpoint_falls_due_after_the_first_record_since_the_last(tmp_path: Path) -> None:
    log, flushes = new_log(tmp_path, checkpoint_every=0.0)
    assert log.due_in() is None
    log.store([("k1", message(1))])
    assert log.due_in() == 0.0
    log.store([("k2", message(2))])  # overdue: the checkpoint comes first
    assert flushes.calls == 1
    assert [r.key for r in read_log(log.path).records] == ["k2"]


def test_closing_checkpoints_and_removes_the_log(tmp_path: Path) -> None:
    log, flushes = new_log(tmp_path)
    log.store([("k1", message(1))])
    log.close()
    assert flushes.calls == 1
    assert not log.path.exists()


def test_what_may_be_unflushed_is_what_no_later_checkpoint_covered() -> None:
    def record(kind: RecordKind, key: str, at: int, data: bytes = b"") -> Record:
        return Record(kind, key, data, at)

    first = LogContents(
        Path("a.wal"),
        "boot",
        100,
        [
            record(RecordKind.STORED, "early", 150, b"E"),  # before b's checkpoint
            record(RecordKind.STORED, "late", 250, b"L"),
            record(RecordKind.STORED, "done", 260, b"D"),
            record(RecordKind.STORED, "partly", 270, b"P"),
        ],
    )
    second = LogContents(
        Path("b.wal"),
        "boot",
        200,
        [
            # A finish is a finish, even logged before the checkpoint of another log.
            record(RecordKind.FINISHED, "done", 210),
            record(RecordKind.DELIVERED, "partly", 280, b"x@example.com"),
            record(RecordKind.DELIVERED, "done", 220, b"y@example.com"),
        ],
    )
    lost = unflushed([first, second])
    assert lost.stored == {"late": b"L", "partly": b"P"}
    assert lost.finished == {"done"}
    assert lost.delivered == {"partly": ["x@example.com"]}


# A queue storing through it ------------------------------------------------------------


def test_a_wal_queue_flushes_one_log_not_the_message_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = MaildirQueue(tmp_path / "q", sync="wal")
    queue.log()  # created (and fsync'd once) before counting
    calls: list[str] = []
    monkeypatch.setattr(queue_module.os, "fsync", lambda fd: calls.append("fsync"))
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_fdatasync(fd)

    monkeypatch.setattr(queue_module.os, "fdatasync", counting_fdatasync)
    keys = queue.push_many([message(1), message(2), message(3)])
    assert calls == ["fdatasync"]  # one flush for the batch, of the log only
    assert [queue.get(key) for key in keys] == [message(1), message(2), message(3)]
    stored = [(r.key, r.data) for r in read_log(queue.log().path).records]
    assert stored == list(zip(keys, [message(1), message(2), message(3)], strict=True))


def test_a_batch_too_big_for_the_log_is_flushed_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = MaildirQueue(tmp_path / "q", sync="wal", log_size=16 * 1024)
    queue.log()
    flushed: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        flushed.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(queue_module.os, "fsync", recording_fsync)
    big = message(1, size=64 * 1024)
    (key,) = queue.push_many([big])
    assert queue.get(key) == big
    assert len(flushed) == 2  # the file, then new/
    assert read_log(queue.log().path).records == []


def store_finish_and_die(folder: str, keys_file: str) -> None:
    """In a child process: what a receiver and its workers do, then a death without
    closing anything (the log stays, its lock goes)."""
    queue = MaildirQueue(folder, sync="wal", spares=4)
    owner = queue.owner()
    # Spare files first, so that new messages are written over older ones.
    for claim in filter(None, (queue.claim(key, owner) for key in queue.push_many([b"old"] * 4))):
        queue.finish(claim)
    keys = queue.push_many([message(n) for n in range(6)])
    finished = queue.claim(keys[0], owner)
    partly = queue.claim(keys[1], owner)
    assert finished is not None and partly is not None
    queue.record_delivered([(keys[1], "first@example.com")])
    queue.finish(finished)
    Path(keys_file).write_text("\n".join(keys))
    os._exit(0)


def run_and_die(folder: Path) -> list[str]:
    keys_file = folder.parent / "keys"
    child = multiprocessing.get_context("spawn").Process(
        target=store_finish_and_die, args=(str(folder), str(keys_file))
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    return keys_file.read_text().split("\n")


def test_after_a_power_cut_every_acknowledged_message_is_put_back(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    keys = run_and_die(folder)
    finished_key, partly_key, *waiting = keys
    (claimed,) = [name for name in os.listdir(folder / "cur") if name.startswith(partly_key)]
    # What the lost page cache may leave: a file missing, one empty, one with the
    # bytes of the message last written into it, a finish undone, a journal lost.
    os.unlink(folder / "new" / waiting[0])
    os.truncate(folder / "new" / waiting[1], 0)
    (folder / "new" / waiting[2]).write_bytes(b"old")
    os.truncate(folder / "cur" / claimed, 10)
    (folder / "new" / finished_key).write_bytes(message(0))
    os.unlink(folder / "delivered" / partly_key)

    queue = MaildirQueue(folder, sync="wal")
    assert queue.recover(boot_id=LATER_BOOT) == 1  # the dead owner's claim, back in line
    assert queue.keys() == sorted([partly_key, *waiting])
    for key in [partly_key, *waiting]:
        assert queue.get(key) == message(keys.index(key)), key
    assert queue.delivered(partly_key) == {"first@example.com"}
    assert list((folder / "wal").iterdir()) == []  # replayed, flushed and removed


def test_after_a_process_crash_the_files_are_trusted_and_the_log_dropped(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "q"
    keys = run_and_die(folder)
    (folder / "new" / keys[2]).write_bytes(b"changed by hand since")
    queue = MaildirQueue(folder, sync="wal")
    queue.recover()  # the same boot: the page cache outlived the process
    assert queue.get(keys[2]) == b"changed by hand since"
    assert list((folder / "wal").iterdir()) == []


def test_a_live_process_log_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    living = MaildirQueue(folder, sync="wal")
    (key,) = living.push_many([message(1)])
    os.unlink(folder / "new" / key)
    MaildirQueue(folder, sync="wal").recover(boot_id=LATER_BOOT)
    assert living.log().path.exists()
    assert not (folder / "new" / key).exists()  # not the recoverer's to put back


def test_the_writer_checkpoints_when_one_falls_due_with_no_traffic(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q", sync="wal", checkpoint_every=0.05)
    writer = GroupCommitWriter(queue).start()
    try:
        writer.store(message(1)).result(10)
        log = queue.log()
        wait_until(lambda: log.checkpoints >= 1, timeout=10, what="a checkpoint")
        assert read_log(log.path).records == []
    finally:
        writer.close()
        queue.close()
    assert not log.path.exists()


def test_every_writer_thread_stops_on_close_after_finishing_its_work(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q", sync="wal")
    writer = GroupCommitWriter(queue, threads=3).start()
    stored = [writer.store(message(n)) for n in range(20)]
    writer.close(timeout=10)
    assert not any(thread.is_alive() for thread in writer._threads)
    keys = [future.result(0) for future in stored]
    assert [queue.get(key) for key in keys] == [message(n) for n in range(20)]
    queue.close()
