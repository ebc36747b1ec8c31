"""The confirmation engine: "reply to this secret address to confirm".

A handler that must know a request really comes from its sender (a list
subscription, say) registers the message with a :class:`ConfirmationEngine` and
mails the sender a secret address such as ``python-confirm-SECRET@lists.example.com``.
The pending message is kept, verbatim, until the sender writes to that address
(:meth:`ConfirmationEngine.verify` hands it back) or the confirmation expires.

Everything the engine needs is passed in: where confirmations are stored (memory or
SQL), the clock that decides expiry, and how secrets are made, so a simulated world
can make them reproducible while production keeps them unguessable.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from mailsim_runtime import db
from mailsim_runtime.autoreply import thread_response
from mailsim_runtime.clock import Clock, SystemClock
from mailsim_runtime.db import confirmations
from mailsim_runtime.mail import MailRequest

if TYPE_CHECKING:
    from mailsim_runtime.relay import Relay
    from mailsim_runtime.view import Views

__all__ = [
    "ConfirmationEngine",
    "ConfirmationStorage",
    "MemoryConfirmationStorage",
    "PendingConfirmation",
    "SqlConfirmationStorage",
]

# A secret ends up in the local part of an address and in a route's capture, so it
# is held to characters that survive both unchanged.
_SECRET = re.compile(r"[A-Za-z0-9]+")


def _utc(moment: datetime) -> datetime:
    """*moment* in UTC; a naive datetime is refused rather than guessed at."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no timezone: clocks must give aware UTC datetimes")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class PendingConfirmation:
    """A message waiting for its sender to confirm it.

    ``sender`` is the lower-cased envelope sender; ``message`` the bytes exactly as
    received. The confirmation is valid from ``created`` until just before ``expires``.
    """

    secret: str
    target: str
    sender: str
    message: bytes
    created: datetime
    expires: datetime

    def expired(self, now: datetime) -> bool:
        """Whether the confirmation is no longer valid at *now*."""
        return now >= self.expires

    def request(self) -> MailRequest:
        """The pending message as a :class:`MailRequest` again.

        Only the sender is known of its envelope (the store keeps no recipient or
        peer), so ``recipient`` is empty and ``peer`` is None.
        """
        return MailRequest(None, self.sender, "", self.message)


class ConfirmationStorage(Protocol):
    """Where pending confirmations live between the request and the confirmation."""

    def add(self, pending: PendingConfirmation) -> None:
        """Store *pending*, replacing any pending one for the same target and sender."""
        ...

    def find(self, target: str, sender: str) -> PendingConfirmation | None:
        """The pending confirmation for *target* and the (lower-cased) *sender*."""
        ...

    def by_secret(self, secret: str) -> PendingConfirmation | None:
        """The pending confirmation with this secret."""
        ...

    def remove(self, secret: str) -> bool:
        """Forget the confirmation with this secret; whether there was one to forget."""
        ...

    def remove_expired(self, now: datetime) -> int:
        """Forget every confirmation expired at *now*; how many there were."""
        ...

    def all(self) -> list[PendingConfirmation]:
        """Every stored confirmation, oldest first."""
        ...


class MemoryConfirmationStorage:
    """Confirmations in a dict, for tests, the simulated world and single-process servers."""

    def __init__(self) -> None:
        self._by_secret: dict[str, PendingConfirmation] = {}
        # Handlers run in a worker pool: every read-modify-write holds the guard.
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryConfirmationStorage {len(self._by_secret)} pending>"

    def add(self, pending: PendingConfirmation) -> None:
        # Times are kept in UTC, as the SQL storage keeps them, so both give back equal
        # confirmations whatever zone the clock reported in.
        pending = replace(pending, created=_utc(pending.created), expires=_utc(pending.expires))
        with self._guard:
            self._drop_pair(pending.target, pending.sender)
            self._by_secret[pending.secret] = pending

    def find(self, target: str, sender: str) -> PendingConfirmation | None:
        with self._guard:
            matches = [
                p for p in self._by_secret.values() if p.target == target and p.sender == sender
            ]
        return max(matches, key=lambda p: p.created) if matches else None

    def by_secret(self, secret: str) -> PendingConfirmation | None:
        with self._guard:
            return self._by_secret.get(secret)

    def remove(self, secret: str) -> bool:
        with self._guard:
            return self._by_secret.pop(secret, None) is not None

    def remove_expired(self, now: datetime) -> int:
        with self._guard:
            expired = [s for s, p in self._by_secret.items() if p.expired(now)]
            for secret in expired:
                del self._by_secret[secret]
        return len(expired)

    def all(self) -> list[PendingConfirmation]:
        with self._guard:
            return sorted(self._by_secret.values(), key=lambda p: p.created)

    def _drop_pair(self, target: str, sender: str) -> None:
        stale = [s for s, p in self._by_secret.items() if p.target == target and p.sender == sender]
        for secret in stale:
            del self._by_secret[secret]


