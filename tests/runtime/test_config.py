from datetime import timedelta
from pathlib import Path

import pytest
from mailsim_runtime.config import ConfigError, load_config, parse_duration

GOOD = """\
[app]
hostname = "lists.example.com"
handlers = ["app.handlers.mailinglist"]
templates = "app/templates"

[app.router_defaults]
host = 'lists\\.example\\.com'

[database]
url = "sqlite:///run/state.sqlite3"

[relay]
host = "smtp.example.net"
port = 587
starttls = true
retry_first = "10m"
lifetime = "4d"
auto_reply_limit = 1
auto_reply_window = "7d"

[limits]
recipients = 50

[queues]
spam = "run/spam"

[spam]
enabled = true
database = "sqlite:///run/spam.sqlite3"

[settings]
list_owner = "owner@example.com"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailsim.toml"
    path.write_text(text)
    return path


def test_a_good_file_is_read_into_typed_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.app.handlers == ["app.handlers.mailinglist"]
    assert config.app.templates == tmp_path / "app" / "templates"
    assert config.app.router_defaults == {"host": r"lists\.example\.com"}
    assert config.database.url == f"sqlite:///{tmp_path / 'run' / 'state.sqlite3'}"
    assert (config.relay.port, config.relay.starttls) == (587, True)
    assert config.relay.retry_first == timedelta(minutes=10)
    assert config.relay.lifetime == timedelta(days=4)
    assert (config.relay.auto_reply_limit, config.relay.auto_reply_window) == (1, timedelta(days=7))
    assert config.relay.queue == tmp_path / "run" / "outbox"  # defaults anchored too
    assert config.limits.recipients == 50
    assert config.limits.message_size == 10_240_000
    assert config.queues == {"spam": tmp_path / "run" / "spam"}
    assert config.spam.database == f"sqlite:///{tmp_path / 'run' / 'spam.sqlite3'}"
    assert config.settings == {"list_owner": "owner@example.com"}
    assert config.domains == ["lists.example.com"]
    assert load_config(tmp_path) == config  # a folder means its mailsim.toml


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[app]\nhandlers = ["a"]\n\n[relay]\nport = "x"\n',
            r"mailsim.toml:5: \[relay\] port: expected a whole number ≥ 0, got 'x'",
        ),
        (
            '[app]\nhandlers = ["a"]\nhostnme = "x"\n',
            r"mailsim.toml:3: \[app\] hostnme: unknown setting; expected one of: .*hostname",
        ),
        (
            '[app]\nhandlers = ["a"]\n[relay]\nmode = "pigeon"\n',
            r"mailsim.toml:4: \[relay\] mode: expected one of 'smarthost', 'mx', got 'pigeon'",
        ),
        (
            '[app]\nhandlers = ["a"]\n[relay]\nlifetime = "soon"\n',
            r"mailsim.toml:4: \[relay\] lifetime: expected a duration",
        ),
        (
            '[app]\nhandlers = ["a"]\n[receivr]\nport = 1\n',
            r"mailsim.toml:3: \[receivr\]: unknown table; expected one of: \[app\]",
        ),
        ('[app]\nhandlers = "a"\n', r"mailsim.toml:2: \[app\] handlers: expected a list"),
        ('[app]\nhostname = "x"\n', r"mailsim.toml:1: \[app\] handlers: no handler modules"),
        ("[app]\nhandlers = [\n", r"mailsim.toml:\d+: not valid TOML"),
    ],
)
def test_mistakes_name_the_file_line_key_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mailsim\.toml: no such file"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("5m", 300), ("4h", 14400), ("5d", 432000), (90, 90), ("1.5h", 5400)],
)
def test_durations(value: str | int, seconds: int) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


def test_relay_settings_reach_the_built_app(tmp_path: Path) -> None:
    from mailsim_runtime.project import load_project
    from mailsim_runtime.transport import FunctionTransport

    write(
        tmp_path,
        '[app]\nhostname = "fsm.example.com"\nhandlers = ["sample_handlers.fsm"]\n\n'
        '[relay]\nauto_reply_limit = 3\nauto_reply_window = "2h"\nretry_first = "1m"\n',
    )
    app = load_project(tmp_path, transport=FunctionTransport(), in_memory=True)
    assert (app.relay.reply_limit.count, app.relay.reply_limit.window) == (3, timedelta(hours=2))
    assert app.relay.retry.first == timedelta(minutes=1)
