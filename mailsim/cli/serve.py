"""``mailsim serve`` and the development servers around it.

``serve`` runs the application in the foreground, as production wants it (under
systemd, a container, a supervisor): it logs to stderr and stops gracefully on
SIGTERM or SIGINT. ``--workers N`` runs N processes sharing the port
(SO_REUSEPORT), restarted if one dies.

``start``, ``stop``, ``restart`` and ``status`` manage a background ``serve``
for development (``run/serve.pid``, ``run/serve.log``); ``log`` runs a sink that
accepts every message into ``run/queue`` and logs a line for each
(``run/log.pid``, ``run/log.log``): point the ``[relay]`` at it to see what the
application sends.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click
from mailsim_runtime.config import Config

from mailsim.cli import _daemon as daemon
from mailsim.cli import main
from mailsim.cli._common import fail, load_project_config, project_option
from mailsim.cli._serving import Supervisor, run_server

log = logging.getLogger("mailsim.serve")

SINK_PORT = 8825  # the development sink's port (Lamson's log server's)

_log_level = click.option(
    "--log-level",
    type=click.Choice(daemon.LOG_LEVELS),
    default="info",
    show_default=True,
    help="The least important kind of log line shown.",
)
_host = click.option("--host", default=None, help="Listen on this address ([receiver] host).")
_port = click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Listen on this port."
)
_workers = click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT).",
)


def _address(config: Config, host: str | None, port: int | None) -> str:
    if config.receiver.socket is not None and host is None and port is None:
        return str(config.receiver.socket)
    return f"{host or config.receiver.host}:{config.receiver.port if port is None else port}"


def _overrides(host: str | None, port: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if host is not None:
        options["host"] = host
    if port is not None:
        options["port"] = port
    if host is not None or port is not None:
        options["socket_path"] = None  # a TCP address given replaces the socket
    return options


# serve ----------------------------------------------------------------------------


@main.command()
@project_option
@_host
@_port
@_workers
@_log_level
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds open transactions get to finish on shutdown.",
)
@click.option(
    "--pid-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the pid here once listening (removed on exit).",
)
def serve(
    project: Path | None,
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str,
    grace: float,
    pid_file: Path | None,
) -> None:
    """Run the application's mail server in the foreground (production).

    Mail is received as [receiver] says, stored durably before it is accepted,
    and handed to the handlers by [receiver] workers threads; outgoing mail is
    relayed as [relay] says. SIGTERM or SIGINT stops it gracefully.
    """
    config = load_project_config(project)
    daemon.setup_logging(log_level)
    overrides = _overrides(host, port)
    if workers == 1:

        def ready(receiver: object) -> None:
            log.info("mailsim serve listening on %s (pid %d)", receiver, os.getpid())
            if pid_file is not None:
                daemon.write_pid_file(pid_file)

        try:
            run_server(config, overrides, grace=grace, ready=ready)
        finally:
            if pid_file is not None:
                daemon.remove_pid_file(pid_file)
        return
    if config.receiver.socket is not None and "socket_path" not in overrides:
        fail("--workers needs a TCP receiver: processes cannot share a UNIX socket")
    if overrides.get("port", config.receiver.port) == 0:
        fail("--workers needs a fixed port: with port 0 each process would get its own")
    Supervisor(config, overrides, workers, log_level, grace, pid_file).run()


# start, stop, restart, status -------------------------------------------------------


def _start_background(config: Config, name: str, arguments: list[str], wait: float) -> int:
    """Start ``mailsim <arguments>`` as background server *name*; its pid once listening."""
    pid_file = daemon.pid_path(config, name)
    log_file = daemon.log_path(config, name)
    running = daemon.running_pid(pid_file)
    if running is not None:
        fail(f"{name} is already running (pid {running}); stop it first, or restart it")
    try:
        pid = daemon.spawn(
            [*arguments, "--project", str(config.root), "--pid-file", str(pid_file)],
            log=log_file,
            cwd=config.root,
        )
    except OSError as error:
        fail(str(error))
    try:
        listening = daemon.wait_ready(pid_file, pid, wait)
    except TimeoutError as error:
        daemon.terminate(pid, 10, force=True)
        fail(f"{name} did not start: {error}; see {log_file}")
    if not listening:
        fail(f"{name} did not start: {daemon.last_line(log_file)} (in {log_file})")
    return pid


def _stop_background(config: Config, name: str, timeout: float, force: bool) -> int | None:
    """Stop background server *name*; its pid, or None if it was not running."""
    pid_file = daemon.pid_path(config, name)
    pid = daemon.running_pid(pid_file)
    if pid is None:
        return None
    if not daemon.terminate(pid, timeout, force=force):
        fail(f"{name} (pid {pid}) did not stop within {timeout:g} s; try --force")
    pid_file.unlink(missing_ok=True)
    return pid


def _background_names(config: Config) -> list[str]:
    """Every background server with a pid file in ``run/``."""
    folder = config.root / "run"
    return sorted(p.stem for p in folder.glob("*.pid")) if folder.is_dir() else []


_wait = click.option(
    "--wait",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for it to listen.",
)


@main.command()
@project_option
@_host
@_port
@_workers
@_log_level
@_wait
def start(
    project: Path | None,
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str,
    wait: float,
) -> None:
    """Start `mailsim serve` in the background (development).

    Its pid goes to run/serve.pid and its log to run/serve.log.
    """
    config = load_project_config(project)
    arguments = ["serve", "--workers", str(workers), "--log-level", log_level]
    if host is not None:
        arguments += ["--host", host]
    if port is not None:
        arguments += ["--port", str(port)]
    pid = _start_background(config, "serve", arguments, wait)
    click.echo(
        f"mailsim serve running (pid {pid}) on {_address(config, host, port)}; "
        f"log in {daemon.log_path(config, 'serve')}"
    )


_stop_options = [
    click.option(
        "--timeout",
        type=click.FloatRange(0),
        default=60.0,
        show_default=True,
        help="Seconds to wait for a graceful stop.",
    ),
    click.option("--force", is_flag=True, help="SIGKILL what has not stopped after --timeout."),
]


@main.command()
@project_option
@click.option(
    "--all", "everything", is_flag=True, help="Stop every background server (serve, log)."
)
@_stop_options[0]
@_stop_options[1]
def stop(project: Path | None, everything: bool, timeout: float, force: bool) -> None:
    """Stop the background `mailsim serve` (SIGTERM: a graceful stop)."""
    config = load_project_config(project)
    names = _background_names(config) if everything else ["serve"]
    stopped = [(name, _stop_background(config, name, timeout, force)) for name in names]
    for name, pid in stopped:
        if pid is not None:
            click.echo(f"{name} stopped (pid {pid})")
    if not any(pid for _, pid in stopped):
        fail("nothing was running" if everything else "mailsim serve is not running")


@main.command()
@project_option
@_host
@_port
@_workers
@_log_level
@_wait
@_stop_options[0]
@_stop_options[1]
@click.pass_context
def restart(
    context: click.Context,
    project: Path | None,
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str,
    wait: float,
    timeout: float,
    force: bool,
) -> None:
    """Stop the background `mailsim serve` (if it runs) and start it again."""
    config = load_project_config(project)
    pid = _stop_background(config, "serve", timeout, force)
    if pid is not None:
        click.echo(f"serve stopped (pid {pid})")
    context.invoke(
        start,
        project=project,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        wait=wait,
    )


@main.command()
@project_option
def status(project: Path | None) -> None:
    """Say which background servers run (exit status 1 when `mailsim serve` does not)."""
    config = load_project_config(project)
    names = sorted({"serve", *_background_names(config)})
    serving = False
    for name in names:
        pid = daemon.running_pid(daemon.pid_path(config, name))
        if pid is not None:
            serving = serving or name == "serve"
            click.echo(f"{name}: running (pid {pid}); log in {daemon.log_path(config, name)}")
        elif name != "serve":
            click.echo(f"{name}: not running")
    if not serving:
        fail(f"mailsim serve is not running (no live pid in {daemon.pid_path(config, 'serve')})")


# log --------------------------------------------------------------------------------


@main.command("log")
@project_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen on this address.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Listen on this port (default: the [relay] port when that is an unprivileged "
    f"port of this machine, else {SINK_PORT}).",
)
@click.option("--foreground", is_flag=True, help="Stay in the foreground, logging to stderr.")
@_log_level
@_wait
@click.option(
    "--pid-file", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True
)
def log_command(
    project: Path | None,
    host: str,
    port: int | None,
    foreground: bool,
    log_level: str,
    wait: float,
    pid_file: Path | None,
) -> None:
    """Run a development sink: every message into run/queue, a log line for each.

    It accepts any message for anyone, so point the project's [relay] at it
    (host 127.0.0.1, port 8825) to see what the application sends. It runs in the
    background (run/log.pid, run/log.log) unless --foreground.
    """
    config = load_project_config(project)
    if port is None:
        port = _sink_port(config)
    if not foreground:
        arguments = ["log", "--foreground", "--host", host, "--port", str(port)]
        pid = _start_background(config, "log", [*arguments, "--log-level", log_level], wait)
        click.echo(
            f"mailsim log running (pid {pid}) on {host}:{port}; messages go to "
            f"{config.root / 'run' / 'queue'}, log in {daemon.log_path(config, 'log')}"
        )
        return
    daemon.setup_logging(log_level)
    _run_sink(config, host, port, pid_file)


def _sink_port(config: Config) -> int:
    """Where the sink listens unless told: where the project's relay sends, if it can."""
    relay = config.relay
    local = relay.host in ("127.0.0.1", "localhost", "::1")
    if relay.mode == "smarthost" and local and relay.port >= 1024:
        return relay.port
    return SINK_PORT  # e.g. a relay to the local MTA on port 25: not the sink's to take


