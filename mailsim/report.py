"""The HTML report of a ``mailsim run``: one self-contained file, readable offline.

For each scenario: its steps (with docstrings, tables and failures), its
conversation as a sequence diagram, every message with its raw source, and the
state transitions it caused. The diagram is drawn here as inline SVG — no script
or stylesheet is fetched from anywhere. A few lines of inline script only open the
message a diagram arrow (or a link) points at; without script the report is whole.

The report is written from :class:`ScenarioRecord` values, which the step
library's hooks make as each scenario ends (``mailsim.steps``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailsim.world.transcript import MessageEvent, Transcript, TransitionEvent

__all__ = ["ScenarioRecord", "StepRecord", "render_report", "write_report"]

SOURCE_LIMIT = 256_000  # characters of one message's source shown; the rest is cut


@dataclass(frozen=True)
class StepRecord:
    """One step as it ran."""

    keyword: str
    text: str
    status: str  # behave's: passed, failed, error, skipped, undefined, untested, …
    duration: float = 0.0
    error: str = ""
    docstring: str | None = None
    table: tuple[tuple[str, ...], ...] = ()  # headings first
    location: str = ""


@dataclass
class ScenarioRecord:
    """One scenario as it ran: what the terminal summary and the report show."""

    feature: str
    name: str
    location: str
    tags: tuple[str, ...] = ()
    mode: str = "world"
    status: str = "passed"  # passed, failed or skipped
    reason: str = ""  # why it failed or was skipped
    duration: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    transcript: Transcript | None = None
    sources: dict[tuple[str, str], bytes] = field(default_factory=dict)
    state_note: str = ""  # live: why transitions are not shown
    conversations: list[str] = field(default_factory=list)  # the states at the end
    states: dict[str, list[str]] = field(default_factory=dict)  # the app's, per module
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def source_of(self, event: MessageEvent) -> bytes | None:
        """The bytes of the message *event* is about, when they were kept."""
        found = self.sources.get((event.message_id, event.recipient.lower()))
        if found is not None or not event.message_id:
            return found
        return next(
            (data for (mid, _), data in self.sources.items() if mid == event.message_id), None
        )


def write_report(
    path: Path,
    records: Sequence[ScenarioRecord],
    *,
    title: str = "mailsim run",
    elapsed: float | None = None,
) -> Path:
    """Write the report of *records* to *path* (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(records, title=title, elapsed=elapsed), encoding="utf-8")
    return path


def render_report(
    records: Sequence[ScenarioRecord], *, title: str = "mailsim run", elapsed: float | None = None
) -> str:
    """The whole report, as one HTML document."""
    counts = {s: sum(r.status == s for r in records) for s in ("passed", "failed", "skipped")}
    modes = sorted({r.mode for r in records}) or ["world"]
    summary = (
        f"{len(records)} scenarios: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped · {', '.join(modes)}"
        + (f" · {elapsed:.2f} s" if elapsed is not None else "")
        + f" · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    index = "\n".join(
        f'<li class="{_e(r.status)}"><a href="#s{n}">{_badge(r.status)} '
        f"{_e(r.feature)} — {_e(r.name)}</a></li>"
        for n, r in enumerate(records, 1)
    )
    sections = "\n".join(_scenario(n, r) for n, r in enumerate(records, 1))
    verdict = "passed" if records and counts["passed"] == len(records) else "failed"
    return _PAGE.format(
        title=_e(title),
        style=_STYLE,
        script=_SCRIPT,
        verdict=verdict,
        summary=_e(summary),
        index=index or "<li>no scenario ran</li>",
        sections=sections,
    )


# One scenario ---------------------------------------------------------------------


