"""Envelope addresses as the router sees them.

:func:`canonical_address` turns an RCPT/MAIL path into the one form routes are
matched against (source route and quotes removed, domain lower-cased) and refuses
every shape that open-relay probes use to smuggle a foreign destination through a
local-looking address: ``%`` and ``!`` hacks, an ``@`` inside the local part,
source routes, IP literals (RFC 2505 §2.1).
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["AddressRefused", "canonical_address", "split_address"]

# RFC 5321 dot-atom characters, after any quoting has been removed.
_LOCAL_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_RELAY_MARKS = ("%", "!", "@")


class AddressRefused(ValueError):
    """The address cannot be routed; ``str(error)`` says why."""


def _unquote(local: str) -> str:
    if len(local) >= 2 and local[0] == local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def split_address(address: str) -> tuple[str, str]:
    """Split at the last ``@`` that is outside quotes: ``(local part, domain)``."""
    in_quotes = False
    escaped = False
    split_at = -1
    for index, char in enumerate(address):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "@" and not in_quotes:
            split_at = index
    if split_at < 0:
        raise AddressRefused(f"{address!r} has no domain")
    return address[:split_at], address[split_at + 1 :]


# The same few addresses are canonicalised again and again (at RCPT, by the router's
# match, by the world for each hand-over); the answer depends on the path alone.
# A refusal raises and is not kept.
@lru_cache(maxsize=4096)
def canonical_address(path: str) -> str:
    """The routable form of an envelope address, or :class:`AddressRefused`.

    >>> canonical_address("<Python-Subscribe@Lists.Example.COM>")
    'Python-Subscribe@lists.example.com'
    """
    address = path.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1].strip()
    if not address:
        raise AddressRefused("the null address cannot be a recipient")
    if address.startswith("@"):
        raise AddressRefused(f"source routes are not accepted ({path!r})")
    local_raw, domain = split_address(address)
    local = _unquote(local_raw)
    if not local:
        raise AddressRefused(f"{path!r} has an empty local part")
    marks = [mark for mark in _RELAY_MARKS if mark in local]
    if marks:
        raise AddressRefused(
            f"{path!r}: {' '.join(repr(m) for m in marks)} in the local part "
            "would relay to another host"
        )
    if not _LOCAL_ATOM.fullmatch(local) or local.startswith(".") or ".." in local:
        raise AddressRefused(f"{path!r} has an invalid local part")
    if domain.startswith("["):
        raise AddressRefused(f"address literals are not accepted ({path!r})")
    if not _DOMAIN.fullmatch(domain):
        raise AddressRefused(f"{path!r} has an invalid domain {domain!r}")
    return f"{local}@{domain.lower()}"