class SqlConfirmationStorage:
    """Confirmations in the ``confirmations`` table (see :mod:`mailsim_runtime.db`).

    Takes an engine, or a URL to make one from (then :meth:`close` disposes of it).
    The tables are expected to exist already: migrations create them. Times are
    stored as UTC; SQLite hands them back without a timezone, and they are read as UTC.
    """

    def __init__(self, engine_or_url: sa.Engine | str | sa.URL) -> None:
        if isinstance(engine_or_url, sa.Engine):
            self.engine = engine_or_url
            self._owns_engine = False
        else:
            self.engine = sa.create_engine(engine_or_url)
            self._owns_engine = True

    def __repr__(self) -> str:
        return f"<SqlConfirmationStorage {self.engine.url.render_as_string()}>"

    def close(self) -> None:
        """Dispose of the engine, if this storage made it."""
        if self._owns_engine:
            self.engine.dispose()

    def add(self, pending: PendingConfirmation) -> None:
        self._check_lengths(pending)
        table = confirmations
        with db.write_transaction(self.engine) as connection:
            # Delete and insert in one transaction, so no reader sees the pair with
            # neither the old confirmation nor the new one.
            connection.execute(
                table.delete().where(
                    table.c.target == pending.target, table.c.sender == pending.sender
                )
            )
            connection.execute(
                table.insert().values(
                    secret=pending.secret,
                    target=pending.target,
                    sender=pending.sender,
                    message=pending.message,
                    created=_utc(pending.created),
                    expires=_utc(pending.expires),
                )
            )

    def find(self, target: str, sender: str) -> PendingConfirmation | None:
        table = confirmations
        query = (
            sa.select(table)
            .where(table.c.target == target, table.c.sender == sender)
            .order_by(table.c.created.desc())
            .limit(1)
        )
        with db.read_connection(self.engine) as connection:
            row = connection.execute(query).first()
        return None if row is None else _from_row(row)

    def by_secret(self, secret: str) -> PendingConfirmation | None:
        table = confirmations
        with db.read_connection(self.engine) as connection:
            row = connection.execute(sa.select(table).where(table.c.secret == secret)).first()
        return None if row is None else _from_row(row)

    def remove(self, secret: str) -> bool:
        table = confirmations
        with db.write_transaction(self.engine) as connection:
            result = connection.execute(table.delete().where(table.c.secret == secret))
        return result.rowcount > 0

    def remove_expired(self, now: datetime) -> int:
        table = confirmations
        with db.write_transaction(self.engine) as connection:
            result = connection.execute(table.delete().where(table.c.expires <= _utc(now)))
        return result.rowcount

    def all(self) -> list[PendingConfirmation]:
        table = confirmations
        query = sa.select(table).order_by(table.c.created, table.c.secret)
        with db.read_connection(self.engine) as connection:
            return [_from_row(row) for row in connection.execute(query)]

    @staticmethod
    def _check_lengths(pending: PendingConfirmation) -> None:
        # PostgreSQL enforces VARCHAR lengths and SQLite does not; checking here makes
        # both refuse the same values, with a message that says which.
        for column, value in (
            (confirmations.c.secret, pending.secret),
            (confirmations.c.target, pending.target),
            (confirmations.c.sender, pending.sender),
        ):
            limit = getattr(column.type, "length", None)
            if limit is not None and len(value) > limit:
                raise ValueError(
                    f"confirmation {column.name} is {len(value)} characters; at most {limit} fit"
                )


