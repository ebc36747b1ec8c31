import multiprocessing
from pathlib import Path

import pytest
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.queue import MaildirQueue, MemoryQueue

RAW = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(params=["maildir", "memory"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> MaildirQueue | MemoryQueue:
    if request.param == "maildir":
        return MaildirQueue(tmp_path / "q")
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
