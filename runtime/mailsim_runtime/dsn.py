"""Building delivery status notifications (RFC 3464 inside an RFC 6522 report).

The relay sends one when mail it accepted cannot be delivered; the simulated world's
remote hosts send one when told to bounce. Reading them is :mod:`bounce`'s job.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.parser import BytesHeaderParser
from email.utils import format_datetime

__all__ = ["FailedRecipient", "build_dsn"]


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient the report is about."""

    recipient: str
    status: str  # RFC 3463 enhanced status code, e.g. "5.1.1"
    diagnostic: str  # the remote server's reply, e.g. "550 5.1.1 no such user"
    remote_mta: str = ""
    action: str = "failed"  # or "delayed"


def _fields(pairs: Sequence[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in pairs:
        if value:
            block[name] = value
    return block


def _text_part(text: str, subtype: str) -> EmailMessage:
    # set_content picks 7bit for ASCII, so the report stays readable as plain text
    part = EmailMessage(policy=email.policy.default)
    part.set_content(text, subtype=subtype)
    del part["MIME-Version"]
    return part


def _original_headers(original: bytes) -> str:
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(original)
    return "".join(f"{name}: {value}\n" for name, value in headers.items())


def build_dsn(
    *,
    reporting_mta: str,
    postmaster: str,
    to: str,
    original: bytes,
    failures: Sequence[FailedRecipient],
    arrival: datetime,
    now: datetime,
    message_id: str,
) -> EmailMessage:
    """A bounce for *failures* of *original*, addressed to *to* (send it from ``<>``)."""
    if not failures:
        raise ValueError("a delivery status notification needs at least one recipient")
    delayed = all(f.action == "delayed" for f in failures)
    human = [
        f"This is the mail system at {reporting_mta}.",
        "",
        (
            "Your message has not been delivered yet; the mail system will keep trying."
            if delayed
            else "Your message could not be delivered to the following recipients:"
        ),
        "",
    ]
    human += [f"<{f.recipient}>: {f.diagnostic}" for f in failures]
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <{postmaster}>"
    report["To"] = to
    report["Subject"] = (
        "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    )
    report["Date"] = format_datetime(now)
    report["Message-ID"] = message_id
    report["Auto-Submitted"] = "auto-replied"
    report.attach(_text_part("\n".join(human) + "\n", "plain"))
    status = MIMEBase("message", "delivery-status")
    blocks = [
        _fields(
            [
                ("Reporting-MTA", f"dns; {reporting_mta}"),
                ("Arrival-Date", format_datetime(arrival)),
            ]
        )
    ]
    for failure in failures:
        blocks.append(
            _fields(
                [
                    ("Final-Recipient", f"rfc822; {failure.recipient}"),
                    ("Action", failure.action),
                    ("Status", failure.status),
                    ("Remote-MTA", f"dns; {failure.remote_mta}" if failure.remote_mta else ""),
                    ("Diagnostic-Code", f"smtp; {failure.diagnostic}"),
                    ("Last-Attempt-Date", format_datetime(now)),
                ]
            )
        )
    status.set_payload(blocks)  # type: ignore[arg-type]
    report.attach(status)
    report.attach(_text_part(_original_headers(original), "rfc822-headers"))
    parsed = email.message_from_bytes(
        report.as_bytes(), _class=EmailMessage, policy=email.policy.default
    )
    assert isinstance(parsed, EmailMessage)
    return parsed
