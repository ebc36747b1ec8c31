import pytest
import sample_handlers.lamson_sample as sample
from helpers.clock import ManualClock
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
