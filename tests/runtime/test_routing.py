import re
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mailsim_runtime import App, current_app
from mailsim_runtime.addresses import AddressRefused
from mailsim_runtime.app import NoCurrentApp
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.routing import (
    Router,
    compile_pattern,
    nolocking,
    route,
    route_like,
    stateless,
)
from mailsim_runtime.state import MemoryStateStore
from sample_handlers import fsm


def mail(sender: str, recipient: str, subject: str = "hi") -> MailRequest:
    raw = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.monotonic_ns()}@t>\r\n\r\nbody\r\n"
    )
    return MailRequest("127.0.0.1", sender, recipient, raw.encode())


# Pattern compilation -----------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
# separators are never empty: two adjacent captures would make the split ambiguous
literal = st.text(alphabet="abc-.+_=", min_size=1, max_size=6)


@given(
    parts=st.lists(st.tuples(literal, names), min_size=1, max_size=4, unique_by=lambda p: p[1]),
    domain=st.from_regex(r"[a-z]{1,8}\.(com|org)", fullmatch=True),
)
def test_every_capture_becomes_a_named_group_matching_its_value(
    parts: list[tuple[str, str]], domain: str
) -> None:
    pattern = "".join(f"{text}({name})" for text, name in parts) + "@" + domain
    regex = compile_pattern(pattern, {name: "[0-9]+" for _, name in parts})
    assert set(regex.groupindex) == {name for _, name in parts}
    values = {name: str(i * 7 + 1) for i, (_, name) in enumerate(parts)}
    address = "".join(f"{text}{values[name]}" for text, name in parts) + "@" + domain.upper()
    found = regex.match(address)
    assert found is not None, (pattern, address)
    assert found.groupdict() == values
    # anchored at both ends
    assert regex.match("x" + address) is None
    assert regex.match(address + ".evil") is None


@given(local=st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True))
def test_local_part_is_case_sensitive_and_domain_is_not(local: str) -> None:
    regex = compile_pattern(f"{local}@Lists.Example.com")
    assert regex.match(f"{local}@lists.EXAMPLE.com")
    if local.swapcase() != local:
        assert regex.match(f"{local.swapcase()}@lists.example.com") is None


def test_capture_regex_from_decorator_then_defaults_then_anything() -> None:
    regex = compile_pattern("(a)-(b)-(c)@x.org", {"a": "[0-9]+"}, {"b": "[a-z]+", "a": "zzz"})
    assert regex.pattern == r"^(?P<a>[0-9]+)\-(?P<b>[a-z]+)\-(?P<c>.+)@(?i:x\.org)$"
    with pytest.raises(ValueError, match="does not compile"):
        compile_pattern("(a)@x.org", {"a": "("})


def test_decorators_only_annotate() -> None:
    def handler(message: MailRequest) -> None:
        return None

    decorated = stateless(route("a@b.org")(nolocking(handler)))
    assert decorated is handler
    with pytest.raises(ValueError, match="has no @route"):
        route_like(lambda m: None)


# Router ------------------------------------------------------------------------------


def make_app(*modules: object, undeliverable: MemoryQueue | None = None) -> App:
    return App([fsm, *modules], undeliverable=undeliverable)  # type: ignore[list-item]


def test_state_function_returns_next_state_or_none_to_stay() -> None:
    app = make_app()
    sender = "Alice@Example.org"
    delivery = app.deliver(mail(sender, "go@fsm.example.com"))
    assert [(c.function, c.from_state, c.to_state) for c in delivery.calls] == [
        ("START", "START", "WAITING")
    ]
    assert delivery.calls[0].key == "alice@example.org"  # lower-cased sender
    assert app.states.get(fsm.__name__, "alice@example.org") == "WAITING"
    app.deliver(mail(sender, "go@fsm.example.com"))
    assert app.states.get(fsm.__name__, "alice@example.org") == "DONE"
    app.deliver(mail("bob@example.org", "stay@fsm.example.com"))
    assert app.states.get(fsm.__name__, "bob@example.org") == "START"


