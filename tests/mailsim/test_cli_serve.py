"""``mailsim serve``, ``start``/``stop``/``restart``/``status`` and ``log`` on a real
project, over loopback."""

from __future__ import annotations

import re
import signal
import smtplib
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mailsim_runtime.inbound import decode_stored
from mailsim_runtime.queue import MaildirQueue

from mailsim.cli import main

HANDLERS = """
from mailsim_runtime import current_app, route, stateless

@route("(user)@example.com", user=".+")
@stateless
def RECORD(message, user):
    with open(current_app().settings["delivered"], "a") as out:
        out.write(f"{message.recipient} {message['Subject']}\\n")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: object, timeout: float = 30.0) -> None:
    """Poll *condition* (another process's progress: nothing to wait on) until true."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def mailsim(*args: str) -> list[str]:
    return [sys.executable, "-c", "from mailsim.cli import main; main()", *args]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "project"
    (folder / "servedapp").mkdir(parents=True)
    (folder / "servedapp" / "__init__.py").write_text("")
    (folder / "servedapp" / "handlers.py").write_text(HANDLERS)
    (folder / "mailsim.toml").write_text(
        textwrap.dedent(f"""
        [app]
        hostname = "example.com"
        handlers = ["servedapp.handlers"]

        [receiver]
        port = {free_port()}
        durability = "none"
        workers = 2

        [settings]
        delivered = "{folder / "delivered.txt"}"
        """)
    )
    yield folder
    # Whatever a failed test left running in the background.
    run("stop", "--all", "--force", "--timeout", "5", "-p", str(folder))


def port_of(project: Path) -> int:
    found = re.search(r"port = (\d+)", (project / "mailsim.toml").read_text())
    assert found
    return int(found.group(1))


def send(port: int, recipient: str, subject: str) -> None:
    data = f"From: s@client.example\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\nhi\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("s@client.example", [recipient], data.encode())


def delivered(project: Path) -> list[str]:
    path = project / "delivered.txt"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("command", ["serve", "start", "stop", "restart", "status", "log"])
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main {command} [OPTIONS]")


@pytest.mark.parametrize("command", ["serve", "start", "stop", "restart", "status", "log"])
def test_without_a_project_each_fails_with_one_line(command: str, tmp_path: Path) -> None:
    result = run(command, "-p", str(tmp_path))
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: no mailsim.toml in ")


def test_serve_fails_with_one_line_when_the_handlers_cannot_load(project: Path) -> None:
    toml = project / "mailsim.toml"
    toml.write_text(toml.read_text().replace("servedapp.handlers", "servedapp.missing"))
    result = run("serve", "-p", str(project))
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert "cannot load the handlers" in line and "servedapp.missing" in line


def test_serve_fails_with_one_line_when_the_port_is_taken(project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "-p", str(project), "--port", str(port), "--log-level", "error")
    assert result.exit_code == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: " in result.output


def test_serve_in_the_foreground_stops_gracefully_on_sigterm(project: Path) -> None:
    pid_file = project / "run" / "fg.pid"
    port = port_of(project)
    server = subprocess.Popen(
        mailsim("serve", "-p", str(project), "--pid-file", str(pid_file)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: pid_file.exists() or server.poll() is not None)
        assert int(pid_file.read_text()) == server.pid
        send(port, "a@example.com", "foreground")
        wait_until(lambda: delivered(project) == ["a@example.com foreground"])
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, log
    assert "listening on" in log and "shutting down" in log
    assert not pid_file.exists()


def test_start_status_restart_stop(project: Path) -> None:
    port = port_of(project)
    started = run("start", "-p", str(project))
    assert started.exit_code == 0, started.output
    assert f"on 127.0.0.1:{port}" in started.output
    first_pid = int((project / "run" / "serve.pid").read_text())
    assert run("start", "-p", str(project)).output.startswith("Error: serve is already running")
    status = run("status", "-p", str(project))
    assert status.exit_code == 0 and f"serve: running (pid {first_pid})" in status.output
    send(port, "b@example.com", "background")
    wait_until(lambda: delivered(project) == ["b@example.com background"])

    restarted = run("restart", "-p", str(project))
    assert restarted.exit_code == 0, restarted.output
    second_pid = int((project / "run" / "serve.pid").read_text())
    assert second_pid != first_pid and f"serve stopped (pid {first_pid})" in restarted.output
    send(port, "c@example.com", "again")
    wait_until(lambda: len(delivered(project)) == 2)

    stopped = run("stop", "-p", str(project))
    assert stopped.exit_code == 0 and f"serve stopped (pid {second_pid})" in stopped.output
    assert "listening on" in (project / "run" / "serve.log").read_text()
    status = run("status", "-p", str(project))
    assert status.exit_code == 1 and "Error: mailsim serve is not running" in status.output
    assert run("stop", "-p", str(project)).output == "Error: mailsim serve is not running\n"


def test_start_says_why_the_server_did_not_start(project: Path) -> None:
    toml = project / "mailsim.toml"
    toml.write_text(toml.read_text().replace("servedapp.handlers", "servedapp.missing"))
    result = run("start", "-p", str(project))
    assert result.exit_code == 1
    assert result.output.startswith("Error: serve did not start: Error: cannot load the handlers")


def test_log_keeps_every_message_and_stop_all_stops_it(project: Path) -> None:
    port = free_port()
    started = run("log", "-p", str(project), "--port", str(port))
    assert started.exit_code == 0, started.output
    send(port, "anyone@anywhere.example", "logged")
    queue = MaildirQueue(project / "run" / "queue")
    wait_until(lambda: queue.count() == 1)
    stored = decode_stored(queue.get(queue.keys()[0]) or b"")
    assert stored is not None and stored.recipients == ("anyone@anywhere.example",)
    wait_until(lambda: "'logged'" in (project / "run" / "log.log").read_text())
    status = run("status", "-p", str(project))
    assert "log: running" in status.output and status.exit_code == 1  # serve is not
    stopped = run("stop", "--all", "-p", str(project))
    assert stopped.exit_code == 0 and "log stopped" in stopped.output
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_workers_share_the_port_and_stop_together(project: Path) -> None:
    pid_file = project / "run" / "workers.pid"
    port = port_of(project)
    server = subprocess.Popen(
        mailsim("serve", "-p", str(project), "--workers", "2", "--pid-file", str(pid_file)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: pid_file.exists() or server.poll() is not None)
        assert server.poll() is None
        for number in range(20):
            send(port, f"w{number}@example.com", f"w{number}")
        wait_until(lambda: len(delivered(project)) == 20)
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, log
    receivers = set(re.findall(r"\[(\d+)\] mailsim\.server: 127\.0\.0\.1:\d+: queued", log))
    assert len(receivers) == 2 and str(server.pid) not in receivers, log
    assert not pid_file.exists()


def test_workers_refuse_a_port_they_cannot_share(project: Path) -> None:
    result = run("serve", "-p", str(project), "--workers", "2", "--port", "0")
    assert result.exit_code == 1
    assert result.output == (
        "Error: --workers needs a fixed port: with port 0 each process would get its own\n"
    )


def test_a_worker_that_cannot_start_stops_the_lot(project: Path) -> None:
    toml = project / "mailsim.toml"
    toml.write_text(toml.read_text().replace("servedapp.handlers", "servedapp.missing"))
    result = subprocess.run(
        mailsim("serve", "-p", str(project), "--workers", "2"),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "failed to start" in result.stderr.splitlines()[-1]
