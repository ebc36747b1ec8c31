"""The :class:`App`: one mail application — its router, state store, relay, views and
settings — and :func:`current_app`, through which handlers reach it.

The current app is a context variable bound for each delivery, so two apps (a
server and a simulated world, or two worlds) can run the same handler modules side
by side in one process without sharing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mailsim_runtime.addresses import AddressRefused, canonical_address
from mailsim_runtime.autoreply import ReplyLimit
from mailsim_runtime.clock import Clock, SystemClock
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.relay import Outbox, Relay, RetryPolicy
from mailsim_runtime.routing import Delivery, Router, Sink
from mailsim_runtime.state import MemoryStateStore, StateStore
from mailsim_runtime.transport import FunctionTransport, Transport

if TYPE_CHECKING:
    from jinja2 import BytecodeCache
    from sqlalchemy import Connection, Engine

    from mailsim_runtime.view import Views

__all__ = ["App", "NoCurrentApp", "current_app"]

_current: ContextVar[App] = ContextVar("mailsim_current_app")


class NoCurrentApp(RuntimeError):
    """:func:`current_app` was called outside a delivery (and outside ``app.bound()``)."""


def current_app() -> App:
    """The app delivering the message being handled right now."""
    try:
        return _current.get()
    except LookupError:
        raise NoCurrentApp(
            "no mailsim app is bound here: current_app() works inside a handler, "
            "or inside `with app.bound():`"
        ) from None


class App:
    """A mail application: everything a handler needs, in one object.

    Only *handlers* is required; every other part has a development default (an
    in-memory state store, a transport that only records, the system clock).
    *compiled_templates* is a Jinja bytecode cache that apps with the same templates
    share, so that each compiles a template (a file, or a header template string)
    only when none of them has yet.
    """

    def __init__(
        self,
        handlers: Sequence[str | ModuleType] = (),
        *,
        hostname: str = "localhost",
        domains: Sequence[str] = (),
        states: StateStore | None = None,
        transport: Transport | None = None,
        templates: str | Path | Sequence[str | Path] | None = None,
        compiled_templates: BytecodeCache | None = None,
        router_defaults: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        undeliverable: Sink | None = None,
        outbox: Outbox | None = None,
        retry: RetryPolicy | None = None,
        reply_limit: ReplyLimit | None = None,
        new_message_id: Callable[[], str] | None = None,
        queues: Mapping[str, Any] | None = None,
        spam: Any = None,
        confirmations: Any = None,
        database: Engine | None = None,
    ) -> None:
        self.hostname = hostname
        self.domains = [d.lower() for d in (domains or [hostname])]
        self.clock: Clock = clock or SystemClock()
        self.states: StateStore = states if states is not None else MemoryStateStore(self.clock)
        self.router = Router(self.states, defaults=router_defaults, undeliverable=undeliverable)
        self.relay = Relay(
            transport if transport is not None else FunctionTransport(),
            hostname=hostname,
            clock=self.clock,
            outbox=outbox,
            retry=retry,
            new_message_id=new_message_id,
            reply_limit=reply_limit,
        )
        self.settings: dict[str, Any] = dict(settings or {})
        self.queues: dict[str, Any] = dict(queues or {})
        self.spam = spam
        self.confirmations = confirmations
        self._database = database
        self._templates = templates
        self._compiled_templates = compiled_templates
        self._views: Views | None = None
        if handlers:
            self.router.load(*handlers)

    def __repr__(self) -> str:
        return f"<App {self.hostname} handlers={self.router.modules}>"

    @property
    def views(self) -> Views:
        """The app's templates (an error names the missing setting when there are none)."""
        if self._views is None:
            if self._templates is None:
                raise RuntimeError(
                    "this app has no templates folder: pass App(templates=...) "
                    "or set [app] templates in mailsim.toml"
                )
            from mailsim_runtime.view import Views

            folders = (
                [self._templates]
                if isinstance(self._templates, str | Path)
                else list(self._templates)
            )
            self._views = Views(folders)
            if self._compiled_templates is not None:
                # Set before the first template is loaded, as Jinja requires.
                self._views.environment.bytecode_cache = self._compiled_templates
        return self._views

    @property
    def database(self) -> Engine:
        """The application's own database (for its tables: members, tickets, posts…)."""
        if self._database is None:
            raise RuntimeError(
                "this app has no database: pass App(database=engine) or build it from "
                "a mailsim.toml ([database] url)"
            )
        return self._database

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction on :attr:`database`.

        Inside a handler whose conversation is stored in the same database, this is
        the conversation's own transaction: the handler's writes and its state
        change are committed together, or not at all.
        """
        from mailsim_runtime.db import write_transaction

        return write_transaction(self.database)

    @contextmanager
    def bound(self) -> Iterator[App]:
        """Make this the current app for the block."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def deliver(self, message: MailRequest) -> Delivery:
        """Route *message* to its recipient's handlers with this app current."""
        # What ``with self.bound():`` does, without a generator per message.
        token = _current.set(self)
        try:
            return self.router.deliver(message)
        finally:
            _current.reset(token)

    def accepts(self, address: str) -> bool:
        """Whether to take mail for *address*: the receiver's question at RCPT.

        Only addresses in the app's own domains are taken (the decision rests on the
        recipient, never the sender: RFC 2505), and of those the ones a route takes,
        plus ``postmaster`` (RFC 5321 §4.5.1).
        """
        try:
            canonical = canonical_address(address)
        except AddressRefused:
            return False
        local, _, domain = canonical.rpartition("@")
        if domain not in self.domains:
            return False
        return local.lower() == "postmaster" or self.router.accepts(canonical)

    def use(
        self,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        new_message_id: Callable[[], str] | None = None,
    ) -> None:
        """Swap the transport, the clock or the Message-ID maker of every part at once
        (the simulated world puts its own in)."""
        if transport is not None:
            self.relay.transport = transport
        if new_message_id is not None:
            self.relay.new_message_id = new_message_id
        if clock is not None:
            self.clock = clock
            for part in (self.relay, self.states, self.confirmations):
                if part is not None and hasattr(part, "clock"):
                    part.clock = clock
