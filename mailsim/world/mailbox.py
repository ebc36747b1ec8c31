"""People in the world: a :class:`Mailbox` sends, replies and receives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from mailsim_runtime.mail import Attachment, MailRequest, MailResponse

if TYPE_CHECKING:
    from mailsim.spec.matchers import Expected
    from mailsim.world.world import World

__all__ = ["Mailbox", "ReceivedMail"]


@dataclass(eq=False, slots=True)  # slots: kept for the whole test (see MessageEvent)
class ReceivedMail:
    """A message as it arrived in someone's mailbox."""

    request: MailRequest
    arrived: datetime
    number: int  # 1 for the first mail this mailbox received
    seen: bool = False  # an assertion has looked for and found it

    def __repr__(self) -> str:
        return f"<ReceivedMail #{self.number} from {self.from_!r} subject {self.subject!r}>"

    @property
    def subject(self) -> str:
        return self.request["Subject"] or ""

    @property
    def from_(self) -> str:
        """The From header's address (the envelope sender when there is none)."""
        addresses = self.request.from_addresses
        return addresses[0] if addresses else self.request.sender

    @property
    def sender(self) -> str:
        """The envelope sender ('' for a bounce)."""
        return self.request.sender

    @property
    def to(self) -> list[str]:
        return [a for _, a in getaddresses(self.request.get_all("To")) if a]

    @property
    def message_id(self) -> str:
        return self.request.message_id or ""

    @property
    def body(self) -> str:
        return self.request.body() or ""

    def __getitem__(self, header: str) -> str | None:
        return self.request[header]

    def attachments(self) -> list[Attachment]:
        return self.request.attachments()

    def summary(self) -> str:
        return f"#{self.number} from {self.from_ or '<>'} subject {self.subject!r}"


class Mailbox:
    """A person at an address: what they sent is delivered, what they got is kept."""

    def __init__(self, world: World, address: str) -> None:
        self.world = world
        self.address = address
        self.messages: list[ReceivedMail] = []

    def __repr__(self) -> str:
        return f"<Mailbox {self.address}: {len(self.messages)} received, {len(self.unseen)} unseen>"

    # Receiving ---------------------------------------------------------------------

    def _receive(self, request: MailRequest, arrived: datetime) -> ReceivedMail:
        mail = ReceivedMail(request, arrived, len(self.messages) + 1)
        self.messages.append(mail)
        return mail

    @property
    def unseen(self) -> list[ReceivedMail]:
        """Mail no assertion has claimed yet."""
        return [m for m in self.messages if not m.seen]

    @property
    def last(self) -> ReceivedMail:
        """The most recent mail (an error naming the address when there is none)."""
        if not self.messages:
            raise LookupError(f"{self.address} has received no mail yet")
        return self.messages[-1]

    def expect(self, *matchers: Expected, **criteria: Any) -> ReceivedMail:
        """Claim the first unseen mail matching every criterion, or fail saying what came.

        Criteria: ``subject``, ``sender`` (From or envelope), ``to``, ``body``,
        ``headers={name: value}``, ``attachment`` (a file name); each value a
        substring, a compiled regex or a predicate. Matchers from
        :mod:`mailsim.spec.matchers` can be given too.
        """
        __tracebackhide__ = True  # pytest: point at the test, not at mailsim
        from mailsim.spec.expect import expect_mail

        return expect_mail(self, *matchers, **criteria)

    def expect_no_mail(self) -> None:
        """Fail if any mail arrived that no assertion has claimed."""
        __tracebackhide__ = True
        from mailsim.spec.expect import expect_no_mail

        expect_no_mail(self)

    # Sending -----------------------------------------------------------------------

    def send(
        self,
        to: str | Sequence[str],
        subject: str = "",
        body: str = "",
        *,
        html: str | None = None,
        cc: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        attachments: Iterable[Attachment] = (),
    ) -> str:
        """Send a mail and wait until the world is quiet; returns its Message-ID."""
        recipients = [to] if isinstance(to, str) else list(to)
        response = MailResponse(
            to=recipients,
            from_=self.address,
            subject=subject,
            body=body,
            html=html,
            headers=headers,
            attachments=attachments,
        )
        if cc:
            response["Cc"] = ", ".join(cc)
        return self.world.post(self.address, [*recipients, *cc], response)

    def reply(
        self,
        mail: ReceivedMail | None = None,
        body: str = "",
        *,
        subject: str | None = None,
        to: str | None = None,
        headers: Mapping[str, str] | None = None,
        attachments: Iterable[Attachment] = (),
    ) -> str:
        """Reply to *mail* (the last one received by default), threading headers set."""
        original = mail or self.last
        request = original.request
        target = to or request["Reply-To"] or original.from_
        recipients = [a for _, a in getaddresses([target]) if a]
        subject = subject if subject is not None else _reply_subject(original.subject)
        response = MailResponse(
            to=target,
            from_=self.address,
            subject=subject,
            body=body,
            headers=headers,
            attachments=attachments,
        )
        if request.message_id:
            response["In-Reply-To"] = request.message_id
            references = [*request.get_all("References"), request.message_id]
            response["References"] = " ".join(" ".join(references).split())
        return self.world.post(self.address, recipients, response)


def _reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".rstrip()
