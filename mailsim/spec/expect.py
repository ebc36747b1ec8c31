"""Expectations on a mailbox, failing with what was expected and what came instead."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from mailsim.spec.matchers import Expected, combine, criteria_matchers

if TYPE_CHECKING:
    from mailsim.world.mailbox import Mailbox, ReceivedMail

__all__ = ["MailExpectationError", "expect_mail", "expect_no_mail"]


class MailExpectationError(AssertionError):
    """A mailbox did not hold the mail a test expected (or held mail it did not)."""


def _rank(expected: Expected, mail: ReceivedMail) -> tuple[int, float]:
    met = sum(leaf.matches(mail) for leaf in expected.leaves())
    likeness = difflib.SequenceMatcher(None, expected.describe(), mail.summary()).ratio()
    return met, likeness


def expect_mail(mailbox: Mailbox, *matchers: Expected, **criteria: Any) -> ReceivedMail:
    """Claim the first unseen mail in *mailbox* that meets every criterion."""
    __tracebackhide__ = True
    expected = combine([*matchers, *criteria_matchers(criteria)])
    for mail in mailbox.messages:
        if not mail.seen and (expected is None or expected.matches(mail)):
            mail.seen = True
            return mail
    wanted = "a mail" if expected is None else f"a mail with {expected.describe()}"
    raise MailExpectationError(_explain(mailbox, wanted, expected))


def _explain(mailbox: Mailbox, wanted: str, expected: Expected | None) -> str:
    lines = [f"{mailbox.address}: expected {wanted}"]
    unseen = mailbox.unseen
    if not mailbox.messages:
        lines.append(f"amongst: nothing — no mail has arrived for {mailbox.address}")
    elif not unseen:
        lines.append(
            f"amongst: nothing new — all {len(mailbox.messages)} mails were claimed before"
        )
    else:
        assert expected is not None  # with no criteria any unseen mail would have matched
        ranked = sorted(unseen, key=lambda m: _rank(expected, m), reverse=True)
        lines.append(f"amongst {len(ranked)} unclaimed mails (nearest first):")
        lines += [f"  {m.summary()} — {expected.mismatch(m)}" for m in ranked]
    if expected is not None:
        earlier = [m for m in mailbox.messages if m.seen and expected.matches(m)]
        if earlier:
            claimed = ", ".join(m.summary() for m in earlier)
            lines.append(f"(matching mail that an earlier assertion already claimed: {claimed})")
    return "\n".join(lines)


def expect_no_mail(mailbox: Mailbox) -> None:
    """Fail if *mailbox* holds mail that no assertion has claimed."""
    __tracebackhide__ = True
    unseen = mailbox.unseen
    if unseen:
        listed = "\n".join(f"  {m.summary()}" for m in unseen)
        raise MailExpectationError(
            f"{mailbox.address}: expected no mail, but {len(unseen)} arrived:\n{listed}"
        )