def _scenario(number: int, record: ScenarioRecord) -> str:
    anchor = f"s{number}"
    tags = " ".join(f"@{t}" for t in record.tags)
    parts = [
        f'<section class="scenario {_e(record.status)}" id="{anchor}" '
        f'data-status="{_e(record.status)}">',
        f"<h2>{_badge(record.status)} <span class=feature>{_e(record.feature)}</span> — "
        f"<span class=name>{_e(record.name)}</span></h2>",
        f'<p class="where">{_e(record.location)} · {_e(record.mode)}'
        + (f" · {_e(tags)}" if tags else "")
        + f" · {record.duration * 1000:.1f} ms</p>",
    ]
    if record.reason:
        parts.append(f'<pre class="reason">{_e(record.reason)}</pre>')
    parts.append("<h3>Steps</h3>")
    parts.append('<ol class="steps">' + "".join(_step(s) for s in record.steps) + "</ol>")
    parts.append("<h3>Conversation</h3>")
    transcript = record.transcript
    if transcript is None or not len(transcript):
        parts.append('<p class="empty">No mail was sent in this scenario.</p>')
    else:
        numbers = _message_numbers(transcript)
        parts.append(f'<figure class="diagram">{sequence_svg(transcript, anchor)}</figure>')
        parts.append("<h3>Messages</h3>")
        parts.append(_messages(record, transcript, numbers, anchor))
        parts.append("<h3>State transitions</h3>")
        parts.append(_transitions(record, transcript))
    if record.conversations:
        parts.append("<h3>Conversations at the end</h3>")
        parts.append(
            '<ul class="conversations">'
            + "".join(f"<li>{_e(c)}</li>" for c in record.conversations)
            + "</ul>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _step(step: StepRecord) -> str:
    inner = [
        f'<span class="kw">{_e(step.keyword)}</span> {_e(step.text)}'
        f' <span class="outcome">{_e(step.status)}'
        + (f", {step.duration * 1000:.1f} ms" if step.duration else "")
        + "</span>"
    ]
    if step.docstring:
        inner.append(f'<pre class="docstring">{_e(step.docstring)}</pre>')
    if step.table:
        head, *rows = step.table
        inner.append(
            '<table class="data"><tr>'
            + "".join(f"<th>{_e(c)}</th>" for c in head)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</table>"
        )
    if step.error:
        inner.append(f'<pre class="error">{_e(step.error)}</pre>')
    return f'<li class="step {_e(step.status)}">{"".join(inner)}</li>'


def _message_numbers(transcript: Transcript) -> dict[int, int]:
    """Event index → message number (1, 2, … in the order messages crossed)."""
    numbers: dict[int, int] = {}
    for index, event in enumerate(transcript.events):
        if isinstance(event, MessageEvent):
            numbers[index] = len(numbers) + 1
    return numbers


def _messages(
    record: ScenarioRecord, transcript: Transcript, numbers: dict[int, int], anchor: str
) -> str:
    items = []
    for index, number in numbers.items():
        event = transcript.events[index]
        assert isinstance(event, MessageEvent)
        outcome = "" if event.delivered else f" [{event.outcome}]"
        summary = (
            f"#{number} {_clock(transcript, event.time)} {event.sender or '<>'} → "
            f"{event.recipient}: {event.subject or '(no subject)'}{outcome}"
        )
        data = record.source_of(event)
        if data is None:
            why = "" if event.delivered else " (it was not delivered)"
            body = f'<p class="empty">The message\'s bytes were not kept{why}.</p>'
        else:
            text = data.decode("utf-8", errors="replace")
            if len(text) > SOURCE_LIMIT:
                text = text[:SOURCE_LIMIT] + f"\n… ({len(text) - SOURCE_LIMIT} more characters)"
            body = f'<pre class="source">{_e(text)}</pre>'
        state = "delivered" if event.delivered else "undelivered"
        items.append(
            f'<li><details class="message {state}" id="{anchor}-m{number}">'
            f"<summary>{_e(summary)}</summary>{body}</details></li>"
        )
    return '<ol class="messages">' + "".join(items) + "</ol>"


def _transitions(record: ScenarioRecord, transcript: Transcript) -> str:
    transitions = transcript.transitions
    if not transitions:
        return f'<p class="empty">{_e(record.state_note or "No conversation changed state.")}</p>'
    rows = "".join(
        "<tr>"
        f"<td>{_e(_clock(transcript, t.time))}</td><td>{_e(t.module)}</td><td>{_e(t.key)}</td>"
        f"<td>{_e(t.from_state)} → {_e(t.to_state)}</td><td>{_e(t.function)}</td>"
        f"<td>{_e(t.error)}</td></tr>"
        for t in transitions
    )
    return (
        '<table class="transitions"><tr><th>time</th><th>module</th><th>conversation</th>'
        "<th>transition</th><th>function</th><th>error</th></tr>" + rows + "</table>"
    )


# The sequence diagram ---------------------------------------------------------------

_NARROW, _WIDE = 200, 360  # a participant's column, in pixels, at least and at most
_MARGIN = 16
_HEAD = 34
_ROW = 42
_CHAR = 6.6  # average width of a character at the diagram's font size


def _participants(transcript: Transcript) -> list[str]:
    names: dict[str, None] = {}
    for event in transcript.events:
        if isinstance(event, MessageEvent):
            names.setdefault(event.source)
            names.setdefault(event.destination)
        else:
            names.setdefault("app")
    return list(names)


def _labels(event: MessageEvent, number: int) -> tuple[str, str]:
    """What an arrow says above it (number, subject), and below (the app's address)."""
    label = f"#{number} {event.subject or '(no subject)'}"
    if not event.delivered:
        label += f" [{event.outcome.split(' ', 1)[0]}]"
    # Which of the app's addresses it went to or came from: the app is one column.
    address = ""
    if event.destination == "app":
        address = f"to {event.recipient}"
    elif event.source == "app":
        address = f"from {event.sender or '<>'}"
    return label, address


def _column_width(transcript: Transcript, names: list[str]) -> float:
    """Wide enough for the longest label between neighbours, within bounds."""
    longest = max((len(name) + 4 for name in names), default=0)
    number = 0
    for event in transcript.events:
        if isinstance(event, MessageEvent):
            number += 1
            longest = max(longest, *(len(text) for text in _labels(event, number)))
    return float(min(max(longest * _CHAR + 24, _NARROW), _WIDE))


def _fit(text: str, width: float) -> str:
    most = max(int(width / _CHAR), 4)
    return text if len(text) <= most else text[: most - 1] + "…"


def sequence_svg(transcript: Transcript, anchor: str = "s") -> str:
    """*transcript* as an SVG sequence diagram; each arrow links to ``#<anchor>-m<n>``."""
    names = _participants(transcript)
    column = _column_width(transcript, names)
    x = {name: _MARGIN + column * i + column / 2 for i, name in enumerate(names)}
    width = _MARGIN * 2 + column * len(names)
    rows = len(transcript.events)
    height = _HEAD + _ROW * (rows + 1) + _MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence" width="{width:.0f}" '
        f'height="{height}" viewBox="0 0 {width:.0f} {height}" role="img" '
        f'aria-label="sequence diagram of {len(_message_numbers(transcript))} messages">',
        f'<defs><marker id="{anchor}-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="head"/></marker></defs>',
    ]
    for name in names:
        cx = x[name]
        out.append(
            f'<g class="participant"><title>{_e(name)}</title>'
            f'<rect x="{cx - column / 2 + 8:.0f}" y="4" width="{column - 16:.0f}" '
            'height="26" rx="4"/>'
            f'<text x="{cx:.0f}" y="21" text-anchor="middle">{_e(_fit(name, column - 24))}</text>'
            f'<line class="lifeline" x1="{cx:.0f}" y1="30" x2="{cx:.0f}" y2="{height - 4}"/></g>'
        )
    number = 0
    for row, event in enumerate(transcript.events):
        y = _HEAD + _ROW * (row + 1)
        if isinstance(event, MessageEvent):
            number += 1
            out.append(_arrow(event, number, x[event.source], x[event.destination], y, anchor))
        else:
            out.append(_note(event, x["app"], y, width, column))
    out.append("</svg>")
    return "".join(out)


