"""Helpers the receiver tests share (no tests here): an app that records what it is
delivered, a receiver on a free loopback port, and a raw SMTP client for what
smtplib will not send (bare line ends, pipelining, LMTP's replies)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from helpers.receiving import (
    DOMAIN,
    Raw,
    Recorder,
    free_port,
    message,
    receiver,
    recording_app,
    send_one,
    wait_until,
)
from mailsim_runtime.config import LimitsSection


def limits(**changes: Any) -> LimitsSection:
    return LimitsSection(**changes)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key (the openssl command line makes them)."""
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={DOMAIN}", "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return certificate, key


# The shared helpers are re-exported: the tests import everything from here.
__all__ = [
    "DOMAIN",
    "Raw",
    "Recorder",
    "free_port",
    "limits",
    "message",
    "receiver",
    "recording_app",
    "self_signed_certificate",
    "send_one",
    "wait_until",
]
