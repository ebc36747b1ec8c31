"""What the commands share: finding the project, and failing with one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click
from mailsim_runtime.config import Config, ConfigError, load_config
from mailsim_runtime.project import find_project

project_option = click.option(
    "--project",
    "-p",
    type=click.Path(file_okay=True, dir_okay=True, path_type=Path),
    default=None,
    help="The project folder or its mailsim.toml (default: found from the current folder).",
)


def fail(message: str) -> NoReturn:
    """Stop the command: one line on stderr naming what went wrong, exit status 1."""
    raise click.ClickException(message)


def load_project_config(project: Path | None) -> Config:
    """The project's configuration, or a one-line failure saying why not."""
    start = project if project is not None else Path.cwd()
    folder = start if start.is_file() else find_project(start)
    if folder is None:
        fail(f"no mailsim.toml in {start} or any folder above it (mailsim gen makes a project)")
    try:
        return load_config(folder)
    except ConfigError as error:
        fail(str(error))
