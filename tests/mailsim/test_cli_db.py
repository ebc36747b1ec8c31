"""``mailsim db upgrade`` and ``mailsim db current`` on a project's database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner, Result
from mailsim_runtime import db

from mailsim.cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _project(folder: Path, extra: str = "") -> Path:
    (folder / "mailsim.toml").write_text(
        '[app]\nhandlers = ["app.handlers.x"]\n'
        '[database]\nurl = "sqlite:///run/state.sqlite3"\n' + extra
    )
    return folder


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_the_tables_in_the_project_folder(tmp_path: Path) -> None:
    project = _project(tmp_path)
    result = run("db", "upgrade", "--project", str(project))
    assert result.exit_code == 0, result.output
    database = project / "run" / "state.sqlite3"  # run/ made; relative to the project
    assert database.is_file()
    url = f"sqlite:///{database}"
    assert db.current_revision(url) == db.head_revision()
    assert f"at revision {db.head_revision()}" in result.stdout
    assert {"mailsim_states", "mailsim_spam_words", "mailsim_confirmations"} <= _tables(url)
    again = run("db", "upgrade", "--project", str(project))  # a no-op the second time
    assert again.exit_code == 0
    assert again.stdout == result.stdout


def test_current_before_and_after(tmp_path: Path) -> None:
    project = _project(tmp_path)
    before = run("db", "current", "--project", str(project))
    assert before.exit_code == 1
    assert "no database yet" in before.stdout
    assert "mailsim db upgrade" in before.stderr
    assert not (project / "run").exists()  # asking made nothing
    assert run("db", "upgrade", "--project", str(project)).exit_code == 0
    after = run("db", "current", "--project", str(project))
    assert after.exit_code == 0
    assert f"at revision {db.head_revision()} (the newest)" in after.stdout


def test_upgrade_migrates_a_separate_spam_database(tmp_path: Path) -> None:
    project = _project(tmp_path, '[spam]\ndatabase = "sqlite:///run/spam.sqlite3"\n')
    result = run("db", "upgrade", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    assert "mailsim_spam_words" in _tables(f"sqlite:///{project / 'run' / 'spam.sqlite3'}")


def test_upgrade_names_an_unreachable_database(tmp_path: Path) -> None:
    (tmp_path / "mailsim.toml").write_text(
        '[app]\nhandlers = ["app.handlers.x"]\n'
        '[database]\nurl = "postgresql+psycopg://mailsim:secret@127.0.0.1:1/nowhere"\n'
    )
    result = run("db", "upgrade", "--project", str(tmp_path))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "cannot upgrade postgresql+psycopg://mailsim:***@127.0.0.1:1/nowhere" in line
    assert "secret" not in line


def test_upgrade_needs_a_project(tmp_path: Path) -> None:
    result = run("db", "upgrade", "--project", str(tmp_path / "nothing-here"))
    assert result.exit_code == 1
    assert "no mailsim.toml" in result.stderr
