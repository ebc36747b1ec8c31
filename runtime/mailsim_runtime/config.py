"""``mailsim.toml`` → typed settings.

Each table of the file is a dataclass below; the loader checks every key and value
against the dataclass and reports the first problem as
``mailsim.toml:12: [relay] port: expected an integer from 1 to 65535, got "x"``.
Relative paths are resolved against the file's folder.

A minimal file::

    [app]
    hostname = "lists.example.com"
    handlers = ["app.handlers.mailinglist"]
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "AppSection",
    "Config",
    "ConfigError",
    "DatabaseSection",
    "LimitsSection",
    "ReceiverSection",
    "RelaySection",
    "SpamSection",
    "load_config",
    "parse_duration",
]

CONFIG_FILE = "mailsim.toml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """A problem in a configuration file, with the file, line and key it concerns."""

    def __init__(self, path: Path | str, line: int | None, key: str, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
        self.path = Path(path)
        self.line = line
        self.key = key


def parse_duration(value: str | int | float) -> timedelta:
    """``"5m"``, ``"4h"``, ``"5d"``, ``"30s"``, ``"1w"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    found = _DURATION.match(value)
    if not found:
        raise ValueError(f"expected a duration like '30s', '5m', '4h' or '5d', got {value!r}")
    return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


@dataclass(frozen=True)
class AppSection:
    """``[app]``: what the application is."""

    handlers: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)  # "module:function", called with the App
    hostname: str = "localhost"
    domains: list[str] = field(default_factory=list)  # defaults to [hostname]
    templates: Path | None = None
    undeliverable: Path | None = None  # a Maildir queue; in memory when unset
    router_defaults: dict[str, str] = field(default_factory=dict)
    confirmation_lifetime: timedelta = timedelta(days=3)


@dataclass(frozen=True)
class DatabaseSection:
    """``[database]``: where conversation state, spam counts and confirmations live."""

    url: str = "sqlite:///run/mailsim.sqlite3"


# How the receiver makes a message durable before its 250 (see docs/serving.md).
Durability = Literal["fsync", "syncfs", "wal", "none"]


@dataclass(frozen=True)
class ReceiverSection:
    """``[receiver]``: how mail comes in."""

    protocol: Literal["smtp", "lmtp"] = "smtp"
    host: str = "127.0.0.1"
    port: int = 8823
    socket: Path | None = None  # LMTP over a UNIX socket instead of TCP
    queue: Path = Path("run/incoming")
    durability: Durability = "fsync"
    workers: int = 8  # handler threads
    certificate: Path | None = None  # STARTTLS when both are given
    private_key: Path | None = None


@dataclass(frozen=True)
class RelaySection:
    """``[relay]``: how mail goes out."""

    mode: Literal["smarthost", "mx"] = "smarthost"
    host: str = "127.0.0.1"
    port: int = 25
    protocol: Literal["smtp", "lmtp"] = "smtp"
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = None
    timeout: timedelta = timedelta(seconds=60)
    queue: Path = Path("run/outbox")
    retry_first: timedelta = timedelta(minutes=5)
    retry_factor: float = 2.0
    retry_longest: timedelta = timedelta(hours=4)
    lifetime: timedelta = timedelta(days=5)
    auto_reply_limit: int = 10  # automatic replies one address may get …
    auto_reply_window: timedelta = timedelta(hours=1)  # … within this window (RFC 3834 §2)


@dataclass(frozen=True)
class LimitsSection:
    """``[limits]``: what the receiver refuses (defaults as Postfix's)."""

    message_size: int = 10_240_000
    recipients: int = 1000
    line_length: int = 1000
    header_size: int = 102_400
    command_timeout: timedelta = timedelta(seconds=300)
    received_headers: int = 50
    connections_per_client: int = 20


@dataclass(frozen=True)
class SpamSection:
    """``[spam]``: the SpamBayes filter (off unless enabled)."""

    enabled: bool = False
    database: str | None = None  # defaults to [database] url
    spam_cutoff: float = 0.9
    ham_cutoff: float = 0.2


