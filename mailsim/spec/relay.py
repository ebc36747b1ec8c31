"""The open-relay battery: nmap's 16 ``smtp-open-relay`` probes (RFC 2505 §2.1).

Each probe pairs a MAIL FROM with an RCPT TO that tries to get mail for a foreign
domain accepted by our host: the percent hack, source routes, bang paths, quoted
local parts and IP literals. An application passes when every RCPT is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Probe", "ProbeResult", "RelayReport", "relay_probes", "run_relay_probes"]

FOREIGN_DOMAIN = "relay-probe.mailsim.invalid"


@dataclass(frozen=True)
class Probe:
    sender: str
    recipient: str

    def __str__(self) -> str:
        return f"MAIL FROM:<{self.sender}> RCPT TO:<{self.recipient}>"


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    refused: bool
    answer: str  # what the server (or the router) said


@dataclass(frozen=True)
class RelayReport:
    results: tuple[ProbeResult, ...]

    @property
    def open(self) -> list[ProbeResult]:
        """The probes that were accepted: each one is an open-relay hole."""
        return [r for r in self.results if not r.refused]

    def __str__(self) -> str:
        lines = [
            f"{'refused ' if r.refused else 'ACCEPTED'}  {r.probe}  ->  {r.answer}"
            for r in self.results
        ]
        verdict = (
            "not an open relay"
            if not self.open
            else f"OPEN RELAY: {len(self.open)} probes accepted"
        )
        return "\n".join([*lines, verdict])


def relay_probes(host: str, ip: str = "127.0.0.1", foreign: str = FOREIGN_DOMAIN) -> list[Probe]:
    """The 16 probes against *host* (our name) at *ip*, relaying to *foreign*."""
    d, s = foreign, host
    literal = f"[{ip}]"
    return [
        Probe("", f"u@{d}"),
        Probe(f"u@{d}", f"u@{d}"),
        Probe(f"u@{s}", f"u@{d}"),
        Probe(f"u@{literal}", f"u@{d}"),
        Probe(f"u@{literal}", f"u%{d}@{literal}"),
        Probe(f"u@{literal}", f"u%{d}@{s}"),
        Probe(f"u@{literal}", f'"u@{d}"'),
        Probe(f"u@{literal}", f'"u%{d}"'),
        Probe(f"u@{literal}", f"u@{d}@{literal}"),
        Probe(f"u@{literal}", f'"u@{d}"@{literal}'),
        Probe(f"u@{literal}", f"u@{d}@{s}"),
        Probe(f"u@{literal}", f"@{literal}:u@{d}"),
        Probe(f"u@{literal}", f"@{s}:u@{d}"),
        Probe(f"u@{literal}", f"{d}!u"),
        Probe(f"u@{literal}", f"{d}!u@{literal}"),
        Probe(f"u@{literal}", f"{d}!u@{s}"),
    ]


def run_relay_probes(
    probes: Iterable[Probe], try_probe: Callable[[Probe], tuple[bool, str]]
) -> RelayReport:
    """Run each probe through *try_probe* (returns refused?, answer)."""
    return RelayReport(tuple(ProbeResult(p, *try_probe(p)) for p in probes))