def _arrow(event: MessageEvent, number: int, x1: float, x2: float, y: float, anchor: str) -> str:
    state = "delivered" if event.delivered else "undelivered"
    label, address = _labels(event, number)
    tip = f"{event.sender or '<>'} → {event.recipient}: {event.subject} ({event.outcome})"
    if x1 == x2:  # to oneself: a loop out to the right
        path = f"M{x1:.0f},{y - 8} h40 v14 h-40"
        line = f'<path d="{path}" fill="none" marker-end="url(#{anchor}-arrow)"/>'
        text = f'<text x="{x1 + 46:.0f}" y="{y}">{_e(_fit(label, _NARROW - 50))}</text>'
    else:
        room = abs(x2 - x1) - 12
        middle = (x1 + x2) / 2
        line = (
            f'<line x1="{x1:.0f}" y1="{y}" x2="{x2:.0f}" y2="{y}" '
            f'marker-end="url(#{anchor}-arrow)"/>'
        )
        text = (
            f'<text x="{middle:.0f}" y="{y - 6}" text-anchor="middle">'
            f"{_e(_fit(label, room))}</text>"
        )
        if address:
            text += (
                f'<text class="address" x="{middle:.0f}" y="{y + 13}" text-anchor="middle">'
                f"{_e(_fit(address, room))}</text>"
            )
    return (
        f'<a href="#{anchor}-m{number}" class="message {state}">'
        f"<title>{_e(tip)}</title>{line}{text}</a>"
    )


