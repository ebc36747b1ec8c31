"""The ``mailsim`` command."""

from __future__ import annotations

import click

from mailsim import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailsim")
def main() -> None:
    """mailsim: write email applications test-first."""
