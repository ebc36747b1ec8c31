"""Routes, the handler decorators and the :class:`Router`.

A route pattern such as ``"(list)-(action)@(host)"`` names its captures; each
capture's regular expression comes from the decorator's keyword arguments, else
the router's defaults, else ``.+``. Patterns match whole addresses; the domain part
is matched case-insensitively.

The decorators only annotate functions. A :class:`Router` is an ordinary object:
it loads handler modules by name, builds its routing table from the annotations
and delivers messages, so any number of routers can live in one process.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, TypeVar

from mailsim_runtime.addresses import AddressRefused, canonical_address
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.state import StateStore

__all__ = [
    "ERROR_STATE",
    "Delivery",
    "HandlerCall",
    "Match",
    "Route",
    "Router",
    "Sink",
    "compile_pattern",
    "nolocking",
    "route",
    "route_like",
    "state_key_generator",
    "stateless",
]

log = logging.getLogger("mailsim.routing")

ERROR_STATE = "ERROR"
DEFAULT_CAPTURE = ".+"
_CAPTURE = re.compile(r"\(([A-Za-z_][A-Za-z0-9_]*)\)")

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)
StateKeyGenerator = Callable[[str, MailRequest], str]


# Patterns ---------------------------------------------------------------------


def _compile_part(text: str, captures: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    out: list[str] = []
    position = 0
    for found in _CAPTURE.finditer(text):
        out.append(re.escape(text[position : found.start()]))
        name = found.group(1)
        regex = captures.get(name, defaults.get(name, DEFAULT_CAPTURE))
        out.append(f"(?P<{name}>{regex})")
        position = found.end()
    out.append(re.escape(text[position:]))
    return "".join(out)


def compile_pattern(
    pattern: str,
    captures: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> re.Pattern[str]:
    """Compile a route pattern into an anchored regular expression.

    >>> compile_pattern("(list)@(host)", {"host": r"example\\.com"}).pattern
    '^(?P<list>.+)@(?i:(?P<host>example\\\\.com))$'
    """
    captures = captures or {}
    defaults = defaults or {}
    local, at, domain = pattern.rpartition("@")
    if not at:
        body = _compile_part(pattern, captures, defaults)
    else:
        body = (
            _compile_part(local, captures, defaults)
            + "@(?i:"
            + _compile_part(domain, captures, defaults)
            + ")"
        )
    try:
        return re.compile(f"^{body}$")
    except re.error as error:
        raise ValueError(f"route pattern {pattern!r} does not compile: {error}") from error


# Decorators -------------------------------------------------------------------


@dataclass
class HandlerSpec:
    """What the decorators have said about one handler function."""

    patterns: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    stateless: bool = False
    locking: bool = True


_SPEC_ATTRIBUTE = "__mailsim_handler__"
_KEY_ATTRIBUTE = "__mailsim_state_key__"


def handler_spec(func: Handler) -> HandlerSpec | None:
    spec = getattr(func, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, HandlerSpec) else None


def _spec_for(func: Handler) -> HandlerSpec:
    spec = handler_spec(func)
    if spec is None:
        spec = HandlerSpec()
        setattr(func, _SPEC_ATTRIBUTE, spec)
    return spec


def route(pattern: str, **captures: str) -> Callable[[F], F]:
    """Route mail whose recipient matches *pattern* to the decorated function."""

    def annotate(func: F) -> F:
        _spec_for(func).patterns.append((pattern, dict(captures)))
        return func

    return annotate


def route_like(other: Handler) -> Callable[[F], F]:
    """Give the decorated function the same routes as *other*."""
    other_spec = handler_spec(other)
    if other_spec is None or not other_spec.patterns:
        raise ValueError(f"route_like({other.__name__}): that function has no @route")

    def annotate(func: F) -> F:
        _spec_for(func).patterns.extend(other_spec.patterns)
        return func

    return annotate


def stateless(func: F) -> F:
    """Run for every matching message, whatever the conversation's state."""
    _spec_for(func).stateless = True
    return func


