"""``mailsim run --live``: the example's features against ``mailsim serve`` of the same app.

The test copies the mailing-list example, points its ``[receiver]`` at a free port
and its ``[relay]`` at another, where ``mailsim run`` starts its sink, and runs
the server in a subprocess. Everything stays on loopback.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailsim.live import Endpoint, LiveError, LiveRun, open_sink, probe_relay
from mailsim.live.served import free_port, serve_copy
from mailsim.steps.runner import run_features

ROOT = Path(__file__).resolve().parents[2]
MAILINGLIST = ROOT / "examples" / "mailinglist"
MAILSIM = str(Path(sys.executable).parent / "mailsim")


@dataclass
class Server:
    project: Path
    address: Endpoint
    sink: Endpoint
    state_url: str
    process: subprocess.Popen[bytes]

    def run(self, *args: str, timeout: float = 180) -> tuple[int, str, float]:
        """``mailsim run --live`` against this server: exit status, output, seconds."""
        started = time.perf_counter()
        completed = subprocess.run(
            [MAILSIM, "run", "--live", str(self.address), "--quiet-period", "0.3", *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = completed.stdout + completed.stderr
        return completed.returncode, output, time.perf_counter() - started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_copy(MAILINGLIST, tmp_path_factory.mktemp("live")) as served:
        yield Server(
            served.project,
            served.address,
            served.sink,
            served.state_url,
            served.process,
        )


def test_the_same_features_pass_against_mailsim_serve(server: Server, tmp_path: Path) -> None:
    code, output, took = server.run(
        "--sink",
        str(server.sink),
        "--state-url",
        server.state_url,
        "--tags",
        "not @world",
        "--junit",
        str(tmp_path / "junit"),
        "--report",
        str(tmp_path / "live.html"),
    )
    assert code == 0, output
    assert "11 scenarios: 11 passed, 0 failed, 0 skipped" in output
    assert "against the live server" in output
    assert f"catching its replies at {server.sink}" in output
    assert list((tmp_path / "junit").glob("*.xml"))
    report = (tmp_path / "live.html").read_text(encoding="utf-8")
    assert "11 scenarios: 11 passed" in report
    assert "· live" in report
    print(f"live: 11 scenarios in {took:.2f}s (whole command)")  # shown with pytest -s


def test_runs_never_see_each_others_mail(server: Server) -> None:
    # The sink is taken from the project's [relay]; every run has its own people.
    first = server.run("--state-url", server.state_url, "--tags", "not @world")
    second = server.run("--state-url", server.state_url, "--tags", "not @world")
    assert first[0] == 0, first[1]
    assert second[0] == 0, second[1]
    run_ids = {re.findall(r"; run (\w+)", out)[0] for _, out, _ in (first, second)}
    assert len(run_ids) == 2


def test_what_only_the_world_can_do_is_skipped_never_passed(server: Server) -> None:
    code, output, _ = server.run("--sink", str(server.sink), "--tags", "@world or @nothing")
    assert code == 1
    assert "SKIP  The python mailing list — A confirmation expires after three days" in output
    assert (
        "skipped: moving the clock (3 days, 0:00:00) is not possible against a live server"
        in output
    )
    assert "1 scenarios: 0 passed, 0 failed, 1 skipped" in output


def test_state_is_not_observable_without_the_state_database(server: Server) -> None:
    code, output, _ = server.run("--sink", str(server.sink), "--tags", "not @world")
    assert code == 1
    assert (
        "skipped: a conversation's state is not observable live without --state-url "
        "(the server's state database)"
    ) in output
    assert "PASS  The python mailing list — A post reaches every other member" in output
    assert " 0 failed" in output


def test_waiting_for_mail_ends_at_the_deadline_saying_so(server: Server, tmp_path: Path) -> None:
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "steps" / "mailsim_steps.py").write_text("from mailsim.steps import *\n")
    (features / "wait.feature").write_text(
        "Feature: Waiting\n"
        "  Scenario: A mail that never comes\n"
        '    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"\n'
        '    Then "alice@example.org" receives a mail with subject "Never sent"\n'
    )
    sink = open_sink(Endpoint("127.0.0.1", server.sink.port))
    live = LiveRun(server.address, sink, timeout=0.5)
    try:
        started = time.monotonic()
        result = run_features([features], live=live, project=server.project)
        waited = time.monotonic() - started
    finally:
        sink.stop()
    (record,) = result.records
    assert record.status == "failed"
    assert (
        "alice@example.org: expected a mail with subject containing 'Never sent'" in record.reason
    )
    assert "#1 from python-confirm-" in record.reason  # what came instead
    assert f"(waited 0.5s for it at the sink on port {server.sink.port}" in record.reason
    assert f"alice@example.org is alice+ms{live.run_id}s1@example.org in this run" in record.reason
    assert waited < 10


def test_the_open_relay_probes_go_over_smtp(server: Server) -> None:
    report = probe_relay(server.address, "lists.example.com")
    assert len(report.results) == 16
    assert not report.open, str(report)
    assert all(r.answer.startswith("5") for r in report.results), str(report)


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    nowhere = Endpoint("127.0.0.1", free_port())
    with pytest.raises(LiveError, match=f"cannot probe {nowhere} for open relaying"):
        probe_relay(nowhere, "x")


def test_endpoints() -> None:
    assert Endpoint.parse("127.0.0.1:25") == Endpoint("127.0.0.1", 25)
    assert Endpoint.parse("[::1]:2525") == Endpoint("::1", 2525)
    assert str(Endpoint("mail.example.com", 587)) == "mail.example.com:587"
    for bad in ("nowhere", "host:", ":25", "host:99999"):
        with pytest.raises(ValueError):
            Endpoint.parse(bad)
