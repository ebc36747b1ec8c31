"""docs/getting-started.md, followed as a new user would, every command in it run.

The guide's blocks are taken in order and played in an empty folder:

- a ```sh block is run with ``bash`` (``set -e -o pipefail``), from the folder the
  previous block ended in, with this virtual environment's ``bin`` first on PATH and
  a ``HOME`` of its own; every command must succeed, or the block must end with the
  status of its ``<!-- exit: N -->`` marker;
- a ```text block right after it is what it prints: each line must be there, in order
  and with nothing between, except where a line holds only ``…`` (any lines, or none);
  ``…`` inside a line stands for any text. Pids, times, queue keys and sizes, and a live
  run's id may differ (:func:`normalise`);
- ``<!-- file: PATH -->`` writes the next block to PATH: the new files and the edit the
  guide asks for. A block replacing a file ``mailsim gen`` wrote may take out at most
  :data:`MAX_LINES_REPLACED` of its lines, so the guide's copy cannot drift from it;
- ``<!-- excerpt: PATH -->``: the block's lines are in PATH, in order (same ``…`` rules);
- ``<!-- not run: REASON -->`` leaves an sh block out (the install, an interactive mutt);
- ``<!-- poll -->`` runs a read-only block again until it prints what is shown (a reply
  takes a moment to arrive), up to :data:`POLL_SECONDS`;
- ``<!-- needs: PROGRAM -->`` leaves the block out when PROGRAM is not installed; the
  test then ends skipped (``./dev test`` installs mutt), after everything else passed.

Ports: the guide shows the generated ones (8823 for the server, 8825 for its relay and
``mailsim log``). So that parallel runs never collide, the test rewrites them to free
ports in the generated ``mailsim.toml`` as soon as ``mailsim gen`` has written it, and
in every command and every output shown after that.

Every server the guide starts is stopped by its own ``mailsim stop --all``; the test
checks that, and whatever is still running at the end (a failure half-way) is stopped
by pid: the pids the commands printed and those in ``run/*.pid``.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from mailsim.live.served import free_port

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"

SHOWN_PORTS = {"receiver": 8823, "relay": 8825}
BUDGET_SECONDS = 60.0  # the whole walk through the guide
POLL_SECONDS = 15.0
MAX_LINES_REPLACED = 2
GAP = "…"

MARKER = re.compile(r"<!-- (?P<key>[a-z][a-z ]*?)(?:: (?P<value>.*?))? -->")
KNOWN_MARKERS = {"file", "excerpt", "not run", "exit", "poll", "needs"}


# The guide, read ---------------------------------------------------------------------


@dataclass
class Block:
    """A fenced block of the guide, with the markers on the lines before it."""

    lang: str
    text: str
    line: int  # where its fence opens, for messages
    markers: dict[str, str] = field(default_factory=dict)
    output: Block | None = None  # for an sh block: the ```text block after it

    def where(self) -> str:
        return f"{GUIDE.name}:{self.line}"


def read_guide(text: str) -> list[Block]:
    """The guide's fenced blocks in order; a text block right after an sh block is its output."""
    blocks: list[Block] = []
    markers: dict[str, str] = {}
    after_sh = False  # only blank lines since an sh block closed
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        marker = MARKER.fullmatch(line.strip())
        if line.startswith("```"):
            start, lang, body = number, line[3:].strip(), []
            while number < len(lines) and lines[number] != "```":
                body.append(lines[number])
                number += 1
            assert number < len(lines), f"{GUIDE.name}:{start}: the block is never closed"
            number += 1
            block = Block(lang, "\n".join(body) + "\n", start, markers)
            if after_sh and lang == "text" and not markers:
                blocks[-1].output = block
                after_sh = False
            else:
                blocks.append(block)
                after_sh = lang == "sh"
            markers = {}
        elif marker is not None:
            key = marker.group("key")
            assert key in KNOWN_MARKERS, f"{GUIDE.name}:{number}: unknown marker {line.strip()!r}"
            markers[key] = marker.group("value") or ""
            after_sh = False
        elif line.strip():
            assert not markers, f"{GUIDE.name}:{number}: a marker must come right before a block"
            after_sh = False
    return blocks


# Outputs, compared -------------------------------------------------------------------

# What differs from one run to the next, made the same on both sides.
VARYING = [
    (re.compile(r"\(pid \d+\)"), "(pid N)"),
    (re.compile(r"\b\d+(?:\.\d+)? ?ms\b"), "T ms"),
    (re.compile(r"\bin \d+(?:\.\d+)?s\b"), "in Ts"),
    (re.compile(r"\b\d{9,}\.M\d+P\d+Q\d+T\d+\.\S+\s+\d+"), "KEY SIZE"),  # a queue's list
    (re.compile(r"\brun [0-9a-f]{6}$"), "run ID"),  # a live run's
]


