"""Hostile and broken input: fuzzing the receive → parse → route path and bounce analysis
(Hypothesis always; atheris where it is installed), the broken-MIME catalogue through
a real receiver, and header injection through template variables.

No input may crash the runtime or take long: each must finish well inside
TIME_BUDGET seconds (the standard library's slow paths are bounded by
:mod:`mailsim_runtime.mimeguard`), and is either kept (accepted, handed to the
handler, its problems recorded as defects) or refused with a reason.
"""

from __future__ import annotations

import base64
import email
import email.policy
import importlib.util
import os
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faults_support import DOMAIN, receiver, recording_app
from fuzz_receive import exercise
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mailsim_runtime.bounce import analyze
from mailsim_runtime.mail import HeaderInjectionError, MailRequest
from mailsim_runtime.mimeguard import HeaderTooComplexDefect, MimeTooComplexDefect
from mailsim_runtime.view import Views

TIME_BUDGET = 2.0  # seconds for one input, through everything

# The pieces the standard library's slow paths and crashes are made of.
PIECES = [
    *(b'"', b"\\", b"(", b")", b"(a)", b"<", b">", b"@", b",", b";", b":", b".", b"a:b;"),
    *(b"=?", b"?=", b"=?utf-8?q?", b"=?x-unknown?b?", b"=?utf-8?b?!!?=", b"=0A"),
    b"=?utf-8?q?a=0Ab?=",
    *(b" ", b"\t", b"a", b"\xe9", b"\xff", b"\x00", b"\r", b"\n", b"\r\n ", b"'", b"*0*="),
]  # fmt: skip
NAMES = [
    *(b"From", b"To", b"Cc", b"Reply-To", b"Sender", b"Subject", b"Message-ID", b"Date"),
    *(b"In-Reply-To", b"References", b"Received", b"Content-Type", b"Content-Disposition"),
    *(b"Content-Transfer-Encoding", b"MIME-Version", b"Auto-Submitted", b"X-Failed-Recipients"),
]  # fmt: skip

