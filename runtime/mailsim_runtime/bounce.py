"""Bounce analysis: what a delivery report says failed, why, and whether for good.

:func:`analyze` reads RFC 3464 delivery status notifications (inside RFC 6522
``multipart/report``) with the standard library, and the common non-standard
texts through :mod:`mailsim_runtime.bounce_formats`; an RFC 3834 auto-reply comes
back as a soft ``vacation`` report. :func:`bounce_score` is the cheap,
header-only test behind :meth:`MailRequest.is_bounce`, and :func:`bounce_to` is
Lamson's decorator that sends bounces to a soft or a hard state.

Each failed recipient gets one *reason* from :data:`REASONS`. It is read, in
this order, from the words of the remote server's reply, from the RFC 3463
enhanced status code, from the SMTP command the reply answered and from the SMTP
reply code. A recipient is *hard* when its reason says the address itself is gone
(:data:`HARD_REASONS`: unknown user or domain, a domain that accepts no mail, a
mailbox that has moved), so that mailing it again cannot work. Everything else
(full mailboxes, blocks, filters, policy, timeouts) may pass later or from
elsewhere: soft, even with a 5xx reply. A ``delayed`` report is always soft.
"""

from __future__ import annotations

import email.policy
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any, TypeVar

from mailsim_runtime import bounce_formats as fmt
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.mimeguard import parse_message

__all__ = [
    "HARD_REASONS",
    "REASONS",
    "BounceReport",
    "BouncedRecipient",
    "analyze",
    "bounce_score",
    "bounce_to",
    "classify",
]

log = logging.getLogger("mailsim.bounce")

F = TypeVar("F", bound=Callable[..., Any])
Mail = MailRequest | Message | bytes

# Raw bytes handed to analyze() are parsed up to here: a report is at the start,
# and the rest is at most the returned message.
_MAX_INPUT = 2_000_000
_MAX_WORDS = 8000  # characters of a reply matched against the reason families
_HEADERS = BytesHeaderParser(policy=email.policy.compat32)

HARD_REASONS = frozenset({"userunknown", "hostunknown", "notaccept", "hasmoved"})


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient a bounce reports as undelivered."""

    recipient: str  # the failed address, domain lower-cased; '' when it cannot be found
    status: str  # RFC 3463 enhanced status code, "5.1.1"; '' when none is given
    reply: str  # SMTP reply code, "550"; '' when none is given
    remote_mta: str  # the remote server's host name, if the report names it
    diagnostic: str  # the remote server's reply (or the report's words), on one line
    hard: bool  # permanent: retrying or mailing this address again will not help
    reason: str  # one of REASONS


@dataclass(frozen=True)
class BounceReport:
    """What one bounce message reports."""

    recipients: tuple[BouncedRecipient, ...]
    reporting_mta: str
    original_message_id: str | None
    standard: bool  # a real RFC 3464 message/delivery-status part was read

    @property
    def hard(self) -> bool:
        """Whether any recipient failed for good."""
        return any(r.hard for r in self.recipients)

    @property
    def soft(self) -> bool:
        """Whether no recipient failed for good (every failure may pass)."""
        return not self.hard


# Reasons ------------------------------------------------------------------------


def _families(table: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Compile a table of "reason  alternatives" lines: consecutive lines of one
    reason form one family; lines starting with "#" are comments."""
    groups: list[tuple[str, list[str]]] = []
    for line in table.strip().splitlines():
        reason, _, words = line.partition(" ")
        if reason.startswith("#"):
            continue
        if groups and groups[-1][0] == reason:
            groups[-1][1].append(words.strip())
        else:
            groups.append((reason, [words.strip()]))
    return tuple((r, re.compile("|".join(w), re.IGNORECASE)) for r, w in groups)


