"""``mailsim gen``: start a new project from mailsim's template."""

from __future__ import annotations

from pathlib import Path

import click

from mailsim.cli import main
from mailsim.cli._common import fail
from mailsim.scaffold import ScaffoldError, write_project


@main.command()
@click.argument("name", type=click.Path(path_type=Path))
@click.option(
    "--domain",
    default=None,
    help="The application's mail domain (default: NAME.example.com).",
)
def gen(name: Path, domain: str | None) -> None:
    """Make a new project in the folder NAME: a sample handler, its templates,
    tests, features, settings and a muttrc.

    NAME must be new or empty: nothing is overwritten. The tests pass as
    generated; run them with pytest from inside the new folder.

    \b
    Example:
      mailsim gen myapp --domain myapp.example.com
      cd myapp && pytest
    """
    try:
        written = write_project(name, domain=domain)
    except ScaffoldError as error:
        fail(str(error))
    except OSError as error:
        fail(f"{error.filename or name}: {error.strerror or error}")
    for path in written:
        click.echo(f"  wrote {path}")
    click.echo(f"made the project {name}; next: cd {name} && pytest")
