"""Automatic replies: when RFC 3834 allows one, how it is threaded, and how often.

An application's automatic answers (:meth:`Relay.reply`) never go to a bounce,
to mail that is itself automatic, to list mail or to bulk mail, and are marked
``Auto-Submitted: auto-replied``. Even so, a careless responder elsewhere that
ignores those rules could answer each answer for ever; :class:`ReplyLimit` caps how
many automatic replies one address gets in a window (RFC 3834 §2), which ends such
a loop.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailsim_runtime.mail import (
    HeaderInjectionError,
    MailRequest,
    MailResponse,
    addresses_in,
    check_header_value,
)

__all__ = ["ReplyLimit", "auto_reply_refusal", "reply_address", "thread_response"]

_BULK_PRECEDENCE = {"bulk", "list", "junk"}
_LIST_HEADERS = (
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
)


def auto_reply_refusal(message: MailRequest) -> str | None:
    """Why RFC 3834 forbids an automatic reply to *message*, or None if it allows one."""
    if not message.sender:
        return "the envelope sender is null (<>): never answer a bounce"
    auto_submitted = (message["Auto-Submitted"] or "no").split(";")[0].strip().lower()
    if auto_submitted != "no":
        return f"it is Auto-Submitted: {auto_submitted}"
    precedence = (message["Precedence"] or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"it has Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if name in message:
            return f"it comes from a mailing list ({name})"
    return None


@dataclass
class ReplyLimit:
    """At most *count* automatic replies to one address within *window*.

    The default suits a service (a mailing list answering help requests); a
    personal responder, such as a vacation notice, would use ``count=1`` and a window
    of days. Kept in memory per relay: a restart forgets it, which only lets a loop
    run one window longer.
    """

    count: int = 10
    window: timedelta = timedelta(hours=1)
    _sent: dict[str, deque[datetime]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.count < 1 or self.window <= timedelta(0):
            raise ValueError("a reply limit needs a count of at least 1 and a positive window")

    def allow(self, address: str, now: datetime) -> bool:
        """Count a reply to *address* at *now*, unless it would exceed the limit."""
        key = address.lower()
        with self._lock:
            sent = self._sent.setdefault(key, deque())
            while sent and now - sent[0] >= self.window:
                sent.popleft()
            if len(sent) >= self.count:
                return False
            sent.append(now)
            return True


def reply_address(original: MailRequest) -> str:
    """Where an answer goes: Reply-To, else From, else the envelope sender; the first
    that names an address and can stand in a header (a broken one must not stop it)."""
    for value in (original["Reply-To"], original["From"]):
        if value and addresses_in([value]):
            try:
                return check_header_value("To", value)
            except HeaderInjectionError:
                continue
    return original.sender


def thread_response(original: MailRequest, response: MailResponse) -> None:
    """Make *response* a reply in *original*'s thread (In-Reply-To, References)."""
    message_id = original.message_id
    if not message_id:
        return
    references = " ".join([*original.get_all("References"), message_id]).split()
    response["In-Reply-To"] = message_id
    response["References"] = " ".join(references)