# Reasons from a reply's words. The first family that matches wins, so the
# specific come first: "relaying denied, your IP is blacklisted" is about relaying.
_TEXT_REASONS = _families(
    r"""
norelaying      relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed)
norelaying      not permitted to relay|unable to relay|we do not relay|no relaying
requireptr      reverse dns|reverse (?:dns )?lookup|\bptr\b|\brdns\b
requireptr      cannot find your (?:host ?name|reverse)|(?:ip|client) (?:host ?)?name lookup fail
authfailure     \bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|domainkeys
authfailure     authentication (?:checks?|information|results?)\b
securityerror   unauthenticated|authentication (?:is )?required
securityerror   must (?:be )?authenticated|starttls|tls (?:is )?required|encryption required
virusdetected   virus|malware|infected
badreputation   reputation|user complaints
spamdetected    \bspam\b|junk mail|unsolicited|bulk e-?mail|\bube\b
toomanyconn     too many (?:connections|concurrent|simultaneous|sessions|recip)
toomanyconn     connection (?:rate )?limit
speeding        receiving mail at a rate|(?:sending|receiving) (?:mail )?too fast
speeding        rate limit|too many (?:messages|mails|e-?mails)|throttl
mailboxfull     (?:mailbox|inbox|mail ?folder)(?: is)? (?:full|over)|quota
mailboxfull     exceeded storage|storage (?:allocation|limit)|not enough (?:disk )?space
systemfull      insufficient (?:system )?(?:disk )?(?:space|storage)|disk full
systemfull      no space left|out of (?:disk )?space
mesgtoobig      (?:message|mail) (?:size|length) exceed|message size|size limit
mesgtoobig      (?:message|mail) (?:is )?too (?:large|big|long)|exceeds (?:the )?(?:fixed )?maximum
suspend         (?:account|mailbox|user|address)(?: has been| is| was)? (?:temporarily )?disabled
suspend         (?:account|mailbox|user|address)(?: has been| is| was)? (?:suspended|deactivated)
suspend         (?:account|mailbox|user|address)(?: has been| is| was)? (?:inactive|frozen|locked)
suspend         (?:disabled|inactive|suspended) (?:recipient|account|mailbox|user)
hasmoved        has moved|moved (?:permanently|to)|address (?:has )?changed|user not local
notaccept       does not accept (?:any )?(?:e-?)?mail|accepts no (?:e-?)?mail|null mx
# The sender, not the recipient, was refused.
rejected        sender (?:address |domain )?(?:rejected|refused|invalid|denied)
rejected        domain of sender|sender (?:was|is) rejected|invalid sender|sender verif
rejected        purported responsible address|from:? domain is invalid
rejected        (?:sender|(?<!ip )address|from)\W[^.]{0,30}(?:black|block)listed
# Delays, whatever else they say ("recipient address rejected: greylisted").
blocked         greylist|graylist
networkerror    not found, try again|temporary (?:dns|lookup|name)
hostunknown     host (?:unknown|not found|or domain name not found)
hostunknown     unknown host|(?:no such|unknown|invalid|nonexistent) domain
hostunknown     domain (?:name )?(?:not found|(?:does|did|may) not exist|doesn't exist)
hostunknown     unrouteable address|couldn't find any host|could not find (?:any )?host
hostunknown     name or service not known|nxdomain|find a mail exchanger
hostunknown     no mx (?:record|host|found)
hostunknown     (?<![@\w.-])[a-z0-9-]++(?:\.[a-z0-9-]++)++ does not exist
userunknown     user (?:unknown|not found|does not exist|doesn't exist)
userunknown     unknown (?:user|recipient|mailbox|address|local[- ]part|alias)
userunknown     no such (?:user|mailbox|recipient|address|account|local user|person)
userunknown     (?:recipient|mailbox|address|account)(?: address)? (?:unknown|not found)
userunknown     (?:recipient|mailbox|address|account)(?: address)? (?:does not|doesn't) exist
userunknown     (?:recipient|mailbox|address|account)(?: address)? (?:is )?(?:not valid|invalid)
userunknown     (?:recipient|mailbox|address|account)(?: address)? (?:is unknown|unavailable)
userunknown     (?:invalid|bad|nonexistent) (?:recipient|mailbox|destination)
userunknown     unknown or illegal|no mailbox here|doesn't have an? \S+ account
userunknown     not (?:a )?valid (?:user|mailbox|recipient)|not listed in (?:the )?\w* ?directory
userunknown     is not a known user|account that you tried to reach|does not exist
# Bare, or as Microsoft's directory-based edge blocking words it.
userunknown     recipient address rejected(?:: access denied)?\s*(?:[.\[]|$)
policyviolation polic(?:y|ies) (?:violation|reasons)|violat|security issue
policyviolation (?:blocked|rejected) because (?:of )?(?:its|the) content
notcompliantrfc \brfc ?\d{3,4}\b(?!;)|not (?:rfc[- ]?)?compliant
notcompliantrfc duplicate header|multiple addresses in from|malformed (?:header|message)
contenterror    (?:content|mime|attachment|encoding) (?:error|not allowed|type)
contenterror    illegal attachment|invalid (?:mime|content)|bare (?:lf|cr|linefeed|newline)
blocked         block(?:ed|list)|black ?list|\brbl\b|dnsbl|spamhaus|spamcop|banned
blocked         access denied|client host rejected|connection refused|refused to talk
blocked         not allowed to send|dynamic ip|dial-?up|residential|of your isp|your ip
blocked         not accepting (?:any )?connections
policyviolation polic(?:y|ies)|prohibited
syntaxerror     syntax error|improper sequence|bad sequence|out of sequence
syntaxerror     command (?:parameter )?not (?:implemented|recognized)|unrecognized command
syntaxerror     need (?:rcpt|mail)|line too long|malformed (?:recipient )?address
systemerror     system (?:error|config)|internal (?:server )?error|i/o error
systemerror     server (?:error|configuration)|queue file write error|\bldap\b
systemerror     local (?:error|problem|configuration)|configuration error|transaction failed
mailererror     command output|pipe to \||procmail|maildrop|mailer error
mailererror     program exited|exit (?:status|code)|local delivery failed
expired         retry time(?:out)? (?:exceeded|reached)|failing for a long time|expired
networkerror    timed? ?out|connection (?:reset|lost|closed|dropped)|network error
networkerror    lost connection|network (?:is )?unreachable|no route to host|name service
networkerror    lookup fail|dns (?:error|failure)|unable to (?:establish|connect)
networkerror    able to establish|could not connect|cannot connect|name server|too many hops
networkerror    mail loop|routing loop
expired         in the queue too long|could not be delivered for \d|deleted from queue
"""
)
# RFC 3463 codes (and later ones from the IANA registry) with a reason of their
# own, by "subject.detail" ...
# fmt: off
_STATUS_REASONS = {
    "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown", "1.6": "hasmoved",
    "1.7": "rejected", "1.8": "rejected", "1.10": "notaccept", "2.1": "suspend",
    "2.2": "mailboxfull", "2.3": "exceedlimit", "3.1": "systemfull", "3.4": "mesgtoobig",
    "4.3": "systemerror", "4.7": "expired", "5.3": "toomanyconn", "7.0": "policyviolation",
    "7.1": "rejected", "7.2": "rejected", "7.13": "suspend", "7.15": "policyviolation",
    "7.16": "mesgtoobig", "7.17": "hasmoved", "7.18": "hasmoved", "7.25": "requireptr",
    "7.27": "notaccept", "7.28": "speeding",
    **{f"7.{n}": "authfailure" for n in (20, 21, 22, 23, 24, 26, 29)},
}
# ... and each subject's reason as a whole.
_SUBJECT_REASONS = {"3": "systemerror", "4": "networkerror", "5": "syntaxerror",
                    "6": "contenterror", "7": "securityerror"}
