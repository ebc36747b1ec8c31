"""``mailsim spam``: train the project's SpamBayes filter and ask it about a message.

The filter's counts live in ``[spam] database`` (else ``[database] url``), shared by
every process of the project; ``[spam] spam_cutoff`` and ``ham_cutoff`` decide the
classification. The tables come from ``mailsim db upgrade``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa
from mailsim_runtime.config import Config
from mailsim_runtime.db import SchemaMissingError
from mailsim_runtime.spam import SpamFilter

from mailsim.cli import main
from mailsim.cli._common import fail, load_project_config, project_option
from mailsim.cli.db import shown, spam_database_url


def _open_filter(config: Config) -> SpamFilter:
    url = spam_database_url(config)
    try:
        return SpamFilter(
            url, spam_cutoff=config.spam.spam_cutoff, ham_cutoff=config.spam.ham_cutoff
        )
    except SchemaMissingError as error:
        fail(str(error))
    except (sa.exc.SQLAlchemyError, ImportError, ValueError) as error:
        fail(f"cannot open the spam filter's database {shown(url)}: {error}")


@main.group()
def spam() -> None:
    """Train the spam filter, or score a message with it.

    \b
    Examples:
      mailsim spam train --ham corpus/ham --spam corpus/spam.mbox
      mailsim spam score suspicious.eml
    """


@spam.command()
@click.option(
    "--ham",
    "ham",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FOLDER",
    help="A Maildir, mbox file or folder of .eml files of good mail (repeatable).",
)
@click.option(
    "--spam",
    "spam_",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FOLDER",
    help="A Maildir, mbox file or folder of .eml files of spam (repeatable).",
)
@project_option
def train(ham: tuple[Path, ...], spam_: tuple[Path, ...], project: Path | None) -> None:
    """Teach the filter what good mail and spam look like.

    Each folder is trained in one transaction; the counts add to what the filter
    knew before, so train on each message once.
    """
    if not ham and not spam_:
        fail("nothing to train on: give --ham FOLDER and/or --spam FOLDER")
    for folder in (*ham, *spam_):
        if not folder.exists():
            fail(f"{folder}: no such file or folder")
    config = load_project_config(project)
    spam_filter = _open_filter(config)
    try:
        for folder, is_spam in [*((f, False) for f in ham), *((f, True) for f in spam_)]:
            kind = "spam" if is_spam else "ham"
            try:
                count = spam_filter.train_folder(folder, is_spam=is_spam)
            except (OSError, ValueError) as error:
                fail(f"{folder}: {error}")
            click.echo(f"trained on {count} {kind} messages from {folder}")
        nham, nspam = spam_filter.counts
    finally:
        spam_filter.close()
    click.echo(f"the filter now knows {nham} ham and {nspam} spam messages")


@spam.command()
@click.argument("message_file", metavar="MESSAGE_FILE", type=click.Path(path_type=Path))
@click.option("--evidence", is_flag=True, help="Also list the clues behind the score.")
@project_option
def score(message_file: Path, evidence: bool, project: Path | None) -> None:
    """Print the chance that a message is spam (0 to 1) and its classification.

    MESSAGE_FILE is one message as it would arrive (a .eml file); - reads stdin.
    The classification is spam, ham or unsure, by the project's cutoffs.
    """
    if str(message_file) == "-":
        data = sys.stdin.buffer.read()
    elif message_file.is_file():
        data = message_file.read_bytes()
    else:
        fail(f"{message_file}: no such file")
    config = load_project_config(project)
    spam_filter = _open_filter(config)
    try:
        nham, nspam = spam_filter.counts
        value = spam_filter.score(data)
        kind = spam_filter.classify(data)
        clues = spam_filter.evidence(data) if evidence else []
    finally:
        spam_filter.close()
    click.echo(f"{value:.3f} {kind}")
    for token, probability in clues:
        click.echo(f"  {probability:.3f}  {token}")
    if not nham or not nspam:
        click.echo(
            f"note: the filter is trained on {nham} ham and {nspam} spam messages; "
            "train it on both (mailsim spam train) before trusting its scores",
            err=True,
        )
