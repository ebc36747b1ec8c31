"""The ``mailsim`` command.

Each module of this package adds its commands to :data:`main` by importing it
and decorating with ``@main.command()``; the package loads every module it
holds, so adding a command never means editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from mailsim import __version__

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailsim")
def main() -> None:
    """mailsim: write email applications test-first.

    Build a mail application in the Lamson tradition, spec its conversations in a
    simulated mail world, and run it in production with `mailsim serve`.
    """


def _load_commands() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_load_commands()