_REPLY_REASONS = {"421": "systemerror", "451": "systemerror", "452": "systemfull",
                  "500": "syntaxerror", "501": "syntaxerror", "502": "syntaxerror",
                  "503": "syntaxerror", "504": "syntaxerror", "552": "mailboxfull"}
# fmt: on

REASONS = frozenset(
    {name for name, _ in _TEXT_REASONS}
    | set(_STATUS_REASONS.values())
    | set(_SUBJECT_REASONS.values())
    | set(_REPLY_REASONS.values())
    | {"filtered", "exceedlimit", "mailererror", "onhold", "vacation"}
)

# A multi-line reply repeats its codes on every line ("550-5.7.1 Messages with
# multiple 550-5.7.1 addresses in From:"); they are not words.
_CODES = re.compile(r"(?<![\w.])[245]\d\d[ -](?:[245]\.\d\.\d{1,3}\b)?")
_BARE_USER_UNKNOWN = re.compile(r"\buser unknown|\bunknown user", re.IGNORECASE)


def classify(
    text: str,
    status: str = "",
    reply: str = "",
    *,
    stage: str = "",
    action: str = "failed",
    mailer: bool = False,
) -> str:
    """The reason (one of :data:`REASONS`) for one failure.

    *text* is the remote server's reply or the report's words about the address,
    *status* its RFC 3463 code, *reply* its SMTP reply code, *stage* the SMTP
    command it answered (``CONN``, ``MAIL``, ``RCPT``, ``DATA``, or ``EOD`` for
    the end of the data), *action* the RFC 3464 action, and *mailer* says a local
    delivery program (not an SMTP server) reported it.
    """
    words = " ".join(_CODES.sub(" ", fmt.ADDRESS.sub(" ", text[:_MAX_WORDS])).split())
    reason = next((name for name, pattern in _TEXT_REASONS if pattern.search(words)), "")
    subject = status.split(".")[1] if status.count(".") == 2 else ""
    if reason in HARD_REASONS and stage in ("CONN", "MAIL"):
        # Refused before any recipient was named: it is about the sender or its host.
        reason = "blocked" if stage == "CONN" else "rejected"
    if (
        reason == "userunknown"
        and stage != "RCPT"
        and subject != "1"
        and _BARE_USER_UNKNOWN.search(words)
    ):
        # Japanese mobile carriers (and other filters) answer a bare "user unknown"
        # after DATA when the recipient's own filter refused the mail. So it is
        # evidence against the address only in answer to RCPT TO or with an x.1.x
        # status; and calling a live address dead costs more than the reverse.
        reason = "filtered"
    if reason == "mesgtoobig" and subject == "2" and status.endswith(".3"):
        reason = "exceedlimit"  # x.2.3: over the mailbox's own limit, not the system's
    if mailer and reason in ("", "userunknown"):
        return "mailererror"  # the address was valid enough to reach its program
    if reason:
        return reason
    if action == "delayed":
        return "expired"  # still being retried, for no reason given
    if status:
        klass, subject, detail = status.split(".")
        if subject == "4" and detail == "4":  # unable to route
            return "hostunknown" if klass == "5" else "networkerror"
        found = _STATUS_REASONS.get(f"{subject}.{detail}") or _SUBJECT_REASONS.get(subject)
        if found:
            return found
    if stage in ("CONN", "MAIL"):
        return "blocked" if stage == "CONN" else "rejected"
    return _REPLY_REASONS.get(reply, "onhold")