def _run_sink(config: Config, host: str, port: int, pid_file: Path | None) -> None:
    from mailsim_runtime.inbound import encode_stored
    from mailsim_runtime.queue import MaildirQueue
    from mailsim_runtime.server import SinkMessage, SmtpSink

    queue = MaildirQueue(config.root / "run" / "queue")

    def keep(message: SinkMessage) -> None:
        key = queue.push(
            encode_stored(message.sender, message.recipients, message.peer, message.data)
        )
        subject = _subject(message.data)
        log.info(
            "%s from <%s> to %s: %r (%d bytes)",
            key,
            message.sender,
            ", ".join(f"<{r}>" for r in message.recipients),
            subject,
            len(message.data),
        )

    def ready(sink: SmtpSink) -> None:
        log.info("mailsim log listening on %s:%d; messages go to %s", host, sink.port, queue.path)
        if pid_file is not None:
            daemon.write_pid_file(pid_file)

    sink = SmtpSink(host, port, on_message=keep, keep=False, hostname=config.app.hostname)
    try:
        sink.serve_forever(grace=5, ready=ready)
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
    finally:
        if pid_file is not None:
            daemon.remove_pid_file(pid_file)


def _subject(data: bytes) -> str:
    """The Subject of a raw message, for a log line ("" when it has none)."""
    from email.parser import BytesHeaderParser
    from email.policy import default

    headers = BytesHeaderParser(policy=default).parsebytes(data[:65536], headersonly=True)
    return str(headers.get("Subject", ""))