def test_calling_another_state_runs_it_now() -> None:
    app = make_app()
    app.deliver(mail("a@example.org", "chain@fsm.example.com"))
    assert app.settings["calls"] == ["START chain", "WAITING chain"]
    assert app.states.get(fsm.__name__, "a@example.org") == "DONE"


def test_an_exception_moves_to_error_and_error_takes_the_next_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = MemoryQueue()
    app = make_app(undeliverable=sink)
    failing = mail("a@example.org", "boom@fsm.example.com")
    delivery = app.deliver(failing)
    assert [type(e) for e in delivery.errors] == [RuntimeError]
    assert delivery.calls[0].to_state == "ERROR"
    assert app.states.get(fsm.__name__, "a@example.org") == "ERROR"
    assert failing.message_id is not None and failing.message_id in caplog.text
    assert sink.count() == 1  # the message that broke the handler is kept
    app.deliver(mail("a@example.org", "anything@fsm.example.com"))
    assert app.settings["calls"][-1] == "ERROR anything@fsm.example.com"
    assert app.states.get(fsm.__name__, "a@example.org") == "START"


def test_returning_something_that_is_not_a_state_is_an_error() -> None:
    app = make_app()
    delivery = app.deliver(mail("a@example.org", "bad@fsm.example.com"))
    assert isinstance(delivery.errors[0], TypeError)
    assert "returns the next state function" in str(delivery.errors[0])


def test_mail_no_route_takes_goes_to_the_undeliverable_sink() -> None:
    sink = MemoryQueue()
    app = make_app(undeliverable=sink)
    delivery = app.deliver(mail("a@example.org", "nobody@elsewhere.example"))
    assert delivery.calls == []
    assert delivery.undeliverable == "no route takes nobody@elsewhere.example"
    stored = sink.get(sink.keys()[0])
    assert stored is not None and b"X-Mailsim-Reason: no route takes" in stored


def test_mail_for_a_state_whose_function_does_not_route_it_is_set_aside() -> None:
    sink = MemoryQueue()
    app = make_app(undeliverable=sink)
    # DONE has a pattern of its own; in START nothing takes x@done.example.com
    delivery = app.deliver(mail("a@example.org", "x@done.example.com"))
    assert delivery.undeliverable is not None
    assert "START" in delivery.undeliverable and "fsm.DONE" in delivery.undeliverable
    assert sink.count() == 1


def test_refused_addresses_are_never_routed() -> None:
    app = make_app()
    assert not app.accepts("x%evil.example@fsm.example.com")
    assert app.deliver(mail("a@example.org", '"x@evil.example"@fsm.example.com')).undeliverable


def test_state_key_generator_names_the_conversation() -> None:
    from sample_handlers import tickets

    app = App([tickets])
    app.deliver(mail("alice@example.org", "ticket-7@help.example.com"))
    app.deliver(mail("bob@example.org", "ticket-7@help.example.com"))
    assert app.states.get(tickets.__name__, "7") == "CLOSED"  # two senders, one conversation
    assert app.states.get(tickets.__name__, "alice@example.org") == "START"


def test_two_conversations_never_wait_for_each_other() -> None:
    from sample_handlers import tickets

    app = App([tickets])
    gate = threading.Event()
    app.settings["gate-1"] = gate
    held = threading.Thread(
        target=app.deliver, args=(mail("a@example.org", "ticket-1@help.example.com"),)
    )
    held.start()
    while "1" not in app.settings.get("entered", []):
        time.sleep(0.001)
    started = time.monotonic()
    app.deliver(mail("b@example.org", "ticket-2@help.example.com"))  # not blocked by ticket 1
    assert time.monotonic() - started < 5
    assert app.states.get(tickets.__name__, "2") == "OPEN"
    gate.set()
    held.join(timeout=10)
    assert app.states.get(tickets.__name__, "1") == "OPEN"