def _from_row(row: sa.Row[Any]) -> PendingConfirmation:
    def aware(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    return PendingConfirmation(
        secret=row.secret,
        target=row.target,
        sender=row.sender,
        message=bytes(row.message),
        created=aware(row.created),
        expires=aware(row.expires),
    )


def _default_secret() -> str:
    return secrets.token_hex(16)


class ConfirmationEngine:
    """Registers messages that need confirming, mails the secret, and checks it.

    A pending confirmation is keyed by (target, lower-cased envelope sender):
    registering again for the same pair replaces the earlier one, whose secret then
    stops working. Confirmations live for *lifetime*, measured on *clock*.
    """

    def __init__(
        self,
        storage: ConfirmationStorage,
        *,
        clock: Clock | None = None,
        lifetime: timedelta = timedelta(days=3),
        new_secret: Callable[[], str] | None = None,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError(f"a confirmation lifetime must be positive, not {lifetime}")
        self.storage = storage
        self.clock: Clock = clock or SystemClock()
        self.lifetime = lifetime
        self.new_secret = new_secret or _default_secret

    def __repr__(self) -> str:
        return f"<ConfirmationEngine {self.storage!r} lifetime={self.lifetime}>"

    def register(self, target: str, message: MailRequest) -> PendingConfirmation:
        """Keep *message* until its envelope sender confirms it for *target*."""
        sender = message.sender.lower()
        if not sender:
            # Nobody can confirm from the null sender, and mailing <> a request would
            # answer a bounce.
            raise ValueError("cannot ask the null sender (<>) to confirm anything")
        secret = self.new_secret()
        if not _SECRET.fullmatch(secret):
            raise ValueError(f"confirmation secrets must be letters and digits, not {secret!r}")
        now = _utc(self.clock.now())
        pending = PendingConfirmation(
            secret=secret,
            target=target,
            sender=sender,
            message=message.original,
            created=now,
            expires=now + self.lifetime,
        )
        self.storage.add(pending)
        return pending

    def address(self, pending_or_secret: PendingConfirmation | str, host: str) -> str:
        """The address that confirms: ``{target}-confirm-{secret}@{host}``."""
        if isinstance(pending_or_secret, PendingConfirmation):
            pending = pending_or_secret
        else:
            found = self.storage.by_secret(pending_or_secret)
            if found is None:
                raise LookupError("no pending confirmation has that secret")
            pending = found
        return f"{pending.target}-confirm-{pending.secret}@{host}"

    def verify(self, target: str, sender: str, secret: str) -> MailRequest | None:
        """The pending message, if *secret* confirms it for *target* and *sender*.

        A confirmed message is removed, so it is handed back once only. A wrong
        secret leaves the pending confirmation alone (a guesser must not be able to
        cancel it); an expired one is removed. Returns None unless confirmed.
        """
        pending = self.storage.find(target, sender.lower())
        if pending is None:
            return None
        # The secret is compared here, in constant time, rather than looked up in the
        # store, where the time an index lookup takes could leak how much matched.
        if not hmac.compare_digest(pending.secret.encode(), secret.encode()):
            return None
        if pending.expired(_utc(self.clock.now())):
            self.storage.remove(pending.secret)
            return None
        # Only the caller whose removal succeeds confirms: two deliveries of the same
        # confirmation racing each other do not both get the message.
        if not self.storage.remove(pending.secret):
            return None
        return pending.request()

    def cancel(self, target: str, sender: str) -> None:
        """Forget the pending confirmation for *target* and *sender*, if any."""
        pending = self.storage.find(target, sender.lower())
        if pending is not None:
            self.storage.remove(pending.secret)

    def expire(self) -> int:
        """Forget every expired confirmation; how many there were."""
        return self.storage.remove_expired(_utc(self.clock.now()))

    def send(
        self,
        relay: Relay,
        views: Views,
        *,
        target: str,
        message: MailRequest,
        template: str,
        host: str,
        from_: str,
        subject: str,
        variables: Mapping[str, Any] | None = None,
    ) -> PendingConfirmation:
        """Register *message* and mail its sender the confirmation request.

        *template* names the body template (an ``.html``/``.htm`` name makes an HTML
        body, anything else a text one); *from_* and *subject* are header template
        strings, as for :meth:`Views.respond`. The templates see *variables* plus
        ``confirm_address``, ``target`` and ``sender``, which win over variables of
        the same names. The mail goes to the envelope sender, threaded as a reply
        and marked ``Auto-Submitted: auto-replied`` so that autoresponders do not
        answer it.
        """
        pending = self.register(target, message)
        context = {
            **(variables or {}),
            "confirm_address": self.address(pending, host),
            "target": target,
            "sender": message.sender,
        }
        is_html = template.lower().endswith((".html", ".htm"))
        response = views.respond(
            context,
            text=None if is_html else template,
            html=template if is_html else None,
            # The sender is user data: it goes in as a variable, never as template text.
            to="{{ sender }}",
            from_=from_,
            subject=subject,
        )
        thread_response(message, response)
        response["Auto-Submitted"] = "auto-replied"
        # The envelope names the sender itself, whatever its To header parses back as.
        relay.deliver(response, recipients=[message.sender])
        return pending
