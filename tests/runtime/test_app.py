from pathlib import Path

import jinja2
import pytest
import sample_handlers.lamson_sample as sample
from helpers.clock import ManualClock
from jinja2.bccache import Bucket
from mailsim_runtime import App, MailRequest
from mailsim_runtime.transport import FunctionTransport
from sample_handlers import fsm

from mailsim.spec.relay import relay_probes


@pytest.mark.parametrize("probe", relay_probes("example.com"), ids=str)
def test_every_open_relay_probe_is_refused_even_by_a_catch_all_route(probe: object) -> None:
    # lamson_sample routes "(address)@(host)" with any host: only the domain check
    # stands between it and an open relay.
    app = App([sample], hostname="example.com")
    assert not app.accepts(probe.recipient)  # type: ignore[attr-defined]


def test_accepts_routed_addresses_of_its_domains_and_postmaster() -> None:
    app = App([fsm], hostname="fsm.example.com", domains=["fsm.example.com", "done.example.com"])
    assert app.accepts("anything@fsm.example.com")
    assert app.accepts("x@DONE.example.com")
    assert app.accepts("PostMaster@fsm.example.com")
    assert not app.accepts("anything@other.example.com")
    assert not app.accepts("postmaster@other.example.com")


def test_views_without_templates_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no templates folder"):
        App([fsm]).views  # noqa: B018


def test_use_swaps_transport_clock_and_ids_everywhere() -> None:
    app = App([sample], hostname="example.com")
    transport, clock = FunctionTransport(), ManualClock()
    app.use(transport=transport, clock=clock, new_message_id=lambda: "<fixed@example.com>")
    raw = b"From: a@example.org\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n"
    app.deliver(MailRequest(None, "a@example.org", "hi@example.com", raw))
    [sent] = transport.sent
    assert b"Message-ID: <fixed@example.com>" in sent.message
    assert b"Date: Mon, 23 Nov 2026 12:00:00 +0000" in sent.message
    assert app.states.records()[0].last_modified == clock.now()


class CountingBytecodeCache(jinja2.BytecodeCache):
    """Jinja's bytecode cache in a dict, counting what is compiled and what is reused."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}
        self.compiled = 0
        self.reused = 0

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])
            self.reused += 1

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()
        self.compiled += 1


def test_apps_sharing_compiled_templates_compile_each_template_once(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("Hello {{ name }}\n")
    cache = CountingBytecodeCache()
    apps = [App([fsm], templates=tmp_path, compiled_templates=cache) for _ in range(3)]
    assert [a.views.render("hello.txt", name=n) for a, n in zip(apps, "abc", strict=True)] == [
        "Hello a\n",
        "Hello b\n",
        "Hello c\n",
    ]
    assert (cache.compiled, cache.reused) == (1, 2)
    (tmp_path / "hello.txt").write_text("Goodbye {{ name }}\n")  # compiled again, not stale
    assert (
        App([fsm], templates=tmp_path, compiled_templates=cache).views.render("hello.txt", name="d")
        == "Goodbye d\n"
    )
    assert cache.compiled == 2


def test_apps_sharing_compiled_templates_compile_each_header_string_once(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("Hello\n")
    cache = CountingBytecodeCache()
    apps = [App([fsm], templates=tmp_path, compiled_templates=cache) for _ in range(3)]
    subjects = [
        app.views.respond(
            {"name": name},
            text="hello.txt",
            to="a@example.org",
            from_="b@x",
            subject="Hi {{ name }}",
        )["Subject"]
        for app, name in zip(apps, "abc", strict=True)
    ]
    assert subjects == ["Hi a", "Hi b", "Hi c"]
    # hello.txt and the Subject template: each compiled once, then reused by two apps;
    # the literal To and From templates likewise.
    assert (cache.compiled, cache.reused) == (4, 8)
    assert (
        apps[2].views.respond(
            {"name": "d"},
            text="hello.txt",
            to="a@example.org",
            from_="b@x",
            subject="Bye {{ name }}",
        )["Subject"]
        == "Bye d"
    )
    assert cache.compiled == 5
