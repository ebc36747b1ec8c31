"""Where mail for a domain goes: MX lookup (RFC 5321 §5.1) behind a small seam.

:class:`SmtpTransport` in direct mode asks a :class:`Resolver` for the mail
exchangers of each recipient domain, then for their addresses. :class:`DnsResolver`
asks DNS through dnspython; tests pass a resolver of their own that points
domains at loopback servers, so no test ever sends a real DNS query.

The rules, from RFC 5321 §5.1 and RFC 7505:

- MX records are tried in order of preference, lowest first; hosts of equal
  preference are shuffled so that load spreads over them.
- A domain with no MX records (but which exists) takes mail itself: its A/AAAA
  records are used, as though it had one MX record naming itself ("implicit MX").
- A domain whose only MX record is ``0 .`` (a "null MX") accepts no mail at all.
- A domain that does not exist (NXDOMAIN) is a permanent failure; a lookup that
  timed out or failed on the server's side is a temporary one.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import dns.exception
import dns.name
import dns.resolver

__all__ = [
    "DnsResolver",
    "LookupFailed",
    "MailHost",
    "Resolver",
    "mail_hosts",
]


class LookupFailed(Exception):
    """Finding where a domain's mail goes failed.

    *status* is the RFC 3463 enhanced status code to report (``5.1.2`` for a
    domain that does not exist, ``4.4.3`` for a DNS failure worth retrying).
    """

    def __init__(self, status: str, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")

    @property
    def code(self) -> int:
        """The SMTP-style reply code a recipient result carries for this failure."""
        return 550 if self.permanent else 451


class Resolver(Protocol):
    """Answers the two questions direct delivery asks."""

    def exchangers(self, domain: str) -> list[str]:
        """The hosts that take mail for *domain*, most preferred first.

        A domain without MX records is its own exchanger. Raises
        :class:`LookupFailed` for a domain that takes no mail or cannot be looked up.
        """
        ...

    def addresses(self, host: str) -> list[str]:
        """The IP addresses of *host*; empty when it has none.

        Raises :class:`LookupFailed` only when the lookup itself failed.
        """
        ...


@dataclass(frozen=True)
class MailHost:
    """One place to try: the exchanger's name (for ``Remote-MTA`` and TLS) and an address."""

    name: str
    address: str


def _literal(domain: str) -> str | None:
    """The address inside an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``)."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inside = domain[1:-1]
    if inside.lower().startswith("ipv6:"):
        inside = inside[5:]
    try:
        return str(ipaddress.ip_address(inside))
    except ValueError:
        raise LookupFailed("5.1.2", f"bad address literal {domain}") from None


def mail_hosts(resolver: Resolver, domain: str, *, limit: int = 5) -> list[MailHost]:
    """Where to try delivering *domain*'s mail, in order, at most *limit* places.

    Postfix likewise tries at most five addresses per delivery: a domain with
    dozens of exchangers should not hold a delivery for dozens of timeouts.
    """
    literal = _literal(domain)
    if literal is not None:
        return [MailHost(domain, literal)]
    hosts: list[MailHost] = []
    trouble: LookupFailed | None = None
    for name in resolver.exchangers(domain):
        try:
            addresses = resolver.addresses(name)
        except LookupFailed as failure:
            trouble = failure
            continue
        hosts += [MailHost(name, address) for address in addresses]
        if len(hosts) >= limit:
            return hosts[:limit]
    if hosts:
        return hosts
    if trouble is not None:
        raise LookupFailed("4.4.3", f"no address found for the mail hosts of {domain}: {trouble}")
    raise LookupFailed("5.1.2", f"{domain}: no mail host of the domain has an address")


class _DnsQuery(Protocol):
    """The part of :class:`dns.resolver.Resolver` used here (tests pass a fake)."""

    def resolve(self, qname: str, rdtype: str) -> Iterable[Any]: ...


class DnsResolver:
    """A :class:`Resolver` on DNS, through dnspython.

    *resolver* is a :class:`dns.resolver.Resolver` (one reading
    ``/etc/resolv.conf`` is made on first use when none is given); *lifetime*
    bounds each lookup in seconds; *rng* shuffles exchangers of equal preference.
    """

    def __init__(
        self,
        resolver: _DnsQuery | None = None,
        *,
        lifetime: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._resolver = resolver
        self.lifetime = lifetime
        self.rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"<DnsResolver {self._resolver!r}>"

    def _query(self, name: str, rdtype: str) -> list[Any]:
        if self._resolver is None:
            # Made lazily: building one reads /etc/resolv.conf, which nothing that
            # only constructs a transport (tests, `mailsim check`) should need.
            made = dns.resolver.Resolver()
            made.lifetime = self.lifetime
            self._resolver = made
        absolute = name.rstrip(".") + "."  # never the search list: a mail domain is absolute
        return list(self._resolver.resolve(absolute, rdtype))

    def exchangers(self, domain: str) -> list[str]:
        try:
            records = self._query(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise LookupFailed("5.1.2", f"{domain}: no such domain (NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            return [domain]  # implicit MX: the domain takes its own mail
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel) as error:
            raise LookupFailed("5.1.2", f"{domain}: not a valid domain name ({error})") from None
        except dns.exception.DNSException as error:
            raise LookupFailed("4.4.3", f"MX lookup for {domain} failed: {error}") from None
        if not records:
            return [domain]
        if len(records) == 1 and records[0].exchange == dns.name.root:
            raise LookupFailed("5.1.10", f"{domain} accepts no mail (null MX, RFC 7505)")
        by_preference: dict[int, list[str]] = {}
        for record in records:
            if record.exchange == dns.name.root:
                continue
            name = record.exchange.to_text(omit_final_dot=True)
            by_preference.setdefault(int(record.preference), []).append(name)
        ordered: list[str] = []
        for preference in sorted(by_preference):
            group = sorted(by_preference[preference])
            self.rng.shuffle(group)
            ordered += group
        return ordered

    def addresses(self, host: str) -> list[str]:
        found: list[str] = []
        trouble: Exception | None = None
        for rdtype in ("A", "AAAA"):
            try:
                found += [str(record.address) for record in self._query(host, rdtype)]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as error:
                trouble = error
        if not found and trouble is not None:
            raise LookupFailed("4.4.3", f"address lookup for {host} failed: {trouble}")
        return found
