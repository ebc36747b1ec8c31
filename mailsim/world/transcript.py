"""Everything that crossed the world, in order: messages and state transitions.

Rendered as a readable conversation log (:meth:`Transcript.log`) and as a Mermaid
sequence diagram (:meth:`Transcript.mermaid`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailsim_runtime.mail import MailRequest

__all__ = ["MessageEvent", "Transcript", "TransitionEvent"]


# Slots: a world keeps every event, and each __dict__ would be one more object for
# every full garbage collection to walk.
@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One message handed from one party to one recipient."""

    time: datetime
    sender: str  # envelope sender; '' for a bounce
    recipient: str
    from_header: str
    subject: str
    message_id: str
    in_reply_to: str
    source: str  # who handed it over: a person's address, "app" or a host name
    destination: str  # "app", a person's address, or a host name
    outcome: str  # "delivered", "refused 550 5.1.1 …", "deferred 451 …", …

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    @classmethod
    def of(
        cls,
        message: MailRequest,
        *,
        time: datetime,
        source: str,
        destination: str,
        outcome: str,
        recipient: str | None = None,
    ) -> MessageEvent:
        """The event for *message* handed from *source* to *destination*."""
        return cls(*_message_fields(message, time, source, destination, outcome, recipient))


def _message_fields(
    message: MailRequest,
    time: datetime,
    source: str,
    destination: str,
    outcome: str,
    recipient: str | None = None,
) -> _MessageRecord:
    """The fields of :meth:`MessageEvent.of`'s event, in order."""
    # message[name] or "" for each of the four headers, in one call (two messages
    # for every echo the world delivers).
    from_header, subject, message_id, in_reply_to = message._values_or_empty(_EVENT_HEADERS)
    return (
        time,
        message.sender,
        message.recipient if recipient is None else recipient,
        from_header,
        subject,
        message_id,
        in_reply_to,
        source,
        destination,
        outcome,
    )


# The headers an event shows, each with its lower-cased key.
_EVENT_HEADERS = tuple(
    (name, name.lower()) for name in ("From", "Subject", "Message-ID", "In-Reply-To")
)


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """A state function ran for a conversation (stateful handlers only)."""

    time: datetime
    module: str
    key: str
    function: str
    from_state: str
    to_state: str
    message_id: str
    error: str = ""


Event = MessageEvent | TransitionEvent

# An event as a transcript may keep it until its events are read: the tuple of its
# fields, in order (see Transcript.record_message).
_MessageRecord = tuple[datetime, str, str, str, str, str, str, str, str, str]
_TransitionRecord = tuple[datetime, str, str, str, str, str, str, str]
_MESSAGE_FIELDS = len(MessageEvent.__slots__)


def _event(item: Event | _MessageRecord | _TransitionRecord) -> Event:
    if isinstance(item, tuple):
        if len(item) == _MESSAGE_FIELDS:
            return MessageEvent(*item)
        return TransitionEvent(*item)  # the length tells
    return item


def _participant(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "nobody"


def _quote(text: str) -> str:
    # Mermaid message text ends at a newline and treats ';' and '#' specially.
    return text.replace("\n", " ").replace(";", ",").replace("#", "No.")


class Transcript:
    """The world's record, appended to as things happen."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        # The events, some perhaps still as the tuples of their fields (see
        # record_message) until the events are first read.
        self._events: list[Event | _MessageRecord | _TransitionRecord] = []
        self._records = 0  # how many of _events are such tuples
        self._shared = False  # the list has been handed out: from now on, events only

    @property
    def events(self) -> list[Event]:
        """Every event, in order: the same list every time, kept up to date."""
        if self._records:
            self._events = [_event(item) for item in self._events]
            self._records = 0
        self._shared = True
        return self._events  # type: ignore[return-value]  # (no tuple is left in it)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: Event) -> None:
        self._events.append(event)

    # A world records one or two events for every message it delivers, and keeps
    # them all: as events (each an object every full garbage collection walks), a
    # long run spends a tenth of its time collecting. Recorded below, an event waits
    # as the tuple of its fields, strings and a time, which the collector stops
    # tracking, and is made when the events are read: the same event, made later.

    def record_message(
        self,
        message: MailRequest,
        *,
        time: datetime,
        source: str,
        destination: str,
        outcome: str,
        recipient: str | None = None,
    ) -> None:
        """``add(MessageEvent.of(message, ...))``, kept compact until read."""
        fields = _message_fields(message, time, source, destination, outcome, recipient)
        self._keep(fields)

    def record_transition(
        self,
        time: datetime,
        module: str,
        key: str,
        function: str,
        from_state: str,
        to_state: str,
        message_id: str,
        error: str = "",
    ) -> None:
        """``add(TransitionEvent(...))``, kept compact until read."""
        self._keep((time, module, key, function, from_state, to_state, message_id, error))

    def _keep(self, record: _MessageRecord | _TransitionRecord) -> None:
        if self._shared:  # whoever holds the list sees events in it, never tuples
            self._events.append(_event(record))
        else:
            self._events.append(record)
            self._records += 1

    @property
    def messages(self) -> list[MessageEvent]:
        return [e for e in self.events if isinstance(e, MessageEvent)]

    @property
    def transitions(self) -> list[TransitionEvent]:
        return [e for e in self.events if isinstance(e, TransitionEvent)]

    def states_visited(self) -> set[tuple[str, str]]:
        """(module, state) pairs the conversations were in or moved to."""
        seen: set[tuple[str, str]] = set()
        for event in self.transitions:
            seen.add((event.module, event.from_state))
            seen.add((event.module, event.to_state))
        return seen

    def _clock(self, moment: datetime) -> str:
        elapsed: timedelta = moment - self.start
        days, rest = divmod(int(elapsed.total_seconds()), 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        prefix = f"+{days}d " if days else ""
        return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}"

    def log(self) -> str:
        """The conversation as text, one line per message or transition."""
        lines: list[str] = []
        for event in self.events:
            stamp = self._clock(event.time)
            if isinstance(event, MessageEvent):
                sender = event.sender or "<>"
                outcome = "" if event.delivered else f"  [{event.outcome}]"
                lines.append(
                    f"{stamp}  {sender} → {event.recipient}  {event.subject!r}"
                    f"  {event.message_id}{outcome}"
                )
            else:
                short = event.module.rsplit(".", 1)[-1]
                failed = f"  !! {event.error}" if event.error else ""
                lines.append(
                    f"{stamp}      {short}[{event.key}] {event.from_state} → {event.to_state}"
                    f" ({event.function}){failed}"
                )
        return "\n".join(lines) if lines else "(nothing happened)"

    def mermaid(self) -> str:
        """A Mermaid sequence diagram of the conversation."""
        names: dict[str, str] = {}

        def participant(name: str) -> str:
            if name not in names:
                names[name] = _participant(name)
            return names[name]

        body: list[str] = []
        for event in self.events:
            if isinstance(event, MessageEvent):
                arrow = "->>" if event.delivered else "-x"
                text = event.subject or "(no subject)"
                if not event.delivered:
                    text += f" [{event.outcome}]"
                source = participant(event.source)
                destination = participant(event.destination)
                body.append(f"    {source}{arrow}{destination}: {_quote(text)}")
            else:
                short = event.module.rsplit(".", 1)[-1]
                body.append(
                    f"    Note over {participant('app')}: {_quote(short)} "
                    f"{_quote(event.key)} {event.from_state} → {event.to_state}"
                )
        header = ["sequenceDiagram"]
        header += [f"    participant {alias} as {_quote(name)}" for name, alias in names.items()]
        return "\n".join(header + body)