def _note(event: TransitionEvent, cx: float, y: float, width: float, column: float) -> str:
    short = event.module.rsplit(".", 1)[-1]
    label = f"{short} [{event.key}] {event.from_state} → {event.to_state}"
    if event.error:
        label += " !!"
    box = min(len(label) * _CHAR + 16, column * 1.9, width - 4)
    left = min(max(cx - box / 2, 2), width - box - 2)
    state = "failed" if event.error else "ok"
    return (
        f'<g class="transition {state}"><title>{_e(label + " " + event.error)}</title>'
        f'<rect x="{left:.0f}" y="{y - 15}" width="{box:.0f}" height="20" rx="3"/>'
        f'<text x="{left + box / 2:.0f}" y="{y - 1}" text-anchor="middle">'
        f"{_e(_fit(label, box - 12))}</text></g>"
    )


# Helpers ----------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(status: str) -> str:
    word = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}.get(status, status.upper())
    return f'<span class="badge {_e(status)}">{word}</span>'


def _clock(transcript: Transcript, moment: datetime) -> str:
    elapsed = int((moment - transcript.start).total_seconds())
    days, rest = divmod(max(elapsed, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return (f"+{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{seconds:02d}"


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa }
header { padding: 16px 24px; background: #fff; border-bottom: 1px solid #ddd }
header.passed { border-top: 6px solid #2e7d32 }
header.failed { border-top: 6px solid #c62828 }
h1 { margin: 0 0 4px; font-size: 20px }
h2 { font-size: 17px; margin: 0 0 4px }
h3 { font-size: 14px; margin: 16px 0 6px }
main { padding: 8px 24px 40px }
nav { padding: 8px 24px; background: #fff; border-bottom: 1px solid #eee }
nav ol { margin: 0; padding-left: 20px }
.scenario { background: #fff; border: 1px solid #ddd; border-left: 6px solid #999;
            margin: 16px 0; padding: 12px 16px }
.scenario.passed { border-left-color: #2e7d32 }
.scenario.failed { border-left-color: #c62828 }
.scenario.skipped { border-left-color: #b28704 }
.badge { font: bold 11px monospace; padding: 2px 5px; border-radius: 3px; color: #fff;
         background: #777 }
.badge.passed { background: #2e7d32 }
.badge.failed { background: #c62828 }
.badge.skipped { background: #b28704 }
.where { color: #666; margin: 0 }
.empty { color: #666; font-style: italic }
pre { background: #f4f4f4; padding: 8px; overflow: auto; white-space: pre-wrap; margin: 4px 0 }
pre.reason, pre.error { background: #fdecea; color: #8e1b1b }
.steps { padding-left: 22px }
.step { margin: 2px 0 }
.kw { font-weight: bold }
.outcome { color: #888; font-size: 12px }
.step.failed, .step.error, .step.undefined { color: #c62828 }
.step.skipped, .step.untested { color: #999 }
table { border-collapse: collapse; margin: 4px 0 }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left }
.diagram { margin: 0; overflow-x: auto }
svg.sequence { font: 12px system-ui, sans-serif; background: #fff }
svg .participant rect { fill: #eef3fb; stroke: #5b7db1 }
svg .lifeline { stroke: #bbb; stroke-dasharray: 4 3 }
svg .message line, svg .message path { stroke: #333; stroke-width: 1.3 }
svg .head { fill: #333 }
svg .message .address { fill: #777; font-size: 11px }
svg .message.undelivered line, svg .message.undelivered path { stroke: #c62828;
                                                               stroke-dasharray: 5 3 }
svg .message.undelivered text { fill: #c62828 }
svg a.message:hover text { text-decoration: underline }
svg .transition rect { fill: #fff8d6; stroke: #b28704 }
svg .transition.failed rect { fill: #fdecea; stroke: #c62828 }
details.message { margin: 2px 0 }
details.message summary { cursor: pointer; font-family: monospace }
details.message.undelivered summary { color: #c62828 }
details.message:target summary { background: #fff3b0 }
"""

# Opens the message an arrow or link points at; the report works without it.
_SCRIPT = """
function mailsimOpenTarget(){
  var id = decodeURIComponent(location.hash.slice(1));
  var target = id ? document.getElementById(id) : null;
  if (target && target.tagName === 'DETAILS') { target.open = true; }
}
window.addEventListener('hashchange', mailsimOpenTarget);
document.addEventListener('DOMContentLoaded', mailsimOpenTarget);
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
<script>{script}</script>
</head>
<body>
<header class="{verdict}"><h1>{title}</h1><p class="summary">{summary}</p></header>
<nav><ol class="index">{index}</ol></nav>
<main>
{sections}
</main>
</body>
</html>
"""
