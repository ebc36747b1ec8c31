"""The HTML report: what it holds, and that a real browser shows it (headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from mailsim.report import ScenarioRecord, StepRecord, render_report, sequence_svg, write_report
from mailsim.steps.runner import run_features
from mailsim.world import World
from mailsim.world.transcript import MessageEvent, Transcript

ROOT = Path(__file__).resolve().parents[2]
ECHO = ROOT / "features" / "apps" / "echo"

FEATURE = """\
Feature: Echoes
  Background:
    Given the application in "{echo}"

  Scenario: An answer arrives
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping <b>&"
    Then "alice@example.org" receives a mail from "echo@echo.example.com" with subject "Re: Ping"
    When "alice@example.org" sends a mail to "join@echo.example.com"
    Then "alice@example.org" receives a mail with subject "Welcome"

  Scenario: The wrong answer is expected
    When "bob@example.org" sends a mail to "echo@echo.example.com" with subject "Pong"
    Then "bob@example.org" receives a mail with subject "Re: Ping"

  Scenario: A refusal
    When "carol@example.org" sends a mail to "nobody@echo.example.com"
    Then "carol@example.org" receives a mail from "MAILER-DAEMON@.*"
"""


def make_report(tmp_path: Path) -> Path:
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "steps" / "mailsim_steps.py").write_text("from mailsim.steps import *\n")
    (features / "echo.feature").write_text(FEATURE.format(echo=ECHO))
    result = run_features([features])
    assert [r.status for r in result.records] == ["passed", "failed", "passed"]
    return write_report(tmp_path / "report.html", result.records, elapsed=result.elapsed)


def test_the_report_holds_steps_diagrams_messages_and_transitions(tmp_path: Path) -> None:
    html = make_report(tmp_path).read_text(encoding="utf-8")
    assert "3 scenarios: 2 passed, 1 failed, 0 skipped · world" in html
    assert '<section class="scenario failed" id="s2" data-status="failed">' in html
    assert "bob@example.org: expected a mail with subject containing &#x27;Re: Ping&#x27;" in html
    # The subject is escaped everywhere, never markup.
    assert "Ping <b>&" not in html
    assert "Ping &lt;b&gt;&amp;" in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="sequence"') == 3
    assert '<a href="#s1-m1" class="message delivered">' in html
    assert '<details class="message delivered" id="s1-m4">' in html
    assert "Auto-Submitted: auto-replied" in html  # a raw source
    assert "<td>echo.membership</td><td>alice@example.org</td><td>START → MEMBER</td>" in html
    assert '<a href="#s3-m1" class="message undelivered">' in html  # refused at RCPT
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_a_scenario_without_mail_and_a_live_note(tmp_path: Path) -> None:
    transcript = Transcript(World(ECHO).clock.now())
    records = [
        ScenarioRecord("F", "Nothing", "f.feature:1", steps=[StepRecord("Then", "x", "passed")]),
        ScenarioRecord(
            "F",
            "Live",
            "f.feature:9",
            mode="live",
            status="skipped",
            reason="moving the clock is not possible against a live server",
            transcript=transcript,
            state_note="state transitions are not observable live (no --state-url)",
        ),
    ]
    moment = transcript.start + timedelta(days=1, seconds=5)
    transcript.add(
        MessageEvent(
            moment, "a@b.c", "x@app", "a@b.c", "Hi", "<1@b.c>", "", "a@b.c", "app", "delivered"
        )
    )
    html = render_report(records)
    assert "No mail was sent in this scenario." in html
    assert "state transitions are not observable live (no --state-url)" in html
    assert "#1 +1d 00:00:05 a@b.c → x@app: Hi" in html
    assert "The message's bytes were not kept." in html
    assert '<header class="failed">' in html  # not every scenario passed
    assert "skipped · live, world" in html


def test_the_diagram_loops_a_message_to_oneself() -> None:
    transcript = Transcript(World(ECHO).clock.now())
    transcript.add(
        MessageEvent(
            transcript.start, "a@b.c", "a@b.c", "", "", "", "", "a@b.c", "a@b.c", "delivered"
        )
    )
    svg = sequence_svg(transcript, "s9")
    assert '<path d="M' in svg
    assert "#1 (no subject)" in svg


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (./dev installs Debian's chromium)")
def test_a_real_browser_shows_the_report(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    # The browser follows a link to a message: its source is opened by the page.
    shown = chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#s2-m2")
    assert shown.returncode == 0, shown.stderr
    dom = shown.stdout
    for name in ("An answer arrives", "The wrong answer is expected", "A refusal"):
        assert name in dom
    assert dom.count("<svg") >= 3
    assert dom.count('class="message delivered"') >= 6  # diagram arrows and message lists
    assert '<details class="message delivered" id="s2-m2" open="">' in dom
    assert '<details class="message delivered" id="s2-m1">' in dom  # the others stay shut
    picture = tmp_path / "report.png"
    drawn = chromium(
        tmp_path, f"--screenshot={picture}", "--window-size=1200,2000", report.as_uri()
    )
    assert drawn.returncode == 0, drawn.stderr
    assert picture.stat().st_size > 20_000  # a page with text and drawings, not a blank one


def test_the_report_as_a_file(tmp_path: Path) -> None:
    path = write_report(tmp_path / "deep" / "r.html", [], title="Nothing <here>")
    text = path.read_text(encoding="utf-8")
    assert "<title>Nothing &lt;here&gt;</title>" in text
    assert "no scenario ran" in text
    assert textwrap.dedent(text).startswith("<!DOCTYPE html>")
