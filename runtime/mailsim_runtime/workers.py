"""Queued messages → the app: a bounded pool of threads, one recipient at a time.

A :class:`Dispatcher` takes messages out of a Maildir queue by claiming them
(a rename, so any number of threads and processes can share one queue), hands
each recipient's copy to :meth:`App.deliver <mailsim_runtime.app.App.deliver>`,
and removes the message only when every recipient has had it. Between
recipients it journals who already had it, so a crash in the middle of a
message sends it again only to those who had not. On start it puts back what a
dead process left claimed, then works through everything waiting.

:class:`QueueReceiver` is the same pool on a queue another MTA fills: messages
carry their envelope in ``Return-Path`` and ``Delivered-To`` headers instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from mailsim_runtime.durable import GroupCommitWriter
from mailsim_runtime.inbound import Stored, decode_stored, envelope_from_headers
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.queue import Claim, MaildirQueue, QueueOwner

if TYPE_CHECKING:
    from mailsim_runtime.app import App

__all__ = ["Dispatcher", "QueueReceiver"]

log = logging.getLogger("mailsim.workers")


class Dispatcher:
    """Delivers the messages of *queue* to *app* with *workers* threads.

    ``notify(key)`` says a message was just queued (the receiver's fast path);
    the queue folder is also listed every *poll* seconds when idle, which finds
    messages queued by other processes or left by a crash. A message whose
    delivery raised (the app's database down, say) goes back in line and is
    tried again after a growing pause, from *retry_first* up to *retry_longest*
    seconds.
    """

    def __init__(
        self,
        app: App,
        queue: MaildirQueue,
        *,
        workers: int = 8,
        writer: GroupCommitWriter | None = None,
        poll: float = 1.0,
        retry_first: float = 1.0,
        retry_longest: float = 300.0,
        name: str = "mailsim-worker",
    ) -> None:
        if workers < 1:
            raise ValueError("a dispatcher needs at least one worker")
        self.app = app
        self.queue = queue
        self.workers = workers
        self.poll = poll
        self.retry_first = retry_first
        self.retry_longest = retry_longest
        self.name = name
        self.delivered = 0  # recipient copies handed to the app
        self._own_writer = writer is None
        self._writer = writer or GroupCommitWriter(queue, name=f"{name}-writer")
        self._owner: QueueOwner | None = None
        self._cond = threading.Condition()
        self._ready: deque[str] = deque()
        self._pending: set[str] = set()  # waiting in _ready or being processed
        self._busy = 0
        self._retry_at: dict[str, tuple[float, int]] = {}
        # Recipients a message reached whose journal entry could not be written (the
        # queue's disk full, say): not delivered to again while this process lives.
        self._unjournaled: dict[str, set[str]] = {}
        self._unreleased: list[Claim] = []  # claims to put back once the queue is writable
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"<Dispatcher {self.queue.path} workers={self.workers}>"

    def start(self) -> Dispatcher:
        """Recover what dead owners left, then start the workers and the scanner."""
        if self._own_writer:
            self._writer.start()
        self._owner = self.queue.owner()
        self.queue.recover()
        self._scan()
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        scanner = threading.Thread(target=self._scan_loop, name=f"{self.name}-scan", daemon=True)
        scanner.start()
        self._threads.append(scanner)
        return self

    def notify(self, key: str) -> None:
        """Message *key* was just queued: deliver it soon."""
        with self._cond:
            if key in self._pending or self._stopping:
                return
            self._pending.add(key)
            self._ready.append(key)
            self._cond.notify()

    def idle(self) -> bool:
        """Nothing waiting here or in the queue folder, nothing being delivered."""
        with self._cond:
            busy = bool(self._ready) or self._busy > 0
        return not busy and self.queue.count() == 0 and not self.queue.claimed()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until :meth:`idle` (True) or *timeout* seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() >= deadline:
                return False
            with self._cond:
                self._cond.wait(0.02)
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Finish the messages being delivered; leave the rest queued for next time."""
        with self._cond:
            self._stopping = True
            self._ready.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        if self._own_writer:
            self._writer.close(timeout)
        if self._owner is not None:
            self._owner.close()
            self._owner = None

    # Inside ---------------------------------------------------------------------

    def _scan(self) -> None:
        now = time.monotonic()
        with self._cond:
            unreleased, self._unreleased = self._unreleased, []
        for claim in unreleased:
            self._release(claim)
        keys = self.queue.keys()
        with self._cond:
            # Forget retries of messages gone from the queue (finished elsewhere).
            for key in set(self._retry_at) - set(keys):
                del self._retry_at[key]
            for key in keys:
                due = self._retry_at.get(key)
                if key in self._pending or (due is not None and due[0] > now):
                    continue
                self._pending.add(key)
                self._ready.append(key)
                self._cond.notify()

    def _scan_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping, timeout=self.poll)
                if self._stopping:
                    return
                if self._ready:
                    continue
            try:
                self._scan()
            except OSError:
                log.exception("cannot list the queue %s", self.queue.path)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._ready or self._stopping)
                if self._stopping:
                    return
                key = self._ready.popleft()
                self._busy += 1
            delivered = 0
            try:
                delivered = self._process(key)
            except Exception:
                log.exception("unexpected failure delivering queued message %s", key)
            finally:
                with self._cond:
                    self.delivered += delivered
                    self._busy -= 1
                    self._pending.discard(key)
                    self._cond.notify_all()

    def _process(self, key: str) -> int:
        """Deliver message *key* to each recipient not yet reached; how many were."""
        claim = self.queue.claim(key, self._owner)
        if claim is None:
            return 0  # another worker or process took it first
        stored = self._envelope(claim)
        if stored is None:
            self._done(claim)
            return 0
        with self._cond:
            sent = self._unjournaled.setdefault(key, set())
        already = self.queue.delivered(key) | sent
        remaining = [r for r in stored.recipients if r not in already]
        delivered = 0
        try:
            for recipient in remaining:
                request = MailRequest(stored.peer, stored.sender, recipient, stored.content)
                try:
                    self.app.deliver(request)
                except Exception:
                    self._retry_later(claim, f"delivering it to {recipient!r} failed")
                    return delivered
                delivered += 1
                sent.add(recipient)
                if delivered < len(remaining):
                    # The last recipient needs no entry: removing the message says it.
                    self._later(self.queue.record_delivered([(key, recipient)], flush=False))
            self._done(claim)
        except OSError:
            # The queue cannot be written (disk full, read-only): who had the message
            # is remembered here, and it is tried again later rather than left claimed.
            self._retry_later(claim, "the queue could not be written")
            return delivered
        with self._cond:
            self._retry_at.pop(key, None)
            self._unjournaled.pop(key, None)
        return delivered

    def _done(self, claim: Claim) -> None:
        self._later(self.queue.finish_many([claim], flush=False))

    def _later(self, paths: list[Path]) -> None:
        # Written already, so a crash of this process loses nothing; the fsyncs
        # only shorten what a power cut could undo (a delivery made again), so
        # they are batched and not waited for.
        if paths:
            self._writer.flush(paths)

    def _envelope(self, claim: Claim) -> Stored | None:
        try:
            stored = decode_stored(claim.data)
        except ValueError as error:
            self._set_aside(claim, f"damaged queue file: {error}")
            return None
        if stored is None:
            stored = envelope_from_headers(claim.data, self.app.accepts)
            if stored is None:
                self._set_aside(claim, "no envelope recipient in its headers")
        return stored

    def _set_aside(self, claim: Claim, reason: str) -> None:
        """Hand a message that cannot be delivered to the app's undeliverable queue."""
        log.error("queued message %s cannot be delivered: %s", claim.key, reason)
        sink = self.app.router.undeliverable
        if sink is None:
            raise RuntimeError(
                f"queued message {claim.key}: {reason}, and the app has no undeliverable "
                "queue; it stays claimed in cur/ until the next start"
            )
        sink.push(MailRequest(None, "", "", claim.data), reason)

    def _retry_later(self, claim: Claim, problem: str) -> None:
        with self._cond:
            _, attempts = self._retry_at.get(claim.key, (0.0, 0))
            pause = min(self.retry_first * 2**attempts, self.retry_longest)
            self._retry_at[claim.key] = (time.monotonic() + pause, attempts + 1)
        log.exception("queued message %s: %s; trying again in %.0f s", claim.key, problem, pause)
        self._release(claim)

    def _release(self, claim: Claim) -> None:
        try:
            self.queue.release(claim)
        except OSError:
            log.exception("cannot put queued message %s back in line; trying later", claim.key)
            with self._cond:
                self._unreleased.append(claim)


class QueueReceiver:
    """Delivers the messages another MTA drops in a Maildir to *app*, with *workers* threads.

    Each message's envelope comes from its ``Return-Path`` and ``Delivered-To``
    (or ``X-Original-To``) headers, else its To and Cc addresses the app accepts.
    Several QueueReceivers, in as many processes, may share one folder.
    """

    def __init__(
        self,
        app: App,
        queue: str | Path | MaildirQueue,
        *,
        workers: int = 8,
        poll: float = 1.0,
        durable: bool = True,
    ) -> None:
        self.queue = (
            queue if isinstance(queue, MaildirQueue) else MaildirQueue(queue, durable=durable)
        )
        self.dispatcher = Dispatcher(
            app, self.queue, workers=workers, poll=poll, name="mailsim-queue-receiver"
        )

    def __repr__(self) -> str:
        return f"<QueueReceiver {self.queue.path}>"

    def __enter__(self) -> QueueReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> QueueReceiver:
        self.dispatcher.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.dispatcher.stop(timeout)
        self.queue.close()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the folder is empty and nothing is being delivered."""
        return self.dispatcher.wait_idle(timeout)