@dataclass(frozen=True)
class Config:
    """A whole ``mailsim.toml``."""

    path: Path
    app: AppSection = field(default_factory=AppSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    receiver: ReceiverSection = field(default_factory=ReceiverSection)
    relay: RelaySection = field(default_factory=RelaySection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    spam: SpamSection = field(default_factory=SpamSection)
    queues: dict[str, Path] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # free-form, for handlers

    @property
    def root(self) -> Path:
        """The project folder: the one holding the file."""
        return self.path.parent

    @property
    def domains(self) -> list[str]:
        return [d.lower() for d in (self.app.domains or [self.app.hostname])]


_SECTIONS: dict[str, type] = {
    "app": AppSection,
    "database": DatabaseSection,
    "receiver": ReceiverSection,
    "relay": RelaySection,
    "limits": LimitsSection,
    "spam": SpamSection,
}


class _Reader:
    """Checks one parsed file against the dataclasses, naming lines in errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, section: str, key: str | None) -> int | None:
        """The line a key is set on (or its table's header): a best effort for messages."""
        header = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\]")
        setting = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=") if key else None
        in_section = section == ""
        for number, text in enumerate(self.lines, 1):
            if re.match(r"^\s*\[", text):
                in_section = bool(header.match(text))
                if in_section and setting is None:
                    return number
            elif in_section and setting is not None and setting.match(text):
                return number
        return None

    def fail(self, section: str, key: str | None, problem: str) -> ConfigError:
        name = f"[{section}] {key}" if key else f"[{section}]"
        return ConfigError(self.path, self.line_of(section, key), name, problem)

    def section(self, name: str, cls: type, raw: object) -> Any:
        if not isinstance(raw, dict):
            raise self.fail(name, None, f"expected a table, got {raw!r}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for key, value in raw.items():
            if key not in known:
                raise self.fail(
                    name, key, f"unknown setting; expected one of: {', '.join(sorted(known))}"
                )
            values[key] = self.value(name, key, hints[key], value)
        return cls(**values)

    def value(self, section: str, key: str, kind: Any, value: object) -> Any:
        try:
            return self._convert(kind, value)
        except (TypeError, ValueError) as problem:
            raise self.fail(section, key, str(problem)) from None

    def _convert(self, kind: Any, value: object) -> Any:
        origin = typing.get_origin(kind)
        args = typing.get_args(kind)
        if origin in (types.UnionType, typing.Union):
            options = [a for a in args if a is not type(None)]
            return self._convert(options[0], value)
        if origin is Literal:
            if value not in args:
                choices = ", ".join(repr(a) for a in args)
                raise ValueError(f"expected one of {choices}, got {value!r}")
            return value
        if origin is list:
            if not isinstance(value, list):
                raise TypeError(f"expected a list, got {value!r}")
            return [self._convert(args[0], item) for item in value]
        if origin is dict:
            if not isinstance(value, dict):
                raise TypeError(f"expected a table, got {value!r}")
            return {str(k): self._convert(args[1], v) for k, v in value.items()}
        if kind is Any:
            return value
        if kind is timedelta:
            if not isinstance(value, str | int | float):
                raise TypeError(f"expected a duration like '5m', got {value!r}")
            return parse_duration(value)
        if kind is Path:
            if not isinstance(value, str):
                raise TypeError(f"expected a path (a string), got {value!r}")
            path = Path(value)
            return path if path.is_absolute() else self.path.parent / path
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError(f"expected true or false, got {value!r}")
            return value
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TypeError(f"expected a whole number ≥ 0, got {value!r}")
            return value
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"expected a number, got {value!r}")
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError(f"expected a string, got {value!r}")
            return value
        raise TypeError(f"cannot read a {kind!r}")  # a schema mistake, not the user's


def _anchor_sqlite(url: str, root: Path) -> str:
    """A relative SQLite file (``sqlite:///run/x.db``) is relative to the project."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{root / relative}"
    return url


def _resolve_paths(config: Config) -> Config:
    """Dataclass defaults are relative to the project: anchor them at its folder."""
    root = config.root

    def anchored(section: Any) -> Any:
        changes = {
            f.name: root / getattr(section, f.name)
            for f in dataclasses.fields(section)
            if isinstance(getattr(section, f.name), Path)
            and not getattr(section, f.name).is_absolute()
        }
        return dataclasses.replace(section, **changes)

    spam = config.spam
    if spam.database is not None:
        spam = dataclasses.replace(spam, database=_anchor_sqlite(spam.database, root))
    return dataclasses.replace(
        config,
        database=DatabaseSection(url=_anchor_sqlite(config.database.url, root)),
        spam=spam,
        app=anchored(config.app),
        receiver=anchored(config.receiver),
        relay=anchored(config.relay),
    )


def load_config(path: str | Path) -> Config:
    """Read and check a ``mailsim.toml`` (or the one in the folder *path*)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "", "no such file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, None, "", f"not UTF-8 text ({error})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # Python 3.11's TOMLDecodeError only says where in its message text.
        position = re.search(r"\(at line (\d+), column \d+\)|\(at end of document\)", str(error))
        line = None
        if position:
            line = int(position.group(1)) if position.group(1) else len(text.splitlines())
        message = str(error).split(" (at ")[0]
        raise ConfigError(path, line, "", f"not valid TOML: {message}") from None
    reader = _Reader(path.resolve(), text)
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _SECTIONS:
            sections[name] = reader.section(name, _SECTIONS[name], value)
        elif name == "queues":
            if not isinstance(value, dict):
                raise reader.fail(name, None, f"expected a table of name = path, got {value!r}")
            sections[name] = {
                key: reader.value(name, key, Path, folder) for key, folder in value.items()
            }
        elif name == "settings":
            if not isinstance(value, dict):
                raise reader.fail(name, None, f"expected a table, got {value!r}")
            sections[name] = value
        else:
            known = ", ".join(f"[{s}]" for s in [*_SECTIONS, "queues", "settings"])
            raise ConfigError(
                path.resolve(),
                reader.line_of(name, None),
                f"[{name}]",
                f"unknown table; expected one of: {known}",
            )
    config = Config(path=path.resolve(), **sections)
    if not config.app.handlers:
        raise ConfigError(
            config.path,
            reader.line_of("app", None),
            "[app] handlers",
            'no handler modules: list them, e.g. handlers = ["app.handlers.sample"]',
        )
    return _resolve_paths(config)