def test_one_conversation_is_serialised() -> None:
    from sample_handlers import tickets

    app = App([tickets])
    gate = threading.Event()
    app.settings["gate-5"] = gate
    first = threading.Thread(
        target=app.deliver, args=(mail("a@example.org", "ticket-5@help.example.com"),)
    )
    first.start()
    while "5" not in app.settings.get("entered", []):
        time.sleep(0.001)
    second = threading.Thread(
        target=app.deliver, args=(mail("b@example.org", "ticket-5@help.example.com"),)
    )
    second.start()
    second.join(timeout=0.3)
    assert second.is_alive()  # waiting for the first delivery of ticket 5
    gate.set()
    first.join(timeout=10)
    second.join(timeout=10)
    # the second delivery ran after the first committed OPEN, so OPEN took it
    assert app.states.get(tickets.__name__, "5") == "CLOSED"
    assert app.settings["entered"] == ["5"]


def test_routes_table_dump_and_explain() -> None:
    router = Router(MemoryStateStore())
    router.load(fsm.__name__)
    assert [r.pattern for r in router.routes] == [
        "(word)@fsm.example.com",
        "(word)@done.example.com",
    ]
    assert "sample_handlers.fsm.START, sample_handlers.fsm.WAITING" in router.dump()
    explained = router.explain("Go@FSM.example.com")
    assert explained.splitlines() == [
        "Go@fsm.example.com:",
        "  sample_handlers.fsm.START (state) word='Go'",
        "  sample_handlers.fsm.WAITING (state) word='Go'",
    ]
    assert "refused" in router.explain("a!b@fsm.example.com")
    assert "no route takes it" in router.explain("a@other.example")


def test_reload_picks_up_changed_handler_code(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "reloadable_handlers.py"
    package.write_text(
        'from mailsim_runtime import route\n@route("one@x.org")\ndef START(m):\n    return None\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    router = Router(MemoryStateStore())
    router.load("reloadable_handlers")
    assert router.accepts("one@x.org") and not router.accepts("two@x.org")
    package.write_text(
        'from mailsim_runtime import route\n@route("two@x.org")\ndef START(m):\n    return None\n'
    )
    import importlib

    importlib.invalidate_caches()
    router.reload()
    assert router.accepts("two@x.org") and not router.accepts("one@x.org")


def test_two_apps_side_by_side_each_see_their_own() -> None:
    first, second = make_app(), make_app()
    first.deliver(mail("a@example.org", "go@fsm.example.com"))
    assert first.states.get(fsm.__name__, "a@example.org") == "WAITING"
    assert second.states.get(fsm.__name__, "a@example.org") == "START"
    assert "calls" not in second.settings
    with pytest.raises(NoCurrentApp):
        current_app()
    with second.bound():
        assert current_app() is second


def test_unknown_handler_module_is_a_clear_import_error() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_handlers"):
        Router(MemoryStateStore()).load("no_such_handlers")


def test_routing_regex_is_anchored_in_the_table() -> None:
    router = Router(MemoryStateStore())
    router.load(fsm)
    assert all(re.fullmatch(r"\^.*\$", r.regex.pattern) for r in router.routes)


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.org",
        "ticket-5@help.example.com",
        "ticket-5@HELP.example.com",
        "ticket-@help.example.com",
        "nobody@help.example.com",
        "u%foreign.example@help.example.com",  # refused: never routed
        "",
        '"ticket-1"@help.example.com',
    ],
)
def test_an_address_is_accepted_exactly_when_some_function_matches_it(address: str) -> None:
    from sample_handlers import tickets

    router = App([tickets, fsm]).router
    try:
        matched = bool(router.match(address))
    except AddressRefused:
        matched = False
    assert router.accepts(address) is matched


def test_conversation_locks_are_dropped_once_nobody_holds_them() -> None:
    from sample_handlers import tickets

    app = App([tickets])
    app.settings["gate-5"] = threading.Event()
    app.settings["gate-5"].set()
    for sender in ("a@example.org", "b@example.org", "a@example.org"):
        app.deliver(mail(sender, "ticket-5@help.example.com"))
    app.deliver(mail("a@example.org", "broken@help.example.com"))
    assert len(app.router._locks) == 0
