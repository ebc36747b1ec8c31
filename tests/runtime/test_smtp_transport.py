"""SmtpTransport and LmtpTransport against real servers on loopback.

The servers are aiosmtpd, run on a loop thread by ``helpers.mailservers``; DNS is
never asked: direct (MX) delivery gets a resolver that points at loopback.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.rdata
import dns.resolver
import pytest
from helpers.mailservers import (
    Certificate,
    Received,
    Recorder,
    ServerLoop,
    accept_login,
    closed_port,
    make_certificate,
    servers,
)
from mailsim_runtime.mx import DnsResolver, LookupFailed, mail_hosts
from mailsim_runtime.transport import (
    Envelope,
    LmtpTransport,
    SmtpTransport,
    Transport,
    normalise_line_ends,
)

MESSAGE = b"From: app@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def loop() -> Iterator[ServerLoop]:
    yield from servers()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def envelope(*recipients: str, sender: str = "app@example.com") -> Envelope:
    return Envelope(sender, recipients)


# Smart host ---------------------------------------------------------------------------


def test_delivers_to_a_smart_host_with_starttls_and_auth(
    loop: ServerLoop, certificate: Certificate
) -> None:
    server = Recorder()
    port = loop.serve(
        server,
        tls_context=certificate.server_context(),
        authenticator=accept_login("app", "secret"),
    )
    transport = SmtpTransport(
        "127.0.0.1",
        port,
        starttls=True,
        username="app",
        password="secret",
        tls_context=certificate.client_context(),
        timeout=5,
    )
    results = transport.deliver(envelope("bob@example.org", "carol@example.org"), MESSAGE)
    assert {r: (res.code, res.remote) for r, res in results.items()} == {
        "bob@example.org": (250, "127.0.0.1"),
        "carol@example.org": (250, "127.0.0.1"),
    }
    [received] = server.messages
    assert received.tls and received.authenticated
    assert received.sender == "app@example.com"
    assert received.recipients == ["bob@example.org", "carol@example.org"]
    assert received.content == MESSAGE


def test_implicit_tls(loop: ServerLoop, certificate: Certificate) -> None:
    server = Recorder()
    port = loop.serve(server, implicit_tls=certificate.server_context())
    transport = SmtpTransport(
        "localhost", port, ssl=True, tls_context=certificate.client_context(), timeout=5
    )
    assert transport.deliver(envelope("bob@example.org"), MESSAGE)["bob@example.org"].accepted
    assert server.messages[0].content == MESSAGE


def test_wrong_password_is_temporary(loop: ServerLoop, certificate: Certificate) -> None:
    port = loop.serve(
        Recorder(),
        tls_context=certificate.server_context(),
        authenticator=accept_login("app", "secret"),
    )
    transport = SmtpTransport(
        "127.0.0.1",
        port,
        starttls=True,
        username="app",
        password="wrong",
        tls_context=certificate.client_context(),
        timeout=5,
    )
    [result] = transport.deliver(envelope("bob@example.org"), MESSAGE).values()
    assert result.temporary  # our misconfiguration must not bounce the users' mail
    assert result.text.startswith("4.7.0 authenticating to 127.0.0.1")
    assert "535" in result.text


def test_an_untrusted_certificate_is_a_temporary_tls_failure(
    loop: ServerLoop, certificate: Certificate
) -> None:
    port = loop.serve(Recorder(), tls_context=certificate.server_context())
    transport = SmtpTransport("127.0.0.1", port, starttls=True, timeout=5)  # system CAs
    [result] = transport.deliver(envelope("bob@example.org"), MESSAGE).values()
    assert result.temporary and result.text.startswith("4.7.5 TLS failed")
    assert "CERTIFICATE_VERIFY_FAILED" in result.text


def test_required_starttls_that_is_not_offered_is_temporary(loop: ServerLoop) -> None:
    port = loop.serve(Recorder())
    [result] = (
        SmtpTransport("127.0.0.1", port, starttls=True, timeout=5)
        .deliver(envelope("bob@example.org"), MESSAGE)
        .values()
    )
    assert result.code == 451 and result.text.startswith("4.7.10")


def test_per_recipient_replies_and_5xx_at_data(loop: ServerLoop) -> None:
    refusals = {
        "nobody@example.org": "550 5.1.1 no such user",
        "later@example.org": "452 4.2.2 mailbox full",
    }
    server = Recorder(rcpt=refusals.get)
    port = loop.serve(server)
    transport = SmtpTransport("127.0.0.1", port, timeout=5)
    results = transport.deliver(
        envelope("bob@example.org", "nobody@example.org", "later@example.org"), MESSAGE
    )
    assert results["bob@example.org"].accepted
    assert (results["nobody@example.org"].code, results["nobody@example.org"].text) == (
        550,
        "5.1.1 no such user",
    )
    assert results["later@example.org"].temporary
    assert server.messages[0].recipients == ["bob@example.org"]

    refusing = Recorder(data=lambda received: "554 5.7.1 content rejected")
    port = loop.serve(refusing)
    results = SmtpTransport("127.0.0.1", port, timeout=5).deliver(
        envelope("bob@example.org"), MESSAGE
    )
    assert results["bob@example.org"].permanent
    assert results["bob@example.org"].text == "5.7.1 content rejected"


def test_connection_refused_is_temporary() -> None:
    port = closed_port()
    results = SmtpTransport("127.0.0.1", port, timeout=5).deliver(
        envelope("bob@example.org", "carol@example.org"), MESSAGE
    )
    for result in results.values():
        assert result.code == 451
        assert result.text.startswith(f"4.4.1 connecting to 127.0.0.1:{port} failed")
        assert result.remote == "127.0.0.1"


def test_a_server_that_never_greets_times_out_temporarily() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes the handshake; nobody ever speaks
        port = silent.getsockname()[1]
        [result] = (
            SmtpTransport("127.0.0.1", port, timeout=0.3)
            .deliver(envelope("bob@example.org"), MESSAGE)
            .values()
        )
    assert result.code == 451 and "timed out" in result.text.lower()


def test_null_sender_is_sent_as_empty_reverse_path(loop: ServerLoop) -> None:
    server = Recorder()
    port = loop.serve(server)
    SmtpTransport("127.0.0.1", port, timeout=5).deliver(
        envelope("bob@example.org", sender=""), MESSAGE
    )
    assert server.senders == [""]


# Line ends and dot-stuffing on the wire ---------------------------------------------------

SMUGGLING_ENDINGS = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\0.\r\n",
    b"\r\n.\0\r\n",
]


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_no_smuggled_end_of_data_splits_the_message(loop: ServerLoop, lmtp: bool) -> None:
    server = Recorder()
    port = loop.serve(server, lmtp=lmtp)
    kind = LmtpTransport if lmtp else SmtpTransport
    transport = kind("127.0.0.1", port, timeout=5)
    sent = []
    for ending in SMUGGLING_ENDINGS:
        message = (
            b"From: app@example.com\nTo: bob@example.org\nSubject: x\n\nbefore"
            + ending
            + b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
            + b"smuggled\r\n.\r\n.\r\n..dots\r\n"
        )
        results = transport.deliver(envelope("bob@example.org"), message)
        assert results["bob@example.org"].accepted, (ending, results)
        sent.append(normalise_line_ends(message))
    # One transaction per message, each carrying the whole message, nothing more.
    assert server.senders == ["app@example.com"] * len(SMUGGLING_ENDINGS)
    assert server.rcpts == ["bob@example.org"] * len(SMUGGLING_ENDINGS)
    assert [m.content for m in server.messages] == sent
    for received in server.messages:
        lines = received.content.split(b"\r\n")
        assert all(b"\r" not in line and b"\n" not in line for line in lines)
        assert b"smuggled" in received.content


# LMTP ---------------------------------------------------------------------------------


def lmtp_replies(received: Received) -> str:
    replies = {
        "full@example.org": "452 4.2.2 mailbox full",
        "gone@example.org": "550 5.1.1 gone",
    }
    return "\r\n".join(replies.get(r, f"250 2.0.0 <{r}> delivered") for r in received.recipients)


def test_lmtp_maps_each_data_reply_to_its_recipient(loop: ServerLoop) -> None:
    server = Recorder(
        rcpt=lambda r: "550 5.1.1 unknown" if r == "unknown@example.org" else None,
        data=lmtp_replies,
    )
    port = loop.serve(server, lmtp=True)
    results = LmtpTransport("127.0.0.1", port, timeout=5).deliver(
        envelope(
            "bob@example.org",
            "full@example.org",
            "unknown@example.org",
            "gone@example.org",
            "carol@example.org",
        ),
        MESSAGE,
    )
    assert {r: (res.code, res.text) for r, res in results.items()} == {
        "bob@example.org": (250, "2.0.0 <bob@example.org> delivered"),
        "full@example.org": (452, "4.2.2 mailbox full"),
        "unknown@example.org": (550, "5.1.1 unknown"),
        "gone@example.org": (550, "5.1.1 gone"),
        "carol@example.org": (250, "2.0.0 <carol@example.org> delivered"),
    }


def test_lmtp_replies_missing_when_the_server_hangs_up_are_temporary(loop: ServerLoop) -> None:
    # One reply for two recipients: the second recipient's fate is unknown.
    server = Recorder(data=lambda received: "250 2.0.0 first only")
    port = loop.serve(server, lmtp=True)
    results = LmtpTransport("127.0.0.1", port, timeout=0.2).deliver(
        envelope("bob@example.org", "carol@example.org"), MESSAGE
    )
    assert results["bob@example.org"].accepted
    assert results["carol@example.org"].temporary


# Direct (MX) delivery -----------------------------------------------------------------


class FakeResolver:
    """MX hosts and addresses from tables; a domain listed in *failing* cannot be looked up."""

    def __init__(
        self,
        mx: dict[str, list[str]],
        addresses: dict[str, list[str]],
        failing: dict[str, LookupFailed] | None = None,
    ) -> None:
        self.mx = mx
        self.table = addresses
        self.failing = failing or {}
        self.asked: list[str] = []

    def exchangers(self, domain: str) -> list[str]:
        self.asked.append(domain)
        if domain in self.failing:
            raise self.failing[domain]
        return self.mx.get(domain, [domain])

    def addresses(self, host: str) -> list[str]:
        return self.table.get(host, [])


def serve_on_two_addresses(loop: ServerLoop, first: Recorder, second: Recorder) -> int:
    """The same port on 127.0.0.1 and 127.0.0.2, as two MX hosts on port 25 would be."""
    for _ in range(5):
        port = loop.serve(first, host="127.0.0.1")
        try:
            loop.serve(second, host="127.0.0.2", port=port)
        except OSError:
            continue  # taken on the second address; try another port
        return port
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def test_mx_delivery_groups_by_domain_and_follows_preference(loop: ServerLoop) -> None:
    implicit, backup = Recorder(), Recorder()
    port = serve_on_two_addresses(loop, implicit, backup)
    resolver = FakeResolver(
        mx={"a.example": ["mx1.a.example", "mx2.a.example"]},
        addresses={
            "mx1.a.example": ["127.0.0.3"],  # nothing listens there: refused
            "mx2.a.example": ["127.0.0.2"],
            "b.example": ["127.0.0.1"],  # no MX: the domain's own address
        },
        failing={
            "c.example": LookupFailed("4.4.3", "MX lookup for c.example failed: timeout"),
            "d.example": LookupFailed("5.1.2", "d.example: no such domain (NXDOMAIN)"),
        },
    )
    transport = SmtpTransport(port=port, resolver=resolver, timeout=5)
    results = transport.deliver(
        envelope(
            "x@a.example",
            "y@B.example",
            "z@a.example",
            "w@c.example",
            "v@d.example",
            "no-domain",
        ),
        MESSAGE,
    )
    assert [(m.recipients, m.content) for m in backup.messages] == [
        (["x@a.example", "z@a.example"], MESSAGE)
    ]
    assert [m.recipients for m in implicit.messages] == [["y@B.example"]]
    assert results["x@a.example"].remote == "mx2.a.example"
    assert results["y@B.example"].remote == "b.example"
    assert results["w@c.example"].code == 451
    assert results["w@c.example"].text.startswith("4.4.3")
    assert results["v@d.example"].code == 550
    assert results["v@d.example"].text.startswith("5.1.2")
    assert results["no-domain"].permanent
    assert sorted(resolver.asked) == ["a.example", "b.example", "c.example", "d.example"]


def test_mx_delivery_uses_starttls_when_offered(loop: ServerLoop, certificate: Certificate) -> None:
    server = Recorder()
    port = loop.serve(server, tls_context=certificate.server_context())
    resolver = FakeResolver({"a.example": ["mx.a.example"]}, {"mx.a.example": ["127.0.0.1"]})
    results = SmtpTransport(port=port, resolver=resolver, timeout=5).deliver(
        envelope("x@a.example"), MESSAGE
    )
    assert results["x@a.example"].accepted
    assert server.messages[0].tls  # the self-signed certificate is good enough between MTAs


def test_mx_delivery_falls_back_to_the_clear_when_tls_fails(
    loop: ServerLoop, certificate: Certificate
) -> None:
    server_tls = certificate.server_context()
    server_tls.maximum_version = ssl.TLSVersion.TLSv1_2
    client_tls = ssl.create_default_context()
    client_tls.check_hostname, client_tls.verify_mode = False, ssl.CERT_NONE
    client_tls.minimum_version = ssl.TLSVersion.TLSv1_3  # no version in common
    server = Recorder()
    port = loop.serve(server, tls_context=server_tls)
    resolver = FakeResolver({"a.example": ["mx.a.example"]}, {"mx.a.example": ["127.0.0.1"]})
    opportunistic = SmtpTransport(port=port, resolver=resolver, tls_context=client_tls, timeout=5)
    assert opportunistic.deliver(envelope("x@a.example"), MESSAGE)["x@a.example"].accepted
    assert not server.messages[0].tls
    mandatory = SmtpTransport(
        port=port, resolver=resolver, tls_context=client_tls, starttls=True, timeout=5
    )
    [result] = mandatory.deliver(envelope("x@a.example"), MESSAGE).values()
    assert result.code == 454 and result.text.startswith("4.7.5 TLS failed STARTTLS with")
    assert len(server.messages) == 1


def test_when_every_mx_host_is_down_the_result_is_temporary() -> None:
    port = closed_port()
    resolver = FakeResolver(
        {"a.example": ["mx1.a.example", "mx2.a.example"]},
        {"mx1.a.example": ["127.0.0.1"], "mx2.a.example": ["127.0.0.1"]},
    )
    [result] = (
        SmtpTransport(port=port, resolver=resolver, timeout=5)
        .deliver(envelope("x@a.example"), MESSAGE)
        .values()
    )
    assert result.code == 451 and result.remote == "mx2.a.example"
    assert result.text.startswith("4.4.1 connecting to mx2.a.example[127.0.0.1]")


def test_an_unexpected_error_becomes_a_temporary_result() -> None:
    class Broken(FakeResolver):
        def exchangers(self, domain: str) -> list[str]:
            raise RuntimeError("a bug")

    [result] = (
        SmtpTransport(resolver=Broken({}, {})).deliver(envelope("x@a.example"), MESSAGE).values()
    )
    assert result.code == 451 and result.text.startswith("4.3.0 internal error")


def test_works_when_called_from_inside_an_event_loop(loop: ServerLoop) -> None:
    server = Recorder()
    transport = SmtpTransport("127.0.0.1", loop.serve(server), timeout=5)

    async def handler_on_a_loop() -> bool:
        return transport.deliver(envelope("bob@example.org"), MESSAGE)["bob@example.org"].accepted

    assert asyncio.run(handler_on_a_loop())
    assert len(server.messages) == 1


def test_the_real_transports_are_transports() -> None:
    assert isinstance(SmtpTransport(), Transport)
    assert isinstance(LmtpTransport(), Transport)
    with pytest.raises(ValueError, match="MX"):
        LmtpTransport(resolver=FakeResolver({}, {}))
    with pytest.raises(ValueError, match="not both"):
        SmtpTransport(starttls=True, ssl=True)


# DnsResolver on a fake dnspython resolver ----------------------------------------------


class FakeDns:
    """Answers like dns.resolver.Resolver.resolve, from a table of record texts."""

    def __init__(self, records: dict[tuple[str, str], list[str] | type[Exception]]) -> None:
        self.records = records
        self.queries: list[tuple[str, str]] = []

    def resolve(self, qname: str, rdtype: str) -> list[Any]:
        self.queries.append((qname, rdtype))
        answer = self.records.get((qname, rdtype), dns.resolver.NoAnswer)
        if isinstance(answer, type):
            raise answer()
        return [dns.rdata.from_text("IN", rdtype, text) for text in answer]


def test_dns_resolver_orders_mx_by_preference_and_shuffles_equals() -> None:
    fake = FakeDns(
        {
            ("example.org.", "MX"): [
                "20 backup.example.org.",
                "10 mx-b.example.org.",
                "10 mx-a.example.org.",
            ],
            ("mx-a.example.org.", "A"): ["192.0.2.1"],
            ("mx-a.example.org.", "AAAA"): ["2001:db8::1"],
            ("mx-b.example.org.", "A"): ["192.0.2.2"],
            ("backup.example.org.", "A"): ["192.0.2.3"],
        }
    )
    seen = set()
    for seed in range(20):
        order = DnsResolver(fake, rng=random.Random(seed)).exchangers("example.org")
        assert order[-1] == "backup.example.org"
        seen.add(tuple(order[:2]))
    assert seen == {
        ("mx-a.example.org", "mx-b.example.org"),
        ("mx-b.example.org", "mx-a.example.org"),
    }
    resolver = DnsResolver(fake, rng=random.Random(1))
    hosts = mail_hosts(resolver, "example.org", limit=3)
    assert len(hosts) == 3 and hosts[-1].address in {"192.0.2.1", "2001:db8::1", "192.0.2.2"}
    assert DnsResolver(fake).addresses("mx-a.example.org") == ["192.0.2.1", "2001:db8::1"]


def test_dns_resolver_falls_back_to_the_address_record() -> None:
    fake = FakeDns({("plain.example.", "A"): ["192.0.2.7"]})  # no MX (NoAnswer)
    resolver = DnsResolver(fake)
    assert resolver.exchangers("plain.example") == ["plain.example"]
    assert [h.address for h in mail_hosts(resolver, "plain.example")] == ["192.0.2.7"]


@pytest.mark.parametrize(
    ("records", "status"),
    [
        ({("gone.example.", "MX"): dns.resolver.NXDOMAIN}, "5.1.2"),
        ({("gone.example.", "MX"): ["0 ."]}, "5.1.10"),  # null MX, RFC 7505
        ({("gone.example.", "MX"): dns.resolver.NoNameservers}, "4.4.3"),
        ({("gone.example.", "MX"): dns.exception.Timeout}, "4.4.3"),
        ({("gone.example.", "MX"): ["10 mx.gone.example."]}, "5.1.2"),  # mx has no address
        (
            {
                ("gone.example.", "MX"): ["10 mx.gone.example."],
                ("mx.gone.example.", "A"): dns.exception.Timeout,
            },
            "4.4.3",
        ),
    ],
)
def test_dns_failures_are_permanent_or_temporary(
    records: dict[tuple[str, str], list[str] | type[Exception]], status: str
) -> None:
    with pytest.raises(LookupFailed) as failure:
        mail_hosts(DnsResolver(FakeDns(records)), "gone.example")
    assert failure.value.status == status
    assert failure.value.permanent == status.startswith("5")


def test_address_literals_need_no_lookup() -> None:
    resolver = DnsResolver(FakeDns({}))
    assert [h.address for h in mail_hosts(resolver, "[192.0.2.9]")] == ["192.0.2.9"]
    assert [h.address for h in mail_hosts(resolver, "[IPv6:2001:db8::9]")] == ["2001:db8::9"]


def test_transport_from_config(tmp_path: Path) -> None:
    from mailsim_runtime.config import ConfigError, load_config
    from mailsim_runtime.project import transport_from_config

    def config(relay: str) -> Any:
        (tmp_path / "mailsim.toml").write_text(
            f'[app]\nhandlers = ["x"]\nhostname = "app.example.com"\n[relay]\n{relay}\n'
        )
        return load_config(tmp_path)

    smart = transport_from_config(config('host = "smtp.example.com"\nport = 587\nstarttls = true'))
    assert isinstance(smart, SmtpTransport) and not isinstance(smart, LmtpTransport)
    assert (smart.host, smart.port, smart.starttls, smart.resolver) == (
        "smtp.example.com",
        587,
        True,
        None,
    )
    assert smart.local_hostname == "app.example.com"
    assert isinstance(transport_from_config(config('protocol = "lmtp"\nport = 24')), LmtpTransport)
    direct = transport_from_config(config('mode = "mx"'))
    assert isinstance(direct, SmtpTransport) and isinstance(direct.resolver, DnsResolver)
    assert direct.port == 25
    with pytest.raises(ConfigError, match="protocol"):
        transport_from_config(config('mode = "mx"\nprotocol = "lmtp"'))