def normalise(line: str) -> str:
    for pattern, replacement in VARYING:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _line_pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in shown.split(GAP)))


def lines_match(shown: list[str], actual: list[str]) -> bool:
    """Whether *actual* is *shown*, where a line of only ``…`` stands for any lines (or none)."""
    patterns = [None if line.strip() == GAP else _line_pattern(line) for line in shown]

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(patterns):
            return j == len(actual)
        pattern = patterns[i]
        if pattern is None:
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and pattern.fullmatch(actual[j]) is not None and match(i + 1, j + 1)

    return match(0, 0)


def _trimmed(text: str, *, squeeze: bool) -> list[str]:
    lines = [normalise(line) if squeeze else line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def output_matches(shown: str, actual: str) -> bool:
    return lines_match(_trimmed(shown, squeeze=True), _trimmed(actual, squeeze=True))


# Playing it --------------------------------------------------------------------------


@dataclass
class Walk:
    """The state of one walk through the guide: where we are, what was started."""

    root: Path
    ports: dict[str, int]
    environment: dict[str, str]
    deadline: float
    cwd: Path = field(init=False)
    pids: set[int] = field(default_factory=set)
    rewritten: set[Path] = field(default_factory=set)
    left_out: list[str] = field(default_factory=list)
    ran: list[tuple[Block, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cwd = self.root

    def ported(self, text: str) -> str:
        """*text* with the guide's ports replaced by this run's."""
        for name, shown in SHOWN_PORTS.items():
            text = re.sub(rf"\b{shown}\b", str(self.ports[name]), text)
        return text

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the guide took more than {BUDGET_SECONDS:g} s")
        return left

    def bash(self, block: Block) -> tuple[int, str]:
        """Run an sh block from the current folder; its status and what it printed."""
        cwd_file = self.root.parent / "guide-cwd"
        prologue = f'set -e -o pipefail\ntrap "pwd > {shlex.quote(str(cwd_file))}" EXIT\n'
        process = subprocess.Popen(
            ["bash", "-c", prologue + self.ported(block.text)],
            cwd=self.cwd,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that a hung block is stopped whole
        )
        try:
            printed, _ = process.communicate(timeout=self.remaining())
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            printed, _ = process.communicate()
            pytest.fail(f"{block.where()}: still running after the time allowed:\n{printed}")
        self.cwd = Path(cwd_file.read_text().strip())
        self.pids |= {int(pid) for pid in re.findall(r"\(pid (\d+)\)", printed)}
        return process.returncode, printed

    def run(self, block: Block) -> None:
        expected_status = int(block.markers.get("exit", "0"))
        poll_until = time.monotonic() + POLL_SECONDS if "poll" in block.markers else 0.0
        assert not poll_until or block.output is not None, f"{block.where()}: poll what?"
        while True:
            status, printed = self.bash(block)
            shown = self.ported(block.output.text) if block.output is not None else None
            matched = shown is None or output_matches(shown, printed)
            if (status == expected_status and matched) or time.monotonic() > poll_until:
                break
            time.sleep(0.1)  # polling: the deadline above bounds it
        assert status == expected_status, (
            f"{block.where()}: exit status {status}, expected {expected_status}\n"
            f"$ {block.text}{printed}"
        )
        assert matched, (
            f"{block.where()}: the output is not what the guide shows\n"
            f"$ {block.text}--- shown:\n{shown}--- printed:\n{printed}"
        )
        self.ran.append((block, printed))
        self.rewrite_ports()

    def rewrite_ports(self) -> None:
        """Give each new project's mailsim.toml this run's ports."""
        for toml in self.root.rglob("mailsim.toml"):
            if toml in self.rewritten:
                continue
            text = toml.read_text()
            for name, shown in SHOWN_PORTS.items():
                text, count = re.subn(
                    rf"^port = {shown}$", f"port = {self.ports[name]}", text, flags=re.M
                )
                assert count == 1, f"{toml}: expected one 'port = {shown}' ({name})"
            toml.write_text(text)
            self.rewritten.add(toml)

    def write(self, block: Block) -> None:
        path = self.cwd / block.markers["file"]
        assert path.resolve().is_relative_to(self.root), f"{block.where()}: {path} is outside"
        if path.exists():
            old, new = path.read_text().splitlines(), block.text.splitlines()
            replaced = sum(
                i2 - i1
                for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, old, new).get_opcodes()
                if tag in ("replace", "delete")
            )
            assert replaced <= MAX_LINES_REPLACED, (
                f"{block.where()}: the guide's {path.name} replaces {replaced} lines of the one "
                "`mailsim gen` wrote; bring the guide's copy up to date"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text)

    def check_excerpt(self, block: Block) -> None:
        path = self.cwd / block.markers["excerpt"]
        shown = [GAP, *_trimmed(block.text, squeeze=False), GAP]
        assert lines_match(shown, path.read_text().splitlines()), (
            f"{block.where()}: these lines are not in {path.name} as shown:\n{block.text}"
        )

    def play(self, blocks: list[Block]) -> None:
        for block in blocks:
            needs = block.markers.get("needs")
            if needs and shutil.which(needs) is None:
                self.left_out.append(f"{block.where()} (needs {needs})")
            elif "file" in block.markers:
                self.write(block)
            elif "excerpt" in block.markers:
                self.check_excerpt(block)
            elif block.lang == "sh" and "not run" not in block.markers:
                self.run(block)

    def printed_by(self, command: str) -> list[str]:
        return [printed for block, printed in self.ran if command in block.text]


# Servers, stopped --------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_mailsim(pid: int) -> bool:
    try:
        return b"mailsim" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _pid_files(root: Path) -> Iterator[int]:
    for pid_file in root.rglob("run/*.pid"):
        try:
            yield int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue


def stop_left_over(pids: set[int]) -> list[int]:
    """SIGTERM (then SIGKILL) each of *pids* still running a mailsim; those it had to stop."""
    running = [pid for pid in pids if _alive(pid) and _is_mailsim(pid)]
    for pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for them to exit, bounded by the deadline
    for pid in running:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return running


# The test ----------------------------------------------------------------------------


def test_the_guide_reads_as_intended() -> None:
    """The markers are few and where they belong; every sh block shows what it prints."""
    blocks = read_guide(GUIDE.read_text())
    shell = [b for b in blocks if b.lang == "sh"]
    not_run = [b for b in shell if "not run" in b.markers]
    assert len(shell) >= 20
    assert len(not_run) <= 3, [b.where() for b in not_run]
    for block in blocks:
        if "not run" in block.markers:
            assert block.lang == "sh" and block.markers["not run"], block.where()
        if "file" in block.markers or "excerpt" in block.markers:
            assert block.lang != "sh", block.where()
    silent = [b.where() for b in shell if b.output is None and "not run" not in b.markers]
    # A block may print nothing (sendmail, mutt, cd), but most show their output.
    assert len(silent) <= 4, silent


def test_the_getting_started_guide(tmp_path: Path) -> None:
    receiver, relay = free_port(), free_port()
    while relay == receiver:
        relay = free_port()
    home = tmp_path / "home"
    home.mkdir()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "MAILSIM_")) and key != "PYTHONPATH"
    }
    environment |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),  # mutt and friends read no one's own settings
        "LC_ALL": "C.UTF-8",
        "COLUMNS": "80",
    }
    work = tmp_path / "work"
    work.mkdir()
    walk = Walk(
        work,
        {"receiver": receiver, "relay": relay},
        environment,
        time.monotonic() + BUDGET_SECONDS,
    )
    try:
        walk.play(read_guide(GUIDE.read_text()))
        left = [pid for pid in walk.pids | set(_pid_files(work)) if _alive(pid)]
        assert not left, f"the guide leaves servers running: pids {left}"
    finally:
        stop_left_over(walk.pids | set(_pid_files(work)))

    # Beyond what the guide shows: the key results, looked at directly.
    [live] = walk.printed_by("mailsim run --live")
    assert re.search(r"scenarios: [1-9]\d* passed, 0 failed, 0 skipped, .* live server", live)
    project = next(toml.parent for toml in walk.rewritten)
    queue = project / "run" / "queue"
    subjects = [
        line.removeprefix("Subject: ")
        for message in sorted((*queue.glob("new/*"), *queue.glob("cur/*")))
        for line in message.read_text().splitlines()
        if line.startswith("Subject: ")
    ]
    wanted = ["Welcome to the echo service", "Re: Testing"]
    if not walk.left_out:
        wanted.append("Re: Hello from mutt")
    assert sorted(subjects) == sorted(wanted), subjects
    if walk.left_out:
        pytest.skip(
            "all of the guide ran but the blocks needing programs not installed here "
            f"({', '.join(walk.left_out)}); ./dev test installs them"
        )
