"""SmtpSink: the accept-everything SMTP server tests and the live driver use."""

from __future__ import annotations

import smtplib
import threading
from pathlib import Path

import pytest
from mailsim_runtime.server import SinkMessage, SmtpSink

RAW = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n"


def test_it_keeps_every_message_with_its_envelope() -> None:
    with SmtpSink() as sink:
        assert sink.port != 0
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.sendmail("a@example.org", ["b@example.net", "c@anywhere.example"], RAW)
            client.sendmail("<>", ["d@example.net"], RAW)
        first, second = sink.wait_for(lambda messages: len(messages) == 2, timeout=5)
    assert first.sender == "a@example.org"
    assert first.recipients == ("b@example.net", "c@anywhere.example")
    assert first.data == RAW
    assert (second.sender, second.recipients) == ("", ("d@example.net",))
    assert first.peer is not None and first.peer.startswith("127.0.0.1:")


def test_start_and_stop_without_a_with_block() -> None:
    sink = SmtpSink("127.0.0.1", port=0)
    assert sink.start() is sink
    try:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail("a@example.org", ["b@example.net"], RAW)
        [message] = sink.wait_for(timeout=5)
        assert isinstance(message, SinkMessage)
    finally:
        sink.stop()
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", sink.port, timeout=2)


def test_wait_for_times_out_saying_what_arrived() -> None:
    with SmtpSink() as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail("a@example.org", ["b@example.net"], RAW)
        with pytest.raises(TimeoutError, match=r"'a@example.org' -> \['b@example.net'\]"):
            sink.wait_for(lambda messages: len(messages) > 1, timeout=0.2)
        sink.clear()
        assert sink.messages == []


def test_the_callback_runs_before_the_250(tmp_path: Path) -> None:
    seen: list[SinkMessage] = []
    called = threading.Event()

    def record(message: SinkMessage) -> None:
        seen.append(message)
        called.set()

    with SmtpSink(on_message=record, keep=False) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail("a@example.org", ["b@example.net"], RAW)
            assert called.is_set()  # sendmail returned: the 250 came after the callback
        assert sink.messages == []
    assert [m.data for m in seen] == [RAW]


def test_a_busy_port_is_an_error() -> None:
    with SmtpSink() as first, pytest.raises(OSError):
        SmtpSink(port=first.port).start()
