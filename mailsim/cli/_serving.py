"""How ``mailsim serve`` runs: the app and its receiver in this process, or N
processes sharing the port, supervised."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import click
from mailsim_runtime.config import Config, ConfigError

from mailsim.cli import _daemon as daemon
from mailsim.cli._common import fail

__all__ = ["Supervisor", "run_server"]

log = logging.getLogger("mailsim.serve")


def run_server(
    config: Config,
    overrides: dict[str, Any],
    *,
    grace: float,
    ready: Any = None,
) -> None:
    """Build the app and serve it until SIGTERM/SIGINT; raises ClickException on failure."""
    from mailsim_runtime.project import build_app, transport_from_config
    from mailsim_runtime.relay import RelayRunner
    from mailsim_runtime.server import Receiver

    # The defaults put the database, queues and logs there.
    (config.root / "run").mkdir(exist_ok=True)
    try:
        app = build_app(config, transport=transport_from_config(config))
    except ConfigError as error:
        fail(str(error))
    except ImportError as error:
        fail(f"cannot load the handlers of {config.path}: {error}")
    except Exception as error:  # the database, a setup hook: anything stops the start
        log.debug("building the application failed", exc_info=True)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fail(f"cannot start the application of {config.path}: {type(error).__name__}: {reason}")
    try:
        receiver = Receiver.from_config(app, config, **overrides)
    except (OSError, ValueError) as error:  # a certificate that cannot be read, say
        fail(f"{config.path}: [receiver]: {error}")
    runner = RelayRunner(app.relay, threads=4).start()
    try:
        receiver.serve_forever(grace, ready=ready)
    except OSError as error:
        fail(f"cannot listen on {receiver.address}: {error.strerror or error}")
    finally:
        runner.stop()


def _worker_process(
    config_path: str, overrides: dict[str, Any], log_level: str, grace: float, ready: Connection
) -> None:
    """One of ``serve --workers N``'s processes (started by multiprocessing)."""
    from mailsim_runtime.config import load_config

    daemon.setup_logging(log_level)
    try:
        run_server(
            load_config(config_path),
            {**overrides, "reuse_port": True},
            grace=grace,
            ready=lambda receiver: ready.send(os.getpid()),
        )
    except click.ClickException as error:
        log.error("%s", error.format_message())
        sys.exit(1)


class _Worker:
    """One server process of ``serve --workers N``, and whether it said it listens."""

    def __init__(self, process: Any, ready: Connection) -> None:
        self.process = process
        self.ready_pipe = ready
        self.ready = False


class Supervisor:
    """Runs N server processes; restarts one that dies after it started listening;
    stops them all on SIGTERM or SIGINT. One failing to start stops everything."""

    def __init__(
        self,
        config: Config,
        overrides: dict[str, Any],
        workers: int,
        log_level: str,
        grace: float,
        pid_file: Path | None,
    ) -> None:
        self.arguments = (str(config.path), overrides, log_level, grace)
        self.workers = workers
        self.pid_file = pid_file
        self.context = multiprocessing.get_context("spawn")
        self.running: dict[int, _Worker] = {}
        self.stopping = False
        self.announced = False

    def launch(self, number: int) -> None:
        receiving, sending = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_process, args=(*self.arguments, sending), name=f"mailsim-serve-{number}"
        )
        process.start()
        sending.close()  # only the child's end stays open: its exit closes the pipe
        self.running[number] = _Worker(process, receiving)

    def stop_all(self, signal_number: int = 0, frame: object = None) -> None:
        self.stopping = True
        for worker in self.running.values():
            if worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop_all)
        signal.signal(signal.SIGINT, self.stop_all)
        for number in range(self.workers):
            self.launch(number)
        try:
            while self.running:
                handles: list[Any] = [w.process.sentinel for w in self.running.values()]
                handles += [w.ready_pipe for w in self.running.values() if not w.ready]
                for handle in wait(handles):
                    for number, worker in list(self.running.items()):
                        if handle is worker.ready_pipe and not worker.ready:
                            self._listening(worker)
                        elif handle == worker.process.sentinel:
                            self._ended(number, worker)
        finally:
            if self.pid_file is not None:
                daemon.remove_pid_file(self.pid_file)

    def _listening(self, worker: _Worker) -> None:
        try:
            worker.ready_pipe.recv()
        except EOFError:
            return  # it exited before it listened: its sentinel says so
        worker.ready = True
        if not self.announced and all(w.ready for w in self.running.values()):
            self.announced = True
            log.info("all %d server processes listening", self.workers)
            if self.pid_file is not None:
                daemon.write_pid_file(self.pid_file)

    def _ended(self, number: int, worker: _Worker) -> None:
        worker.process.join()
        worker.ready_pipe.close()
        del self.running[number]
        if self.stopping:
            return
        if not worker.ready:
            self.stop_all()
            for other in self.running.values():
                other.process.join()
            self.running.clear()
            fail(
                f"server process {number} failed to start "
                f"(exit status {worker.process.exitcode}); see its log above"
            )
        log.error(
            "server process %d ended (exit status %s); starting another",
            number,
            worker.process.exitcode,
        )
        self.launch(number)
