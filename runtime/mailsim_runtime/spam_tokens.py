"""Turning a message into SpamBayes tokens.

The tokenizer works on the standard library's parsed message: it never parses MIME
itself. Every token is a short string; header tokens carry a prefix naming where
they came from (``subject:free``, ``from:email addr:example.com``), body words are
bare, as SpamBayes has them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from email.message import EmailMessage, Message
from email.utils import getaddresses
from pathlib import Path

from sbclassifier import tokenize_email, tokenize_text

from mailsim_runtime.mail import MailRequest
from mailsim_runtime.mimeguard import parse_message

__all__ = ["Mail", "message_tokens"]

Mail = MailRequest | Message | bytes

# The word column is VARCHAR(1024); real clues are short, and a long token is noise.
_MAX_TOKEN = 200
# Enough text to judge any message; bounds the work a huge hostile body can cause.
_MAX_TEXT = 200_000

_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to", "sender", "return-path")
_WORD_HEADERS = ("x-mailer", "user-agent", "precedence", "auto-submitted")
_URL = re.compile(r"(?i)\b(https?|ftp)://([^\s/?#\"'<>()]+)")
_IP_HOST = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]")
# Linear: a match cannot run past the next "<". (Stripping <style> blocks with a
# lazy ".*?" was quadratic on a body of unclosed <style> tags, so CSS stays words.)
_TAG = re.compile(r"<[^<>]{0,2000}>")
_SHOUT = re.compile(r"\b[A-Z]{3,}\b")


# Tokenizing -------------------------------------------------------------------


def _as_message(message: Mail) -> Message:
    if isinstance(message, MailRequest):
        return message.msg
    if isinstance(message, Message):
        return message
    return parse_message(bytes(message))


def _header_values(msg: Message, name: str) -> list[str]:
    # The standard library's header parser still raises on some hostile values
    # (IndexError, ValueError, ...); a filter must not fall over on exactly the
    # mail it exists to catch, so such a header simply yields no tokens.
    try:
        return [str(value) for value in msg.get_all(name, [])]
    except Exception:
        return []


def _address_tokens(msg: Message) -> Iterator[str]:
    for name in _ADDRESS_HEADERS:
        values = _header_values(msg, name)
        if name == "to" and not values:
            yield "to:none"
        for display, address in getaddresses(values):
            for word in tokenize_text(display):
                yield f"{name}:name:{word}"
            if address:
                for token in tokenize_email(address.lower()):
                    yield f"{name}:{token}"


def _header_tokens(msg: Message) -> Iterator[str]:
    names = [name.lower() for name in msg]
    for name in set(names):
        yield f"header:{name}"
    # Hops taken is a clue: mail straight from a botnet host has few or none.
    yield f"received:{min(names.count('received'), 5)}"
    for subject in _header_values(msg, "subject"):
        for word in tokenize_text(subject):
            yield f"subject:{word}"
        if len(_SHOUT.findall(subject)) >= 2:
            # tokenize_text folds case, but a SHOUTING subject is a spam sign.
            yield "subject:shouting"
    yield from _address_tokens(msg)
    for name in _WORD_HEADERS:
        for value in _header_values(msg, name):
            for word in tokenize_text(value):
                yield f"{name}:{word}"
    for value in _header_values(msg, "message-id"):
        yield f"message-id:@{value.rpartition('@')[2].strip('<> ').lower()}"


def _url_tokens(text: str) -> Iterator[str]:
    for found in _URL.finditer(text):
        yield f"url-scheme:{found.group(1).lower()}"
        # Drop userinfo ("http://bank.com@evil.example/") and port.
        host = found.group(2).rpartition("@")[2].lower()
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        host = host.strip(".")
        if not host:
            continue
        if _IP_HOST.fullmatch(host):
            yield "url:ip"
            continue
        labels = host.split(".")
        # The host and each parent domain: "shop.evil.example" also says "evil.example".
        for start in range(len(labels) - 1):
            yield "url:" + ".".join(labels[start:])


def _part_text(part: Message) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
        except Exception:
            # Unknown charset, broken base64, a lying header: the stdlib raises any
            # of several errors; fall back to the raw payload decoded leniently.
            content = None
        if isinstance(content, str):
            return content
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    except LookupError:
        return payload.decode("latin-1")


def _part_tokens(part: Message) -> Iterator[str]:
    ctype = part.get_content_type()
    yield f"content-type:{ctype}"
    if part.is_multipart():
        return
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding:
        yield f"content-transfer-encoding:{encoding}"
    charset = part.get_content_charset()
    if charset:
        yield f"charset:{charset}"
    filename = part.get_filename()
    if filename:
        yield f"filename:ext:{Path(filename).suffix.lower() or 'none'}"
    if part.get_content_maintype() != "text":
        return
    text = _part_text(part)[:_MAX_TEXT]
    yield from _url_tokens(text)
    if ctype == "text/html":
        # Crude on purpose: the words matter, not the markup, and SpamBayes
        # found that parsing HTML properly buys nothing for classification.
        text = html.unescape(_TAG.sub(" ", text))
    # Each URL has been turned into host tokens; its path would only be noise.
    yield from tokenize_text(_URL.sub(" ", text))


def _clean(token: str) -> str:
    # PostgreSQL text cannot hold NUL, and lone surrogates (from undecodable
    # headers) cannot be encoded to send to the database at all.
    token = token.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return token[:_MAX_TOKEN]


def message_tokens(message: Mail) -> list[str]:
    """The distinct tokens of *message*, in first-seen order; never raises on bad mail."""
    try:
        msg = _as_message(message)
    except Exception:
        return []
    found: dict[str, None] = {}

    def collect(tokens: Iterable[str]) -> None:
        try:
            for token in tokens:
                found[_clean(token)] = None
        except Exception:
            # Same reason as in _header_values: one broken part or header costs
            # its own tokens, never the whole message's score.
            found["tokenizer:error"] = None

    collect(_header_tokens(msg))
    try:
        parts = list(msg.walk())
    except Exception:
        parts = [msg]
    for part in parts:
        collect(_part_tokens(part))
    found.pop("", None)
    return list(found)