# From the report's parts to recipients ---------------------------------------------


def _recipient(
    address: str,
    text: str,
    diagnostic: str = "",
    status: str = "",
    remote_mta: str = "",
    action: str = "failed",
    mailer: bool = False,
) -> BouncedRecipient:
    """One recipient, from the report's words about it (*text*) and its RFC 3464
    fields, if any."""
    # The remote server's own code is the most precise; a report's generic x.0.0
    # gives way to a specific code its text quotes.
    quoted = fmt.find_status(text)
    generic = status.endswith(".0.0") and quoted and not quoted.endswith(".0.0")
    status = fmt.find_status(diagnostic) or (quoted if generic else status) or quoted
    reply = fmt.find_reply(diagnostic) or fmt.find_reply(text)
    stage = fmt.detect_stage(f"{text}\n{diagnostic}")
    reason = classify(diagnostic or text, status, reply, stage=stage, action=action, mailer=mailer)
    line = " ".join(diagnostic.split()) if diagnostic else fmt.diagnostic_line(text)
    return BouncedRecipient(
        recipient=address,
        status=status,
        reply=reply,
        remote_mta=remote_mta or fmt.find_remote_mta(text),
        diagnostic=line[:400],
        hard=reason in HARD_REASONS and action != "delayed",
        reason=reason,
    )


def _value(block: Message, name: str) -> str:
    """A field's value without its type: "rfc822; x@y" -> "x@y", "dns; mx" -> "mx"."""
    value = fmt.header(block, name)
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value


_PIPED = re.compile(r"x-unix\s*;|[^;]*;\s*\|", re.IGNORECASE)
_RECIPIENT_FIELDS = frozenset({"final-recipient", "original-recipient", "action", "status"})