repeated = st.builds(
    lambda piece, count: piece * count, st.sampled_from(PIECES), st.integers(1, 6000)
)
value = st.one_of(
    repeated,
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=20)), max_size=60).map(b"".join),
    st.text(max_size=120).map(lambda text: text.encode("utf-8", "surrogatepass")),
)
header = st.tuples(st.sampled_from(NAMES) | st.binary(min_size=1, max_size=12), value).map(
    lambda pair: pair[0] + b": " + pair[1] + b"\r\n"
)
boundary = st.sampled_from([b"b", b"=_x", b'"', b"", b"a" * 80, b"--", b"b\xff"])
leaf = st.one_of(
    st.binary(max_size=200),
    st.just(b"Content-Transfer-Encoding: base64\r\n\r\n!!!@@@###$$$%%%^^^&&&***\r\nQUJD=D\r\n"),
    st.just(b"Content-Type: text/plain; charset=x-klingon\r\n\r\nqapla\xff\r\n"),
    st.just(b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xfd\r\n"),
    st.just(b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner\r\n"),
    st.just(
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*0*=utf-8''%FF%FE\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n%%%\r\n"
    ),
)  # fmt: skip


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    def build(kind: bytes, declared: bytes, used: bytes, parts: list[bytes], end: bool) -> bytes:
        head = b"Content-Type: multipart/" + kind + b'; boundary="' + declared + b'"\r\n\r\n'
        body = b"".join(b"--" + used + b"\r\n" + part + b"\r\n" for part in parts)
        return head + b"preamble\r\n" + body + (b"--" + used + b"--\r\n" if end else b"")

    return st.builds(
        build,
        st.sampled_from([b"mixed", b"alternative", b"related", b"report", b"x"]),
        boundary,
        boundary,
        st.lists(children, max_size=4),
        st.booleans(),
    )


body = st.recursive(leaf, multipart, max_leaves=12)


def nested(depth: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(depth)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(depth)))
    return head + b"Content-Type: text/plain\r\n\r\ndeep" + tail


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    return b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"


messages = st.one_of(
    st.builds(lambda headers, body: b"".join(headers) + b"\r\n" + body, st.lists(header), body),
    st.builds(
        lambda headers, depth: b"".join(headers) + nested(depth),
        st.lists(header, max_size=3),
        st.integers(90, 400),
    ),
    st.binary(max_size=2000),
)


def timed(data: bytes) -> tuple[Any, float]:
    started = time.perf_counter()
    outcome = exercise(data)
    return outcome, time.perf_counter() - started


@settings(
    max_examples=120,
    deadline=None,  # timed below, against a budget of our own
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages)
@example(b"From: " + b'"' * 60_000 + b"\r\n\r\nx\r\n")  # seconds in the registry, unbounded
@example(b"To: " + b"(" * 20_000 + b"\r\n\r\nx\r\n")  # RecursionError
@example(b"Message-ID: " + b"<" * 5_000 + b"\r\n\r\nx\r\n")  # IndexError
@example(b"From: a:b;\r\n\r\nx\r\n")  # AttributeError
@example(b"From: a:b@c.example;x\r\n\r\nx\r\n")  # AttributeError storing the reply's To
@example(b"Reply-To: " + b"\xe9" * 3000 + b"\r\n\r\nx\r\n")  # seconds folding the reply's To
@example(b"From: " + b"(" * 994 + b"\r\n\r\nx\r\n")  # RecursionError in getaddresses
@example(b"From: a@b.example\r\nMessage-ID: <\x0c@x>\r\n\r\nx\r\n")  # a form feed: "injection"
@example(b'Content-Type: text/plain; a="' + b'"' * 20_000 + b"\r\n\r\nx\r\n")
@example(b"From: a@b.example\r\n" + nested(2_000))  # RecursionError walking it
@example(many_parts(1_500))
@example(  # distinct hostile part headers: the parse budget runs out half way
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    + b"".join(
        b"--b\r\nContent-Type: text/plain; a=" + b'"' * (2000 + n) + b"\r\n\r\nx\r\n"
        for n in range(100)
    )
    + b"--b--\r\n"
)
@example(b"Subject: =?utf-8?q?a=0ABcc:_victim@example.org?=\r\n\r\nx\r\n")
def test_no_input_crashes_or_hangs_the_receive_parse_route_path(data: bytes) -> None:
    _, elapsed = timed(data)
    assert elapsed < TIME_BUDGET, f"{elapsed:.2f} s for one input of {len(data)} bytes"


bounces = st.one_of(
    messages,
    st.builds(
        lambda fields, text: (
            b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
            b"--r\r\nContent-Type: text/plain\r\n\r\n" + text + b"\r\n"
            b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example\r\n\r\n" + b"".join(fields) + b"\r\n--r--\r\n"
        ),
        st.lists(header | st.sampled_from([
            b"Final-Recipient: rfc822; " + b"<" * 3000 + b"\r\n",
            b"Status: 5." + b"1" * 5000 + b"\r\n",
            b"Diagnostic-Code: smtp; 550 " + b"x" * 100_000 + b"\r\n",
            b"Action: failed\r\n",
            b"Final-Recipient: x-unix; |/bin/sh\r\n",
        ]), max_size=2000),
        st.binary(max_size=500) | repeated,
    ),
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bounces)
def test_bounce_analysis_never_raises_nor_hangs(data: bytes) -> None:
    started = time.perf_counter()
    for report in (analyze(data), analyze(MailRequest(None, "", f"a@{DOMAIN}", data))):
        if report is not None:
            assert all(isinstance(r.recipient, str) for r in report.recipients)
    assert time.perf_counter() - started < TIME_BUDGET


# The broken-MIME catalogue, through a real receiver ------------------------------


def folded(value: bytes) -> bytes:
    """*value* folded into header lines within the 1000-octet line limit."""
    return b"\r\n ".join(value[n : n + 900] for n in range(0, len(value), 900))


HEAD = b"From: sender@client.example\r\nTo: a@example.com\r\nMessage-ID: <m@client.example>\r\n"
B64_GARBAGE = b"Content-Transfer-Encoding: base64\r\n\r\n!!!@@@###$$$%%%^^^&&&***\r\nQUJD=D\r\n"
CATALOGUE: dict[str, tuple[bytes, str]] = {
    # name: (content, what must happen: "kept" with these defect names, or the reply)
    "boundary declared, never used": (
        HEAD + b'Subject: c1\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n'
        b"--yy\r\nContent-Type: text/plain\r\n\r\nhi\r\n--yy--\r\n",
        "kept: StartBoundaryNotFoundDefect",
    ),
    "multipart without a boundary": (
        HEAD + b"Subject: c2\r\nContent-Type: multipart/mixed\r\n\r\n--yy\r\n\r\nhi\r\n",
        "kept: NoBoundaryInMultipartDefect",
    ),
    "no closing boundary": (
        HEAD + b'Subject: c3\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n",
        "kept: CloseBoundaryNotFoundDefect",
    ),
    "nested 2000 deep": (HEAD + b"Subject: c4\r\n" + nested(2000), "kept: MimeTooComplexDefect"),
    "nested 100 deep (the limit)": (HEAD + b"Subject: c5\r\n" + nested(99), "kept"),
    "1500 parts": (HEAD + b"Subject: c6\r\n" + many_parts(1500), "kept: MimeTooComplexDefect"),
    "garbage base64": (
        HEAD + b"Subject: c7\r\nContent-Type: text/plain\r\n" + B64_GARBAGE,
        "kept: InvalidBase64",
    ),
    "unknown charset": (
        HEAD + b"Subject: =?x-klingon?q?qapla?=\r\n"
        b"Content-Type: text/plain; charset=x-klingon\r\n\r\nqapla\xff\r\n",
        "kept",
    ),
    "8-bit headers without SMTPUTF8": (
        HEAD.replace(b"From: sender", b"From: J\xc3\xbcrgen \xff <sender")
        + b"Subject: gr\xfc\xdf\r\n\r\nx\r\n",
        "kept",
    ),
    "hostile 20 KB From (quadratic in the registry)": (
        b"To: a@example.com\r\nSubject: c10\r\nFrom: " + folded(b'"' * 20_000) + b"\r\n\r\nx\r\n",
        "kept: HeaderTooComplexDefect",
    ),
    "run of ( in To (RecursionError in the registry)": (
        b"Subject: c11\r\nTo: " + folded(b"(" * 3000) + b"\r\n\r\nx\r\n",
        "kept: HeaderTooComplexDefect",
    ),
    "NUL bytes": (
        HEAD + b"Subject: c12\r\n\r\nbo\x00dy\r\n",
        "550 5.6.0 Message refused: NUL character in its content (RFC 2045 section 2.7)",
    ),
    "1 MB header": (
        HEAD
        + b"Subject: c13\r\nX-Big: "
        + b"\r\n ".join([b"a" * 990] * 1060)  # 1 MB in lines the line limit allows
        + b"\r\n\r\nx\r\n",
        "552 5.3.4 Message header too big: the limit is 102400 bytes",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app, recorder = recording_app()
    with receiver(app, tmp_path_factory.mktemp("catalogue")) as server:
        yield server, recorder


@pytest.mark.parametrize("case", list(CATALOGUE))
def test_broken_mime_is_kept_with_its_defects_or_refused_with_a_reason(
    case: str, served: Any
) -> None:
    server, recorder = served
    content, expected = CATALOGUE[case]
    before = len(recorder.items)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo("client.example")
        client.mail("s@client.example")
        client.rcpt(f"a@{DOMAIN}")
        code, text = client.data(content)
    if not expected.startswith("kept"):
        assert f"{code} {text.decode()}" == expected
        time.sleep(0.05)  # a short look: nothing may arrive (a refusal queues nothing)
        assert len(recorder.items) == before
        return
    assert code == 250, (code, text)
    [request] = recorder.wait_for(before + 1)[before:]
    started = time.perf_counter()
    _ = request["From"], request["To"], request["Subject"]
    request.body()
    request.attachments()
    defects = {type(d).__name__ for d in request.defects}
    assert time.perf_counter() - started < TIME_BUDGET
    wanted = expected.partition(": ")[2]
    assert any(name.startswith(wanted) for name in defects) if wanted else True, defects
    assert request.original.endswith(content)  # kept whole, whatever the parse made of it


def test_a_value_too_long_for_the_registry_is_read_as_received() -> None:
    names = ", ".join(f'"Person {n}" <p{n}@example.org>' for n in range(300))
    request = MailRequest(None, "", "a@example.com", f"To: {names}\r\n\r\nx\r\n".encode())
    assert request["To"] == names  # about 10 KB: not parsed, not lost
    [defect] = request.defects
    assert isinstance(defect, HeaderTooComplexDefect)


def test_the_limits_are_what_postfix_allows() -> None:
    request = MailRequest(None, "", "a@example.com", b"From: a@b.example\r\n" + nested(99))
    assert request.body() == "deep"  # 100 levels with the message itself
    too_deep = MailRequest(None, "", "a@example.com", b"From: a@b.example\r\n" + nested(100))
    assert too_deep.body() is None
    assert [type(d) for d in too_deep.defects] == [MimeTooComplexDefect]


# Header injection through template variables --------------------------------------

_BREAKS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"]) | st.sampled_from(list(_BREAKS)),
        max_size=80,
    )
)
def test_no_template_variable_injects_a_header(tmp_path_factory: Any, evil: str) -> None:
    folder = Path(__file__).parent / "templates"
    views = Views([folder])
    try:
        response = views.respond(
            {"who": evil, "list": evil},
            text="note.txt",
            to="owner@example.com",
            from_="robot@example.com",
            subject="About {{ who }}",
            headers={"X-List": "{{ list }}"},
        )
    except HeaderInjectionError:
        assert any(c in _BREAKS for c in evil)
        return
    assert not any(c in _BREAKS for c in evil)
    parsed = email.message_from_bytes(response.as_bytes(), policy=email.policy.default)
    names = sorted(name.lower() for name in parsed)
    assert names == sorted(
        ["to", "from", "subject", "x-list", "mime-version", "content-type",
         "content-transfer-encoding"]
    )  # fmt: skip
    # Compared without whitespace: Python's folding can drop a space where a long non-ASCII
    # value is split between two encoded-words (CPython gh-144156, fixed after 3.13).
    assert "".join(str(parsed["Subject"]).split()) == "".join(f"About {evil}".split())


# atheris ---------------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (optional: pip install atheris); Hypothesis covers the path",
)
def test_atheris_finds_nothing_in_a_bounded_run(tmp_path: Path) -> None:
    """A short coverage-guided run from the catalogue's seeds (a longer one: run
    ``fuzz_atheris.py`` by hand). Each input has two seconds (``-timeout=2``)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, (content, _) in enumerate(CATALOGUE.values()):
        (corpus / f"seed{number}").write_bytes(content[:20_000])
    (corpus / "b64").write_bytes(base64.b64encode(b"seed"))
    target = Path(__file__).with_name("fuzz_atheris.py")
    run = subprocess.run(
        [
            sys.executable, str(target), str(corpus),
            "-runs=400", "-timeout=2", "-max_total_time=10", "-max_len=65536",
            "-rss_limit_mb=1024", "-seed=7", "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target.parent)},
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
