"""The receive → parse → route path and bounce analysis, as one function a fuzzer drives.

:func:`exercise` takes the bytes a client sent after DATA and does to them what the
receiver and a curious handler do: the receiver's content checks, the queue file's
envelope round trip, a :class:`MailRequest` read every way a handler can read it,
routing through an app whose handler reads it all again and answers it, and bounce
analysis of the request and of the raw bytes. It raises only on a real failure: an
exception escaping the runtime, or a reply carrying a header nobody wrote.

``fuzz_atheris.py`` beside it makes it an atheris (libFuzzer) target.
"""

from __future__ import annotations

import email
import email.policy
import sys
from dataclasses import dataclass, field

from mailsim_runtime import App, current_app, route, stateless
from mailsim_runtime.bounce import analyze
from mailsim_runtime.inbound import check_content, decode_stored, encode_stored
from mailsim_runtime.mail import HeaderInjectionError, MailRequest, MailResponse
from mailsim_runtime.queue import MemoryQueue
from mailsim_runtime.transport import FunctionTransport

DOMAIN = "example.com"
# The receiver's defaults (docs/serving.md): Postfix's header size, a loop at 50.
HEADER_SIZE = 102_400
RECEIVED_HEADERS = 50


@dataclass
class Outcome:
    """What one input did."""

    refusal: str | None = None  # the receiver's reply refusing it, if any
    defects: list[str] = field(default_factory=list)
    replied: bool = False
    injection_refused: bool = False


def read_everything(request: MailRequest) -> list[str]:
    """Every way a handler reads a message; the defects found."""
    for name in ("From", "To", "Cc", "Subject", "Message-ID", "Date", "Content-Type", "X-Any"):
        request.get_all(name)
        _ = request[name]
    _ = request.keys(), request.message_id, request.from_addresses, "Subject" in request
    request.body()
    request.html()
    for attachment in request.attachments():
        _ = attachment.filename, attachment.content_type, len(attachment.data)
    for part in request.walk():
        part.get_content_type()
        part.get_filename()
    request.is_bounce()
    _ = request.bounce
    return [type(defect).__name__ for defect in request.defects]


@route("(user)@(host)", user=".+", host=".+")
@stateless
def READ_AND_ANSWER(message: MailRequest, user: str, host: str) -> None:
    outcome: Outcome = current_app().settings["outcome"]
    outcome.defects = read_everything(message)
    try:
        reply = MailResponse(
            from_=f"robot@{DOMAIN}",
            subject=f"Re: {message['Subject'] or ''}",
            body=message.body() or "",
        )
    except HeaderInjectionError:
        outcome.injection_refused = True  # a decoded subject held a line break
        return
    sent = current_app().relay.reply(message, reply)
    if sent is not None:
        outcome.replied = True
        check_no_header_injected(sent.message)


def check_no_header_injected(wire: bytes) -> None:
    parsed = email.message_from_bytes(wire, policy=email.policy.compat32)
    names = {name.lower() for name in parsed}
    allowed = {
        *("from", "to", "subject", "date", "message-id", "in-reply-to", "references"),
        *("auto-submitted", "mime-version", "content-type", "content-transfer-encoding"),
    }
    assert names <= allowed, f"the reply carries headers nobody wrote: {names - allowed}"


def make_app() -> App:
    return App(
        [sys.modules[__name__]],
        hostname=DOMAIN,
        undeliverable=MemoryQueue(),
        settings={"outcome": Outcome()},
    )


def exercise(data: bytes, app: App | None = None) -> Outcome:
    """Receive *data* (what a client sent after DATA), read it, route it, analyse it."""
    app = app or make_app()
    outcome = app.settings["outcome"] = Outcome()
    content = data if data.endswith(b"\r\n") else data + b"\r\n"
    outcome.refusal = check_content(
        content,
        content.count(b"\r\n"),
        header_size=HEADER_SIZE,
        received_headers=RECEIVED_HEADERS,
    )
    if outcome.refusal is None:
        stored = encode_stored("s@client.example", [f"a@{DOMAIN}"], "127.0.0.1:25", content)
        envelope = decode_stored(stored)
        assert envelope is not None and envelope.content == content
    # Refused or not, a QueueReceiver may be handed the same bytes by another MTA.
    request = MailRequest("127.0.0.1:25", "s@client.example", f"a@{DOMAIN}", content)
    delivery = app.deliver(request)
    assert not delivery.errors, f"the handler raised: {delivery.errors[0]!r}"
    assert delivery.undeliverable is None, delivery.undeliverable
    analyze(content)
    analyze(MailRequest(None, "", f"a@{DOMAIN}", content))
    if isinstance(app.relay.transport, FunctionTransport):
        app.relay.transport.sent.clear()  # a long fuzzing run must not grow
    return outcome
