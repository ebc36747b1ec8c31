import re

import pytest
from mailsim_runtime.addresses import AddressRefused, canonical_address, split_address

OUR_HOST = "lists.example.com"
FOREIGN = "foreign.example"
IP = "127.0.0.1"

# The recipients of nmap's smtp-open-relay probes (RFC 2505 §2.1): every one of them
# must be refused by the router, whatever the sender.
RELAY_PROBE_RECIPIENTS = [
    f"u@{FOREIGN}",
    f"u%{FOREIGN}@[{IP}]",
    f"u%{FOREIGN}@{OUR_HOST}",
    f'"u@{FOREIGN}"',
    f'"u%{FOREIGN}"',
    f"u@{FOREIGN}@[{IP}]",
    f'"u@{FOREIGN}"@[{IP}]',
    f"u@{FOREIGN}@{OUR_HOST}",
    f"@[{IP}]:u@{FOREIGN}",
    f"@{OUR_HOST}:u@{FOREIGN}",
    f"{FOREIGN}!u",
    f"{FOREIGN}!u@[{IP}]",
    f"{FOREIGN}!u@{OUR_HOST}",
    f'"u@{FOREIGN}"@{OUR_HOST}',
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice@Example.ORG", "alice@example.org"),
        ("<Alice@Example.org>", "Alice@example.org"),
        (" <bob.smith+tag@lists.example.com> ", "bob.smith+tag@lists.example.com"),
        ('"plain"@example.org', "plain@example.org"),
    ],
)
def test_canonical_form_lowers_the_domain_only(raw: str, expected: str) -> None:
    assert canonical_address(raw) == expected


@pytest.mark.parametrize("probe", RELAY_PROBE_RECIPIENTS)
def test_relay_probe_shapes_are_refused_or_stay_foreign(probe: str) -> None:
    try:
        canonical = canonical_address(probe)
    except AddressRefused:
        return
    # The only probe shape that survives canonicalisation is a plain foreign
    # address, which no route of ours matches.
    assert canonical == f"u@{FOREIGN}"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "null address"),
        ("<>", "null address"),
        ("nodomain", "no domain"),
        ("a..b@example.org", "invalid local part"),
        ("u@[127.0.0.1]", "address literals"),
        ("u@exa mple.org", "invalid domain"),
        ("@a.example,@b.example:u@c.example", "source routes"),
        ("a%b@example.org", "'%'"),
    ],
)
def test_refusals_say_why(raw: str, reason: str) -> None:
    with pytest.raises(AddressRefused, match=reason):
        canonical_address(raw)


def test_split_address_ignores_at_signs_inside_quotes() -> None:
    assert split_address('"a@b"@example.org') == ('"a@b"', "example.org")


@pytest.mark.parametrize(
    "path",
    ["alice@Example.ORG", "<Alice@Example.org>", '"plain"@example.org', *RELAY_PROBE_RECIPIENTS],
)
def test_kept_canonical_forms_are_the_ones_worked_out(path: str) -> None:
    # canonical_address keeps its answers; a kept one must be the one worked out afresh,
    # and a refusal must be refused again rather than remembered as an answer.
    def fresh() -> str:
        return canonical_address.__wrapped__(path)  # type: ignore[attr-defined, no-any-return]

    try:
        expected = fresh()
    except AddressRefused as refused:
        for _ in range(2):
            with pytest.raises(AddressRefused, match=re.escape(str(refused))):
                canonical_address(path)
        return
    assert canonical_address(path) == expected
    assert canonical_address(path) == expected
