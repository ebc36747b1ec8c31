"""``mailsim routes``: the routing table, or where an address would go."""

from __future__ import annotations

from pathlib import Path

import click
from mailsim_runtime.app import App
from mailsim_runtime.project import make_importable

from mailsim.cli import main
from mailsim.cli._common import fail, load_project_config, project_option


@main.command()
@project_option
@click.option(
    "--test", "address", metavar="ADDRESS", help="Tell which handlers ADDRESS would reach."
)
def routes(project: Path | None, address: str | None) -> None:
    """Print the routing table, or (with --test) what an address would reach."""
    config = load_project_config(project)
    make_importable(config)
    try:
        app = App(
            config.app.handlers,
            hostname=config.app.hostname,
            domains=config.domains,
            router_defaults=config.app.router_defaults,
        )
    except ImportError as error:
        fail(f"cannot load the handlers of {config.path}: {error}")
    if address is None:
        click.echo(app.router.dump() or "(no routes)")
        return
    click.echo(app.router.explain(address))
    if not app.accepts(address):
        click.echo(f"{address}: would be refused at RCPT (550 5.1.1)")
        raise SystemExit(1)
