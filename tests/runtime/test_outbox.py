"""The durable outbox: on disk before the first attempt, claims, restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helpers.clock import ManualClock
from mailsim_runtime.mail import MailResponse
from mailsim_runtime.outbox import DurableOutbox
from mailsim_runtime.relay import MemoryOutbox, Outgoing, Relay, RetryPolicy
from mailsim_runtime.transport import Envelope, FunctionTransport, RecipientResult


def outgoing(
    item_id: str = "20261123120000.ab.1", message: bytes = b"Subject: x\r\n\r\nb\r\n"
) -> Outgoing:
    clock = ManualClock()
    return Outgoing(
        id=item_id,
        envelope=Envelope("a@example.com", ("b@example.org", "c@example.org")),
        message=message,
        queued_at=clock.now(),
        next_attempt=clock.now(),
        pending=("b@example.org", "c@example.org"),
    )


def test_an_item_round_trips_through_the_disk(tmp_path: Path) -> None:
    outbox = DurableOutbox(tmp_path)
    item = outgoing(message=b"Subject: caf\xc3\xa9\r\n\r\n8-bit \xff body\r\n")
    outbox.add(item)
    assert sorted(p.name for p in (tmp_path / "queue").iterdir()) == [
        f"{item.id}.eml",
        f"{item.id}.json",
    ]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (tmp_path / "queue" / f"{item.id}.eml").read_bytes() == item.message
    item.attempts = 2
    item.pending = ("c@example.org",)
    item.next_attempt += timedelta(minutes=10)
    item.results["b@example.org"] = RecipientResult("b@example.org", 250, "2.0.0 ok", "mx.example")
    outbox.update(item)
    [again] = DurableOutbox(tmp_path).items()  # a fresh instance: as after a restart
    assert again == item
    outbox.remove(item.id)
    assert outbox.items() == [] and len(outbox) == 0
    assert list((tmp_path / "queue").iterdir()) == []


def test_the_record_is_plain_json(tmp_path: Path) -> None:
    outbox = DurableOutbox(tmp_path)
    outbox.add(outgoing())
    record = json.loads((tmp_path / "queue" / "20261123120000.ab.1.json").read_text())
    assert record["sender"] == "a@example.com"
    assert record["pending"] == ["b@example.org", "c@example.org"]
    assert record["queued_at"] == "2026-11-23T12:00:00+00:00"


def test_ids_cannot_escape_the_folder_or_collide(tmp_path: Path) -> None:
    outbox = DurableOutbox(tmp_path)
    with pytest.raises(ValueError, match="safe"):
        outbox.add(outgoing("../evil"))
    outbox.add(outgoing())
    with pytest.raises(FileExistsError):
        outbox.add(outgoing())


def test_a_claim_is_exclusive_across_instances_and_threads(tmp_path: Path) -> None:
    first, second = DurableOutbox(tmp_path), DurableOutbox(tmp_path)
    first.add(outgoing())
    claimed = first.claim("20261123120000.ab.1")
    assert claimed is not None and claimed.pending == ("b@example.org", "c@example.org")
    assert first.claim("20261123120000.ab.1") is None  # this process, another thread
    assert second.claim("20261123120000.ab.1") is None  # as another process would see it
    others: list[Outgoing | None] = []
    thread = threading.Thread(target=lambda: others.append(second.claim("20261123120000.ab.1")))
    thread.start()
    thread.join()
    assert others == [None]
    first.release("20261123120000.ab.1")
    assert second.claim("20261123120000.ab.1") is not None
    second.release("20261123120000.ab.1")


def test_a_claim_dies_with_its_process(tmp_path: Path) -> None:
    outbox = DurableOutbox(tmp_path)
    outbox.add(outgoing())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from mailsim_runtime.outbox import DurableOutbox; "
            "assert DurableOutbox(sys.argv[1]).claim(sys.argv[2]) is not None; "
            "print('claimed', flush=True); sys.stdin.read()",
            str(tmp_path),
            "20261123120000.ab.1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "claimed\n"
        assert outbox.claim("20261123120000.ab.1") is None  # held by the other process
    finally:
        holder.kill()  # dies holding the claim, as in a crash
        holder.wait(10)
    assert outbox.claim("20261123120000.ab.1") is not None


def test_a_removed_item_cannot_be_claimed(tmp_path: Path) -> None:
    outbox = DurableOutbox(tmp_path)
    outbox.add(outgoing())
    assert outbox.claim("20261123120000.ab.1") is not None
    outbox.remove("20261123120000.ab.1")
    outbox.release("20261123120000.ab.1")
    assert outbox.claim("20261123120000.ab.1") is None
    assert outbox.claim("never-was") is None


def test_failed_items_are_kept_on_disk(tmp_path: Path) -> None:
    outbox = DurableOutbox(tmp_path)
    item = outgoing()
    outbox.keep_failed(item)
    assert DurableOutbox(tmp_path).failed == [item]
    assert outbox.items() == []


def test_leftovers_of_a_crash_are_cleared_when_old(tmp_path: Path) -> None:
    DurableOutbox(tmp_path)
    old = time.time() - 2 * 3600
    half_written = tmp_path / "tmp" / "x.eml"
    orphan = tmp_path / "queue" / "orphan.eml"  # its record was never written
    recent = tmp_path / "queue" / "recent.eml"  # maybe being added right now
    for path in (half_written, orphan, recent):
        path.write_bytes(b"x")
    for path in (half_written, orphan):
        os.utime(path, (old, old))
    DurableOutbox(tmp_path)
    assert not half_written.exists() and not orphan.exists() and recent.exists()


@pytest.mark.parametrize("kind", ["memory", "durable"])
def test_relay_retries_and_bounces_through_either_outbox(tmp_path: Path, kind: str) -> None:
    clock = ManualClock()
    attempts: list[tuple[str, ...]] = []

    def flaky(envelope: Envelope, message: bytes) -> dict[str, RecipientResult]:
        """x@ is refused twice with 4xx, nobody@ always with 5xx; the rest is taken."""
        attempts.append(envelope.recipients)
        results = {}
        for r in envelope.recipients:
            code = {"x": 451 if len(attempts) < 4 else 250, "n": 550}.get(r[0], 250)
            results[r] = RecipientResult(r, code, "x", "mx.example")
        return results

    outbox = MemoryOutbox() if kind == "memory" else DurableOutbox(tmp_path)
    transport = FunctionTransport(flaky)
    relay = Relay(transport, clock=clock, outbox=outbox, retry=RetryPolicy())
    item = relay.deliver(
        MailResponse(to="x@example.org, nobody@example.org", from_="a@example.com", body="b")
    )
    assert item.pending == ("x@example.org",) and item.attempts == 1
    assert [s.envelope.sender for s in transport.sent] == ["a@example.com", ""]  # the DSN
    for _ in range(2):
        due = relay.next_due()
        assert due is not None
        clock.advance(due - clock.now())
        assert relay.run_due() == 1
    assert relay.outbox.items() == []
    assert attempts == [
        ("x@example.org", "nobody@example.org"),
        ("a@example.com",),  # the report on nobody@
        ("x@example.org",),
        ("x@example.org",),
    ]


def test_an_item_attempted_elsewhere_since_listed_is_skipped(tmp_path: Path) -> None:
    clock = ManualClock()
    outbox = DurableOutbox(tmp_path)
    later = Relay(FunctionTransport(), clock=clock, outbox=outbox, attempt_at_once=False)
    later.deliver(MailResponse(to="x@example.org", from_="a@example.com", body="b"))
    [listed] = outbox.items()
    # Another process attempted it meanwhile and set its next attempt ahead.
    claimed = outbox.claim(listed.id)
    assert claimed is not None
    claimed.next_attempt = clock.now() + timedelta(minutes=5)
    outbox.update(claimed)
    outbox.release(listed.id)
    assert later._attempt(listed, due_by=clock.now()) is False
    assert outbox.items()[0].attempts == 0
