"""``mailsim gen``: a new project, whose own tests pass as generated."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mailsim_runtime.app import App
from mailsim_runtime.config import load_config
from mailsim_runtime.project import make_importable

from mailsim.cli import main
from mailsim.scaffold import default_domain, project_files

EXPECTED = {
    "mailsim.toml",
    "pyproject.toml",
    "README.md",
    "muttrc",
    ".gitignore",
    "app/__init__.py",
    "app/handlers/__init__.py",
    "app/handlers/sample.py",
    "app/templates/welcome.txt",
    "app/templates/echo.txt",
    "app/templates/goodbye.txt",
    "tests/test_sample.py",
    "features/sample.feature",
    "features/environment.py",
    "features/steps/steps.py",
}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    """The generated project's tests, run as its author would: pytest, from its folder."""
    return _python(folder, "-m", "pytest", "-q", "-p", "no:cacheprovider")


def _python(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in *folder*, in a process of its own (the project's cwd)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Undo what importing a generated project's ``app`` package does to this process."""
    path, modules = list(sys.path), dict(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - set(modules):
        del sys.modules[name]
    sys.modules.update(modules)


@pytest.mark.usefixtures("isolated_imports")
def test_gen_writes_a_project(tmp_path: Path) -> None:
    target = tmp_path / "My Shop"
    result = run("gen", str(target))
    assert result.exit_code == 0, result.output
    assert _files(target) == EXPECTED
    config = load_config(target)
    assert config.app.hostname == "my-shop.example.com"
    assert config.app.handlers == ["app.handlers.sample"]
    assert "sqlite:///" in config.database.url
    assert config.database.url.endswith("run/my-shop.sqlite3")
    assert (config.receiver.port, config.relay.port) == (8823, 8825)  # relay: `mailsim log`
    for path in target.rglob("*.py"):
        py_compile.compile(str(path), doraise=True)
    assert (target / "features/steps/steps.py").read_text() == (
        "from mailsim.steps import *  # noqa: F401,F403\n"
    )
    muttrc = (target / "muttrc").read_text()
    assert 'set sendmail = "mailsim sendmail -oem -oi"' in muttrc
    assert 'set spoolfile = "./run/queue"' in muttrc  # where `mailsim log` keeps replies
    assert "run/" in (target / ".gitignore").read_text().splitlines()
    make_importable(config)
    app = App(
        config.app.handlers,
        hostname=config.app.hostname,
        domains=config.domains,
        router_defaults=config.app.router_defaults,
    )
    assert app.accepts("echo@my-shop.example.com")
    assert app.accepts("echo-stop@my-shop.example.com")
    assert not app.accepts("echo@other.example.com")


def test_gen_takes_a_domain(tmp_path: Path) -> None:
    result = run("gen", str(tmp_path / "shop"), "--domain", "Mail.Shop.Example")
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / "shop").app.hostname == "mail.shop.example"
    feature = (tmp_path / "shop" / "features" / "sample.feature").read_text()
    assert '"echo@mail.shop.example"' in feature
    assert "__" not in feature  # every placeholder filled in


@pytest.mark.parametrize("domain", ["not a domain", "-bad.example", "a..b", "x" * 64 + ".com"])
def test_gen_refuses_a_bad_domain(tmp_path: Path, domain: str) -> None:
    result = run("gen", str(tmp_path / "shop"), "--domain", domain)
    assert result.exit_code == 1
    assert "is not a domain name" in result.stderr
    assert not (tmp_path / "shop").exists()


def test_gen_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = run("gen", str(target))
    assert result.exit_code == 1
    assert f"{target}: the folder is not empty" in result.stderr
    assert _files(target) == {"notes.txt"}
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    result = run("gen", str(a_file))
    assert result.exit_code == 1
    assert str(a_file) in result.stderr
    assert a_file.read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("gen", str(empty)).exit_code == 0


def test_people_in_the_tests_never_live_at_the_app_domain() -> None:
    files = project_files("shop", "example.org")
    test_text = files[next(p for p in files if p.name == "test_sample.py")]
    assert 'ALICE = "alice@example.net"' in test_text
    assert default_domain("!!!") == "example.com"


@pytest.mark.parametrize("domain", [None, "example.org"])
def test_the_generated_tests_pass(tmp_path: Path, domain: str | None) -> None:
    target = tmp_path / "project"
    args = ["gen", str(target)] + (["--domain", domain] if domain else [])
    assert run(*args).exit_code == 0
    result = _pytest(target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_the_generated_tests_catch_a_broken_handler(tmp_path: Path) -> None:
    target = tmp_path / "project"
    assert run("gen", str(target)).exit_code == 0
    handler = target / "app" / "handlers" / "sample.py"
    text = handler.read_text()
    broken = text.replace("    return ECHOING\n\n\n@route", "    return START\n\n\n@route")
    assert broken != text
    handler.write_text(broken)
    result = _pytest(target)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ECHOING" in result.stdout


def _mailsim(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``mailsim`` command, run in *folder* as its own process."""
    return _python(folder, "-c", "from mailsim.cli import main; main()", *args)


def test_the_generated_features_pass_and_can_fail(tmp_path: Path) -> None:
    """``mailsim run`` runs them, and so does plain behave (features/environment.py)."""
    target = tmp_path / "project"
    assert run("gen", str(target)).exit_code == 0
    result = _mailsim(target, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 scenarios: 6 passed, 0 failed" in result.stdout
    behave = _python(target, "-m", "behave", "--no-color", "--format", "progress")
    assert behave.returncode == 0, behave.stdout + behave.stderr
    assert "6 scenarios passed, 0 failed" in behave.stdout
    template = target / "app" / "templates" / "welcome.txt"
    template.write_text(template.read_text().replace("Thank you", "Thnak you"))
    result = _mailsim(target, "run")
    assert result.returncode == 1
    assert "6 scenarios: 5 passed, 1 failed" in result.stdout
    assert "Thnak" in result.stdout