def nolocking(func: F) -> F:
    """Run without holding the conversation's lock (for handlers that only read)."""
    _spec_for(func).locking = False
    return func


def state_key_generator(func: StateKeyGenerator) -> StateKeyGenerator:
    """Mark the module's function that names conversations: ``(module_name, message) -> key``."""
    setattr(func, _KEY_ATTRIBUTE, True)
    return func


# Routing table ----------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str
    regex: re.Pattern[str]
    functions: tuple[Handler, ...]


@dataclass(frozen=True)
class Match:
    function: Handler
    captures: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.function.__module__}.{self.function.__name__}"


@dataclass(frozen=True)
class HandlerCall:
    """One handler run for one delivery, with the transition it made."""

    module: str
    key: str
    function: str
    from_state: str
    to_state: str
    stateless: bool
    error: BaseException | None = None


@dataclass
class Delivery:
    """What the router did with one message for one recipient."""

    message: MailRequest
    calls: list[HandlerCall] = field(default_factory=list)
    undeliverable: str | None = None

    @property
    def errors(self) -> list[BaseException]:
        return [call.error for call in self.calls if call.error is not None]

    @property
    def transitions(self) -> list[HandlerCall]:
        return [c for c in self.calls if not c.stateless]


class Sink(Protocol):
    """Where mail goes that no handler took, or whose handler failed (what `push`
    returns, a queue key say, is not used)."""

    def push(self, message: MailRequest, reason: str) -> object: ...


class _LockTable:
    """One lock per conversation, dropped when nobody holds or waits for it.

    ``lock = table.join(key)``, then hold *lock*, then ``table.leave(key)`` (in a
    ``finally``): plain calls rather than a generator context manager, which would
    cost more than the rest of the table on every delivery.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}

    def join(self, key: tuple[str, str]) -> threading.Lock:
        """Count one more user of *key*'s lock (made if need be), and return it."""
        with self._guard:
            found = self._locks.get(key)
            lock, users = (threading.Lock(), 0) if found is None else found
            self._locks[key] = (lock, users + 1)
        return lock

    def leave(self, key: tuple[str, str]) -> None:
        """One user fewer; the last one drops the lock."""
        with self._guard:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _state_name(result: object, function: Handler) -> str | None:
    if result is None:
        return None
    name = getattr(result, "__name__", None)
    if not callable(result) or not isinstance(name, str):
        raise TypeError(
            f"{function.__module__}.{function.__name__} returned {result!r}; a state "
            "function returns the next state function, or None to stay"
        )
    return name


