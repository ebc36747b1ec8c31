"""Who works at the desk and how long things may wait: ``[settings]`` in mailsim.toml.

Handlers call :func:`desk_of` with the current app; the ``[app] setup`` function
:func:`check_settings` reads the settings once when the app is built, so a mistake
is reported when the server starts, naming the key, not when the first ticket
arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mailsim_runtime import App
from mailsim_runtime.config import parse_duration

__all__ = ["Desk", "check_settings", "desk_of"]


@dataclass(frozen=True)
class Desk:
    """The desk's people and time limits, and the addresses of its tickets."""

    name: str
    hostname: str
    agents: tuple[str, ...]
    manager: str
    claim_within: timedelta
    answer_within: timedelta

    @property
    def support_address(self) -> str:
        """Where customers write to open a ticket."""
        return f"support@{self.hostname}"

    def ticket_address(self, number: int, action: str | None = None) -> str:
        """``ticket-7@host``, or with an action ``ticket-7-claim@host``."""
        local = f"ticket-{number}" if action is None else f"ticket-{number}-{action}"
        return f"{local}@{self.hostname}"

    def is_agent(self, address: str) -> bool:
        return address.lower() in self.agents

    def is_manager(self, address: str) -> bool:
        return address.lower() == self.manager


def _address(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or value.startswith("@"):
        raise ValueError(f"mailsim.toml [settings] {key}: expected a mail address, got {value!r}")
    return value.strip().lower()


def _duration(key: str, value: Any) -> timedelta:
    try:
        duration = parse_duration(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"mailsim.toml [settings] {key}: {error}") from None
    if duration <= timedelta(0):
        raise ValueError(f"mailsim.toml [settings] {key}: must be longer than nothing")
    return duration


def desk_of(app: App) -> Desk:
    """The desk *app*'s settings describe (a ``ValueError`` names a wrong key)."""
    settings = app.settings
    for key in ("agents", "manager", "claim_within", "answer_within"):
        if key not in settings:
            raise ValueError(f"mailsim.toml [settings] has no {key}: the help desk needs it")
    agents = settings["agents"]
    if not isinstance(agents, list) or not agents:
        raise ValueError(
            "mailsim.toml [settings] agents: expected a list of at least one mail address, "
            f"got {agents!r}"
        )
    name = settings.get("desk_name", "Help Desk")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"mailsim.toml [settings] desk_name: expected a name, got {name!r}")
    return Desk(
        name=name.strip(),
        hostname=app.hostname,
        agents=tuple(_address("agents", agent) for agent in agents),
        manager=_address("manager", settings["manager"]),
        claim_within=_duration("claim_within", settings["claim_within"]),
        answer_within=_duration("answer_within", settings["answer_within"]),
    )


def check_settings(app: App) -> None:
    """``[app] setup``: fail now, naming the key, if the settings are wrong."""
    desk_of(app)
