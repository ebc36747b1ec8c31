import errno
import multiprocessing
import os
from pathlib import Path

import mailsim_runtime.queue as queue_module
import pytest
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.queue import MaildirQueue, MemoryQueue

RAW = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(params=["maildir", "maildir-syncfs", "maildir-wal", "memory"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> MaildirQueue | MemoryQueue:
    if request.param == "maildir":
        return MaildirQueue(tmp_path / "q")
    if request.param.startswith("maildir-"):
        if not queue_module.syncfs_available():
            pytest.skip("syncfs(2) is not available on this system")
        return MaildirQueue(tmp_path / "q", sync=request.param.removeprefix("maildir-"))
    return MemoryQueue()


def test_push_get_pop_in_order(queue: MaildirQueue | MemoryQueue) -> None:
    first = queue.push(RAW)
    second = queue.push(RAW.replace(b"hi", b"second"))
    assert queue.count() == 2
    assert queue.keys() == [first, second]
    assert queue.get(first) == RAW
    assert queue.pop() == (first, RAW)
    popped = queue.pop()
    assert popped is not None and b"second" in popped[1]
    assert queue.pop() is None
    assert queue.count() == 0


def test_remove_and_clear(queue: MaildirQueue | MemoryQueue) -> None:
    key = queue.push(RAW)
    queue.push(RAW)
    assert queue.remove(key) is True
    assert queue.remove(key) is False
    assert queue.get(key) is None
    assert queue.clear() == 1
    assert queue.count() == 0


def test_a_request_keeps_its_envelope_and_reason(queue: MaildirQueue | MemoryQueue) -> None:
    request = MailRequest("127.0.0.1", "a@example.org", "nobody@lists.example.com", RAW)
    key = queue.push(request, "no route takes it\r\nX-Evil: 1")
    stored = queue.get(key)
    assert stored is not None
    head, _, _body = stored.partition(b"\r\n\r\n")
    assert b"Return-Path: <a@example.org>" in head
    assert b"Delivered-To: nobody@lists.example.com" in head
    # the reason is flattened onto one line: it cannot add a header of its own
    assert b"X-Mailsim-Reason: no route takes it X-Evil: 1" in head
    assert stored.endswith(RAW)


def test_a_response_is_stored_in_wire_form(queue: MaildirQueue | MemoryQueue) -> None:
    key = queue.push(MailResponse(to="b@example.org", from_="a@example.org", subject="x", body="y"))
    stored = queue.get(key)
    assert stored is not None and b"Subject: x\r\n" in stored


def test_maildir_writes_through_tmp_into_new(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    assert (tmp_path / "q" / "new" / key).read_bytes() == RAW
    assert list((tmp_path / "q" / "tmp").iterdir()) == []


def test_oversize_messages_are_set_aside_not_lost(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q", max_size=100)
    big = queue.push(RAW + b"x" * 200)
    small = queue.push(RAW)
    assert queue.pop() == (small, RAW)
    assert queue.oversize() == [big]
    assert (tmp_path / "q" / "oversize" / big).read_bytes().startswith(RAW)


def _drain(path: str, out: "multiprocessing.Queue[str]") -> None:
    queue = MaildirQueue(path, durable=False)
    while (item := queue.pop()) is not None:
        out.put(item[0])


def test_pop_across_processes_takes_each_message_once(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q", durable=False)
    pushed = {queue.push(RAW + str(i).encode()) for i in range(300)}
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [
        context.Process(target=_drain, args=(str(tmp_path / "q"), results)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    taken = [results.get(timeout=30) for _ in range(300)]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(taken) == sorted(pushed)  # every message once, none twice
    assert queue.count() == 0


def test_syncfs_flushes_the_batch_before_and_after_the_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With sync="syncfs" a batch costs two flushes of the filesystem, never an fsync,
    and nothing is renamed into new/ before the first flush: new/ only ever holds
    messages whose content is on disk."""
    queue = MaildirQueue(tmp_path / "q", sync="syncfs")
    seen: list[tuple[int, int]] = []  # (files in tmp/, files in new/) at each flush

    def recording_syncfs(fd: int) -> None:
        assert os.path.samefile(f"/proc/self/fd/{fd}", queue.path)
        seen.append((len(os.listdir(queue.path / "tmp")), len(os.listdir(queue.path / "new"))))

    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync called with sync='syncfs'")

    monkeypatch.setattr(queue_module, "syncfs", recording_syncfs)
    monkeypatch.setattr(queue_module.os, "fsync", no_fsync)
    keys = queue.push_many([RAW, RAW, RAW])
    assert seen == [(3, 0), (0, 3)]
    assert queue.keys() == sorted(keys)
    queue.flush([queue.path / "new", queue.path / "cur"])  # many paths, one flush
    assert len(seen) == 3
    queue.flush([])  # nothing to make durable: no flush at all
    assert len(seen) == 3


def test_fsync_flushes_each_file_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = MaildirQueue(tmp_path / "q")
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(queue_module.os, "fsync", recording_fsync)
    keys = queue.push_many([RAW, RAW])
    assert sorted(synced[:2]) == sorted(str(queue.path / "tmp" / key) for key in keys)
    assert synced[2:] == [str(queue.path / "new")]


def test_syncfs_reports_the_error_of_the_call() -> None:
    if not queue_module.syncfs_available():
        pytest.skip("syncfs(2) is not available on this system")
    with pytest.raises(OSError) as caught:
        queue_module.syncfs(-1)
    assert caught.value.errno == errno.EBADF


def test_an_unknown_sync_method_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync must be one of"):
        MaildirQueue(tmp_path / "q", sync="sometimes")  # type: ignore[arg-type]


def test_spent_files_are_written_over_not_deleted_and_recreated(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q", spares=2)
    long_one = RAW + b"x" * 5000
    first = queue.push(long_one)
    inode = (queue.path / "new" / first).stat().st_ino
    assert queue.pop() == (first, long_one)
    assert os.listdir(queue.path / "spare") == [first]
    second = queue.push(RAW)  # shorter: nothing of the old message may be left
    assert (queue.path / "new" / second).stat().st_ino == inode
    assert queue.get(second) == RAW
    assert os.listdir(queue.path / "spare") == []


def test_no_more_spares_are_kept_than_asked(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q", spares=2)
    for _ in range(4):
        queue.push(RAW)
    while queue.pop() is not None:
        pass
    assert len(os.listdir(queue.path / "spare")) == 2
    none_kept = MaildirQueue(tmp_path / "r", spares=0)
    none_kept.push(RAW)
    assert none_kept.pop() is not None
    assert os.listdir(none_kept.path / "spare") == []


def test_a_removed_message_is_deleted_not_kept_as_a_spare(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    assert queue.remove(key)
    assert not queue.remove(key)  # gone already
    assert os.listdir(queue.path / "spare") == [] and queue.count() == 0


def test_claimed_messages_finished_become_spares_another_process_reuses(tmp_path: Path) -> None:
    queue = MaildirQueue(tmp_path / "q")
    key = queue.push(RAW)
    owner = queue.owner()
    claim = queue.claim(key, owner)
    assert claim is not None
    queue.finish(claim)
    owner.close()
    assert os.listdir(queue.path / "spare") == [claim.name]
    other = MaildirQueue(tmp_path / "q")  # as another process opens it: spare/ is listed
    new_key = other.push(RAW.replace(b"hi", b"again"))
    assert os.listdir(queue.path / "spare") == []
    assert other.get(new_key) == RAW.replace(b"hi", b"again")
