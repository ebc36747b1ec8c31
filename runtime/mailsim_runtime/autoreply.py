"""Automatic replies: when RFC 3834 allows one, how it is threaded, and how often.

An application's automatic answers (:meth:`Relay.reply`) never go to a bounce,
to mail that is itself automatic, to list mail or to bulk mail, and are marked
``Auto-Submitted: auto-replied``. Even so, a careless responder elsewhere that
ignores those rules could answer each answer for ever; :class:`ReplyLimit` caps how
many automatic replies one address gets in a window (RFC 3834 §2), which ends such
a loop.
"""

from __future__ import annotations

import email.policy
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailsim_runtime.mail import (
    MailRequest,
    MailResponse,
    addresses_in,
    check_header_value,
    is_simple_mailbox,
)

__all__ = ["ReplyLimit", "auto_reply_refusal", "reply_address", "thread_response"]

_BULK_PRECEDENCE = {"bulk", "list", "junk"}
_LONGEST_TO = 256  # characters of a Reply-To or From copied as written; else the address
_LIST_HEADERS = (
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
)


# Every header the rules below read, lower-cased: a message with none of them
# (most mail) passes each rule, which one look at its header names tells.
_WATCHED = frozenset(name.lower() for name in ("Auto-Submitted", "Precedence", *_LIST_HEADERS))


def auto_reply_refusal(message: MailRequest) -> str | None:
    """Why RFC 3834 forbids an automatic reply to *message*, or None if it allows one."""
    if not message.sender:
        return "the envelope sender is null (<>): never answer a bounce"
    if not message._has_any(_WATCHED):
        return None
    return _header_refusal(message)


def _header_refusal(message: MailRequest) -> str | None:
    """Why the headers of *message* forbid an automatic reply, or None."""
    auto_submitted = (message["Auto-Submitted"] or "no").split(";")[0].strip().lower()
    if auto_submitted != "no":
        return f"it is Auto-Submitted: {auto_submitted}"
    precedence = (message["Precedence"] or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"it has Precedence: {precedence}"
    listed = message._first_of(_LIST_HEADERS)
    if listed is not None:
        return f"it comes from a mailing list ({listed})"
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
            sent = self._sent.get(key)
            if sent is None:
                sent = self._sent[key] = deque()
            while sent and now - sent[0] >= self.window:
                sent.popleft()
            if len(sent) >= self.count:
                return False
            sent.append(now)
            return True


def reply_address(original: MailRequest) -> str:
    """Where an answer goes: Reply-To, else From, else the envelope sender; the first
    that names an address, as written if it can stand in a header as it is, else the
    bare address (a broken header must not stop the answer)."""
    for value in (original["Reply-To"], original["From"]):
        if value is not None and len(value) <= _LONGEST_TO and is_simple_mailbox(value):
            return value  # what the lines below come to for it, sooner
        found = [a for a in addresses_in([value]) if "@" in a] if value else []
        for candidate in [value, *found] if found else []:
            if candidate is not None and _fit_for_to(candidate):
                return candidate
    return original.sender


def _fit_for_to(value: str) -> bool:
    """Whether *value* can be a To header: no line break, and short and sane enough for
    the header registry, which raises on some values, and to fold (folding a long
    non-ASCII display name takes time cubic in its length: seconds at 2000 characters)."""
    if len(value) > _LONGEST_TO:
        return False
    if is_simple_mailbox(value):
        return True  # "a@b" or "Plain Name <a@b>": the registry takes it as it is
    try:
        check_header_value("To", value)
        email.policy.default.header_store_parse("To", value)
    except Exception:  # HeaderInjectionError, or the registry's AttributeError & co.
        return False
    return True


def thread_response(original: MailRequest, response: MailResponse) -> None:
    """Make *response* a reply in *original*'s thread (In-Reply-To, References)."""
    # Split on any whitespace, so that no line break of a hostile Message-ID (a form
    # feed, say) makes the reply refuse itself as a header injection.
    message_id = " ".join((original.message_id or "").split())
    if not message_id:
        return
    references = " ".join([*original.get_all("References"), message_id]).split()
    response["In-Reply-To"] = message_id
    response["References"] = " ".join(references)