def _from_report(
    blocks: list[Message],
    context: dict[str, str],
) -> tuple[list[BouncedRecipient], bool]:
    """The failed recipients in RFC 3464 field blocks, and whether the blocks
    describe any recipient at all (a report of successes only is no bounce).

    *context* maps addresses to the report's prose about them.
    """
    found = []
    described = False
    for block in blocks:
        if not {key.lower() for key in block} & _RECIPIENT_FIELDS:
            continue  # the per-message block, or noise
        described = True
        status = fmt.find_status(fmt.header(block, "Status"), failures_only=False)
        action = (fmt.header(block, "Action").lower().split() or [""])[0]
        if action in ("delivered", "relayed", "expanded") or status.startswith("2"):
            continue  # a success, whatever the action is called
        names = ("Final-Recipient", "Original-Recipient", "X-Actual-Recipient")
        candidates = [fmt.clean_address(_value(block, n)) for n in names]
        address = next((a for a in candidates if a), "")
        text = next((context[a.lower()] for a in candidates if a.lower() in context), "")
        if len(context) == 1 and not (address and text):
            only_address, only_text = next(iter(context.items()))
            address, text = address or only_address, text or only_text
        kind, sep, diagnostic = fmt.header(block, "Diagnostic-Code").partition(";")
        if not sep or " " in kind.strip():
            kind, diagnostic = "", fmt.header(block, "Diagnostic-Code")
        # Delivered to a program ("|procmail", "x-unix; 77"), not to an SMTP server.
        mailer = kind.strip().lower() == "x-unix" or any(
            _PIPED.match(fmt.header(block, n)) for n in names
        )
        remote = (_value(block, "Remote-MTA").split() or [""])[0].strip("[].").lower()
        diagnostic, action = diagnostic.strip(), action or "failed"
        found.append(_recipient(address, text, diagnostic, status, remote, action, mailer))
    return found, described


_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer)|autoreply|out of (?:the )?office"
    r"|away\b|on vacation|vacation|abwesen|absence)",
    re.IGNORECASE,
)


def _vacation(message: Message) -> BounceReport | None:
    """An RFC 3834 auto-reply ("I am away") as a soft report about its author."""
    subject = fmt.header(message, "Subject")
    if not (
        fmt.header(message, "Auto-Submitted").lower().startswith("auto-replied")
        or _AUTOREPLY_SUBJECT.search(subject)
        or fmt.header(message, "X-Autoreply")
        or fmt.header(message, "X-Autorespond")
    ):
        return None
    author = [*fmt.addresses(fmt.header(message, "From")), ""][0]
    away = BouncedRecipient(author, "", "", "", subject[:400], hard=False, reason="vacation")
    replied_to = [*fmt.header(message, "In-Reply-To").split(), None][0]
    return BounceReport((away,), reporting_mta="", original_message_id=replied_to, standard=False)


# The public functions -------------------------------------------------------------------


def analyze(message: Mail) -> BounceReport | None:
    """What *message* reports as undeliverable; None when it is not a bounce.

    Never raises on malformed input: what cannot be read is left empty, and a
    message that cannot be read at all is not a bounce.
    """
    try:
        if isinstance(message, MailRequest):
            return _analyze(message.msg, message.sender)
        if isinstance(message, bytes | bytearray):
            return _analyze(parse_message(bytes(message[:_MAX_INPUT])), None)
        return _analyze(message, None)
    except Exception:  # garbage in must not crash a handler
        log.debug("bounce analysis gave up on a message", exc_info=True)
        return None