class Router:
    """Routes mail to handler functions and runs their per-conversation state machine."""

    def __init__(
        self,
        states: StateStore,
        *,
        defaults: Mapping[str, str] | None = None,
        undeliverable: Sink | None = None,
    ) -> None:
        self.states = states
        self.defaults = dict(defaults or {})
        self.undeliverable = undeliverable
        self._modules: list[ModuleType] = []
        self._routes: tuple[Route, ...] = ()
        self._key_generators: dict[str, StateKeyGenerator] = {}
        self._error_handlers: dict[str, Handler] = {}
        self._locks = _LockTable()

    def __repr__(self) -> str:
        return f"<Router {len(self._routes)} routes from {[m.__name__ for m in self._modules]}>"

    # Loading --------------------------------------------------------------------

    def load(self, *modules: str | ModuleType) -> None:
        """Import handler modules (by name or as module objects) and add their routes."""
        for item in modules:
            module = importlib.import_module(item) if isinstance(item, str) else item
            if module not in self._modules:
                self._modules.append(module)
        self._rebuild()

    def reload(self) -> None:
        """Re-import every loaded handler module and rebuild the routing table."""
        self._modules = [
            importlib.reload(m) if m.__name__ in sys.modules else m for m in self._modules
        ]
        self._rebuild()

    @property
    def modules(self) -> list[str]:
        return [m.__name__ for m in self._modules]

    def _rebuild(self) -> None:
        table: dict[str, tuple[str, re.Pattern[str], list[Handler]]] = {}
        key_generators: dict[str, StateKeyGenerator] = {}
        error_handlers: dict[str, Handler] = {}
        for module in self._modules:
            for name, value in vars(module).items():
                if not callable(value) or getattr(value, "__module__", None) != module.__name__:
                    continue
                if getattr(value, _KEY_ATTRIBUTE, False):
                    key_generators[module.__name__] = value
                if name == ERROR_STATE:
                    error_handlers[module.__name__] = value
                spec = handler_spec(value)
                if spec is None:
                    continue
                for pattern, captures in spec.patterns:
                    regex = compile_pattern(pattern, captures, self.defaults)
                    entry = table.setdefault(regex.pattern, (pattern, regex, []))
                    if value not in entry[2]:
                        entry[2].append(value)
        self._routes = tuple(Route(p, r, tuple(f)) for p, r, f in table.values())
        self._key_generators = key_generators
        self._error_handlers = error_handlers

    # Matching -------------------------------------------------------------------

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    def match(self, address: str) -> list[Match]:
        """Every function whose route takes *address*, in routing-table order.

        Raises :class:`AddressRefused` for an address that can never be routed.
        """
        canonical = canonical_address(address)
        found: list[Match] = []
        for entry in self._routes:
            hit = entry.regex.match(canonical)
            if hit:
                # A loop: a comprehension would make a cell of hit on every call.
                for function in entry.functions:
                    found.append(Match(function, hit.groupdict()))
        return found

    def accepts(self, address: str) -> bool:
        """Whether some route takes *address* (the receiver's RCPT check)."""
        try:
            canonical = canonical_address(address)
        except AddressRefused:
            return False
        # bool(self.match(address)), without building the matches: every route
        # reaches at least one function. (A loop: a generator would make a cell of
        # canonical on every call, Python < 3.12.)
        for entry in self._routes:  # noqa: SIM110
            if entry.regex.match(canonical):
                return True
        return False

    def explain(self, address: str) -> str:
        """Which functions *address* would reach, and why — for ``mailsim routes --test``."""
        try:
            canonical = canonical_address(address)
            matches = self.match(canonical)
        except AddressRefused as refused:
            return f"{address}: refused: {refused}"
        if not matches:
            return f"{canonical}: no route takes it (it would be refused at RCPT)"
        lines = [f"{canonical}:"]
        for found in matches:
            spec = handler_spec(found.function)
            kind = "stateless" if spec is not None and spec.stateless else "state"
            captured = ", ".join(f"{k}={v!r}" for k, v in found.captures.items())
            lines.append(f"  {found.name} ({kind}) {captured}".rstrip())
        return "\n".join(lines)

    def state_names(self) -> dict[str, list[str]]:
        """Each loaded module's states: its routed state functions, and ERROR if it has one."""
        found: dict[str, list[str]] = {module.__name__: [] for module in self._modules}
        for entry in self._routes:
            for function in entry.functions:
                spec = handler_spec(function)
                names = found.setdefault(function.__module__, [])
                if (spec is None or not spec.stateless) and function.__name__ not in names:
                    names.append(function.__name__)
        for module in self._error_handlers:
            if ERROR_STATE not in found.setdefault(module, []):
                found[module].append(ERROR_STATE)
        return {module: names for module, names in found.items() if names}

    def dump(self) -> str:
        """The routing table, one pattern a line with the functions it reaches."""
        lines = []
        for entry in self._routes:
            names = ", ".join(f"{f.__module__}.{f.__name__}" for f in entry.functions)
            lines.append(f"{entry.pattern}  [{entry.regex.pattern}]  -> {names}")
        return "\n".join(lines)

    # Delivery -------------------------------------------------------------------

    def state_key(self, module: str, message: MailRequest) -> str:
        generator = self._key_generators.get(module)
        if generator is not None:
            return generator(module, message)
        return message.sender.lower()

    def deliver(self, message: MailRequest) -> Delivery:
        """Run every handler that should see *message* for its recipient."""
        delivery = Delivery(message)
        try:
            matches = self.match(message.recipient)
        except AddressRefused as refused:
            self._set_aside(delivery, f"refused recipient: {refused}")
            return delivery
        calls = delivery.calls
        stateful: dict[str, dict[str, Match]] = {}
        for found in matches:
            function = found.function
            spec = handler_spec(function)
            if spec is not None and spec.stateless:
                calls.append(self._run_stateless(found, message))
            else:
                by_state = stateful.get(function.__module__)
                if by_state is None:
                    by_state = stateful[function.__module__] = {}
                by_state.setdefault(function.__name__, found)
        for module, by_state in stateful.items():
            call = self._run_state(module, by_state, message)
            if call is not None:
                calls.append(call)
        if not calls:
            self._set_aside(delivery, self._no_handler_reason(matches, message))
            return delivery
        for call in calls:  # delivery.errors[0], without the list
            if call.error is not None:
                self._set_aside(delivery, f"handler failed: {call.error!r}")
                break
        return delivery

    def _run_stateless(self, found: Match, message: MailRequest) -> HandlerCall:
        module, name = found.function.__module__, found.function.__name__
        key = self.state_key(module, message)
        error = None
        try:
            found.function(message, **found.captures)
        except Exception as exc:
            error = exc
            self._log_failure(found.function, message, exc, outcome="its state is unchanged")
        return HandlerCall(module, key, name, "", "", stateless=True, error=error)

    def _pick(self, module: str, state: str, by_state: Mapping[str, Match]) -> Match | None:
        if state in by_state:
            return by_state[state]
        if state == ERROR_STATE and module in self._error_handlers:
            captures = next(iter(by_state.values())).captures if by_state else {}
            return Match(self._error_handlers[module], captures)
        return None

    def _run_state(
        self, module: str, by_state: Mapping[str, Match], message: MailRequest
    ) -> HandlerCall | None:
        key = self.state_key(module, message)
        peeked = self._pick(module, self.states.get(module, key), by_state)
        if peeked is None:
            return None
        spec = handler_spec(peeked.function)
        if spec is not None and not spec.locking:
            return self._transition(module, key, by_state, message)
        lock = self._locks.join((module, key))
        try:
            with lock:
                return self._transition(module, key, by_state, message)
        finally:
            self._locks.leave((module, key))

    def _transition(
        self, module: str, key: str, by_state: Mapping[str, Match], message: MailRequest
    ) -> HandlerCall | None:
        with self.states.transition(module, key, message.sender) as conversation:
            before = conversation.state
            found = self._pick(module, before, by_state)
            if found is None:  # the state moved on while we waited for the lock
                return None
            error = None
            try:
                result = found.function(message, **found.captures)
                conversation.state = _state_name(result, found.function) or before
            except Exception as exc:
                error = exc
                conversation.state = ERROR_STATE
                self._log_failure(
                    found.function, message, exc, outcome=f"conversation {key!r} moves to ERROR"
                )
            return HandlerCall(
                module, key, found.function.__name__, before, conversation.state, False, error
            )

    def _no_handler_reason(self, matches: Iterable[Match], message: MailRequest) -> str:
        names = sorted({m.name for m in matches})
        if not names:
            return f"no route takes {message.recipient}"
        modules = sorted({m.function.__module__ for m in matches})
        states = [f"{m}={self.states.get(m, self.state_key(m, message))}" for m in modules]
        return (
            f"no handler for {message.recipient} in the conversation's state "
            f"({', '.join(states)}); routes reach {', '.join(names)}"
        )

    def _set_aside(self, delivery: Delivery, reason: str) -> None:
        delivery.undeliverable = reason
        log.warning(
            "undeliverable message %s from %r to %r: %s",
            delivery.message.message_id,
            delivery.message.sender,
            delivery.message.recipient,
            reason,
        )
        if self.undeliverable is not None:
            self.undeliverable.push(delivery.message, reason)

    @staticmethod
    def _log_failure(
        function: Handler, message: MailRequest, error: BaseException, *, outcome: str
    ) -> None:
        log.error(
            "handler %s.%s failed on message %s from %r to %r; %s",
            function.__module__,
            function.__name__,
            message.message_id,
            message.sender,
            message.recipient,
            outcome,
            exc_info=error,
        )
