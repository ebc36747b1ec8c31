"""The runtime's own behaviour as specs: ``features/runtime`` in the world and live.

In the world every scenario passes but the ``@live`` ones (SMTP smuggling), which are
skipped saying why. Against ``mailsim serve`` of the responder app (on loopback, its
relay pointed at the run's sink) the scenarios not tagged ``@world`` pass, smuggling
included; against a server that ends DATA at a bare LF they fail, saying so.
"""

from __future__ import annotations

import io
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mailsim_runtime.autoreply import ReplyLimit

from mailsim.live import Endpoint, LiveRun, open_sink
from mailsim.live.served import serve_copy
from mailsim.steps._scene import StepFailed
from mailsim.steps.runner import run_features
from mailsim.steps.smuggling import ending_bytes
from mailsim.world import World

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "features" / "runtime"
RESPONDER = ROOT / "features" / "apps" / "responder"
SMUGGLING = RUNTIME / "smuggling.feature"
ENDINGS = 10  # REFERENCE.md's smuggling endings, one scenario each


def test_the_runtime_features_pass_in_the_world_but_the_live_only_ones() -> None:
    out = io.StringIO()
    result = run_features([RUNTIME], out=out)
    output = out.getvalue()
    skipped = [r for r in result.records if r.status == "skipped"]
    assert result.counts == {
        "passed": len(result.records) - ENDINGS,
        "failed": 0,
        "skipped": ENDINGS,
    }, output
    assert len(result.records) >= 50
    for record in skipped:
        assert "live" in record.tags
        assert record.reason.startswith("SMTP smuggling is not possible in the world"), record
    assert not [r for r in result.records if "live" in r.tags and r.status != "skipped"]
    assert result.elapsed < 10, output  # about a second: virtual time, no sockets
    print(f"world: {len(result.records)} scenarios in {result.elapsed:.2f}s")


def test_without_the_live_only_ones_the_world_run_passes() -> None:
    result = run_features([RUNTIME], tags="not @live", out=io.StringIO())
    assert result.passed
    assert result.exit_status == 0


def test_the_live_ones_pass_against_mailsim_serve(tmp_path: Path) -> None:
    queues = tmp_path / "queues"
    (queues / "steps").mkdir(parents=True)
    (queues / "steps" / "mailsim_steps.py").write_text("from mailsim.steps import *\n")
    (queues / "queue.feature").write_text(
        "Feature: Queues, live\n"
        "  Scenario: Postmaster's mail\n"
        f'    Given the application in "{RESPONDER}"\n'
        '    When "alice@example.org" sends a mail to "postmaster@responder.example.com"\n'
        "    Then the undeliverable queue holds 1 mail\n"
    )
    with serve_copy(RESPONDER, tmp_path / "served") as served:
        started = time.perf_counter()
        completed = served.run_live("--quiet-period", "0.3", "--tags", "not @world", str(RUNTIME))
        took = time.perf_counter() - started
        unseen = served.run_live("--quiet-period", "0.3", str(queues))
        log = served.log.read_text(errors="replace")
    # A queue is a folder on the server: skipped, never passed.
    assert unseen.returncode == 1, unseen.stdout + unseen.stderr
    assert (
        "skipped: the undeliverable queue is a folder on the server: what it holds is not "
        "observable from a live run"
    ) in unseen.stdout
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert " passed, 0 failed, 0 skipped" in output and "against the live server" in output
    smuggled = [line for line in output.splitlines() if line.startswith("PASS  SMTP smuggling")]
    assert len(smuggled) == ENDINGS, output
    # The server itself says why: a bare line end, or a NUL.
    assert log.count("message refused: 550 5.6.0") == ENDINGS, log
    print(f"live: {output.strip().splitlines()[-1]} ({took:.2f}s with the command)")


class _CarelessSmtp(socketserver.StreamRequestHandler):
    """A server of the kind smuggling fools: lines end at LF, DATA ends at a "." line."""

    def handle(self) -> None:
        write = self.wfile.write
        write(b"220 careless.example ESMTP\r\n")
        in_data = False
        while line := self.rfile.readline():
            text = line.rstrip(b"\r\n")
            if in_data:
                if text == b".":
                    in_data = False
                    write(b"250 2.0.0 queued\r\n")
                continue
            verb = text[:4].upper()
            if verb == b"QUIT":
                write(b"221 2.0.0 bye\r\n")
                return
            in_data = verb == b"DATA"
            write(b"354 go ahead\r\n" if in_data else b"250 2.0.0 ok\r\n")


@pytest.fixture
def careless_server() -> Iterator[Endpoint]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _CarelessSmtp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Endpoint("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_smuggling_fools_fails_every_ending(careless_server: Endpoint) -> None:
    sink = open_sink(Endpoint("127.0.0.1", 0))
    try:
        live = LiveRun(careless_server, sink, timeout=2, quiet_period=0.1)
        result = run_features([SMUGGLING], live=live, out=io.StringIO())
    finally:
        sink.stop()
    assert result.counts == {"passed": 0, "failed": ENDINGS, "skipped": 0}
    by_ending = {r.name.split(" behind ")[1].split(" is refused")[0]: r for r in result.records}
    split = by_ending["\\n.\\n"].reason
    assert "the server answered: 250 2.0.0 queued; 250 2.0.0 ok; 250 2.0.0 ok; 354" in split
    assert "it took the smuggled ending for the end of the data" in split
    kept = by_ending["\\r.\\r"].reason
    assert "the server answered: 250 2.0.0 queued; 221 2.0.0 bye" in kept
    assert "it did not refuse a mail with a bare CR, LF or NUL in its data" in kept


def test_endings_are_written_as_in_reference_md() -> None:
    assert ending_bytes("\\n.\\n") == b"\n.\n"
    assert ending_bytes("\\r\\n\\0.\\r\\n") == b"\r\n\0.\r\n"
    assert ending_bytes("a\\\\b") == b"a\\b"
    with pytest.raises(StepFailed, match=r"\\t in the ending .* means nothing"):
        ending_bytes("\\t.\\n")


def test_a_careless_vacation_and_the_responder_stop_at_the_reply_limit() -> None:
    # A remote responder that ignores RFC 3834 answers every answer; ours stops once
    # the address has had its limit of automatic replies (RFC 3834 section 2).
    world = World(RESPONDER, strict=False)
    world.host("example.net").vacation("bob@example.net", "Away.", follows_rfc3834=False)
    world.mailbox("bob@example.net").send("support@responder.example.com", "Question")
    assert len(world.mailbox("bob@example.net").messages) == ReplyLimit().count