def _analyze(message: Message, sender: str | None) -> BounceReport | None:
    """:func:`analyze` of a parsed message; *sender* is the envelope's, if known."""
    parts = fmt.collect(message)
    report_text, original_text = fmt.split_original(fmt.unquoted("\n".join(parts.texts)))
    own = [*fmt.addresses(fmt.header(message, "To")), *fmt.addresses(fmt.header(message, "From"))]
    score = _score(message, sender)
    recognised = fmt.find_failures(fmt.human_part(report_text), own, anyhow=score >= 0.6)
    context = {b.recipient.lower(): b.text for b in recognised[1]} if recognised else {}
    # (One per-message block, then one block per recipient.)
    blocks = [b for report in parts.reports for b in report][: fmt.MAX_RECIPIENTS + 1]
    standard = bool(blocks)
    blocks = blocks or fmt.embedded_report(report_text)
    recipients, described = _from_report(blocks, context)
    if not described and recognised is not None:
        # Mail is read as a bounce from its words only when it looks like one on
        # the outside: a person may well write "could not be delivered".
        enough = 0.5 if recognised[0] in ("generic", "unknown") else 0.3
        if standard or score >= enough:
            recipients = [_recipient(b.recipient, b.text) for b in recognised[1]]
    if not recipients:
        return None if described else _vacation(message)
    named = next((r for b in blocks if (r := _value(b, "Reporting-MTA"))), "").split()
    reporting = named[0].lower() if named else fmt.reporting_mta(message, report_text)
    return BounceReport(
        recipients=tuple(recipients),
        reporting_mta=reporting,
        original_message_id=fmt.original_message_id(parts.original, original_text),
        standard=standard,
    )


_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|failure notice|returned mail|returned to sender"
    r"|mail delivery (?:failed|failure|system)|delivery (?:has )?fail|could not be delivered"
    r"|mail failed|failed mail|returning message|non-?delivery|delayed mail|not delivered"
    r"|delivery (?:problem|report|notification)|could not send message|delivery status",
    re.IGNORECASE,
)
_DAEMON = re.compile(
    r"mailer-daemon|postmaster|mail delivery (?:system|subsystem)|mail ?daemon", re.IGNORECASE
)


def _score(message: Message, sender: str | None) -> float:
    def get(name: str) -> str:
        return fmt.header(message, name)

    content_type = get("Content-Type").lower()
    score = 0.0
    if sender == "" or get("Return-Path") == "<>":
        score += 0.35  # a null reverse-path: what bounces and auto-replies are sent from
    if _DAEMON.search(get("From")):
        score += 0.35
    if "multipart/report" in content_type and "delivery-status" in content_type:
        score += 0.6
    if _BOUNCE_SUBJECT.search(get("Subject")):
        score += 0.35
    if get("X-Failed-Recipients"):
        score += 0.5
    if get("Auto-Submitted").lower().startswith("auto-"):
        score += 0.1
    return min(score, 1.0)


def bounce_score(message: MailRequest | Message) -> float:
    """How much *message* looks like a delivery status notification, from 0 to 1.

    Cheap: only the envelope and the headers are read, never the body. Signals: a
    null sender (or ``Return-Path: <>``), a MAILER-DAEMON or postmaster author, an
    RFC 6522 delivery report, a subject like "Undelivered Mail", an
    ``X-Failed-Recipients`` header, an ``Auto-Submitted`` header.
    """
    try:
        if isinstance(message, MailRequest):
            end = re.search(rb"\r?\n\r?\n", message.original[:_MAX_INPUT])
            head = message.original[: end.end() if end else _MAX_INPUT]
            return _score(_HEADERS.parsebytes(head), message.sender)
        return _score(message, None)
    except Exception:  # unreadable headers give no evidence
        log.debug("bounce_score gave up on a message", exc_info=True)
        return 0.0


def bounce_to(soft: Callable[..., Any], hard: Callable[..., Any]) -> Callable[[F], F]:
    """Send bounces to *soft* or *hard* instead of the decorated state function.

    For a bounce the decorated function is not called: *hard* is (with the same
    arguments) when any recipient failed for good, else *soft*, and its return
    value is returned, so the bounce moves the conversation to the state it
    names. A message :func:`analyze` cannot read but that scores as a bounce goes
    to *soft*; so does an auto-reply, which the decorated function must not take
    for a message from the person ("I am away" posted to a list).
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def diverted(message: MailRequest, *args: Any, **kwargs: Any) -> Any:
            report = message.bounce if isinstance(message, MailRequest) else analyze(message)
            if report is None and bounce_score(message) < 0.3:
                return function(message, *args, **kwargs)
            chosen = hard if report is not None and report.hard else soft
            return chosen(message, *args, **kwargs)

        return diverted  # type: ignore[return-value]

    return decorate
