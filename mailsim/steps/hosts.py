"""Steps that change how a remote mail host (a domain outside the app) behaves.

The application's relay meets the behaviour when it sends there: a host that is
down or defers is retried with backoff (``When 1 hour passes`` lets the retries
happen), a refusal or a bounce comes back as a delivery status notification. Live
these are not possible (the server's relay hands everything to the sink), and the
scenario is skipped, saying so.
"""

from __future__ import annotations

from typing import Any

from mailsim.steps._phrases import phrase
from mailsim.steps._scene import Scene, StepFailed, scene_of
from mailsim.world import RemoteHost

__all__ = [
    "host_accepts",
    "host_bounces",
    "host_defers",
    "host_greylists",
    "host_is_down",
    "host_refuses",
    "person_is_away",
]


def _host(scene: Scene, domain: str) -> RemoteHost:
    try:
        return scene.driver.host(scene.expand(domain, localize=False))
    except ValueError as error:
        raise StepFailed(str(error)) from None


@phrase("Given", 'the host "{domain}" is down', example='Given the host "example.net" is down')
def host_is_down(context: Any, domain: str) -> None:
    """Every delivery attempt to *domain* fails as if nobody answered (temporary)."""
    _host(scene_of(context), domain).down()


@phrase(
    "Given", 'the host "{domain}" defers mail', example='Given the host "example.net" defers mail'
)
@phrase(
    "Given",
    'the host "{domain}" defers mail {times:int} times',
    example='Given the host "example.net" defers mail 2 times',
)
def host_defers(context: Any, domain: str, times: str | None = None) -> None:
    """*domain* answers 451 "try again later" — *times* times, or until told otherwise."""
    _host(scene_of(context), domain).defer(int(times) if times is not None else None)


@phrase(
    "Given",
    'the host "{domain}" greylists mail',
    example='Given the host "example.net" greylists mail',
)
def host_greylists(context: Any, domain: str) -> None:
    """*domain* defers each new (sender, recipient) pair for five minutes."""
    _host(scene_of(context), domain).greylist()


@phrase(
    "Given",
    'the host "{domain}" refuses mail',
    example='Given the host "example.net" refuses mail',
)
def host_refuses(context: Any, domain: str) -> None:
    """*domain* refuses every recipient permanently (550)."""
    _host(scene_of(context), domain).refuse()


@phrase(
    "Given",
    'the host "{domain}" bounces mail to "{address}"',
    example='Given the host "example.net" bounces mail to "bob@example.net"',
)
def host_bounces(context: Any, domain: str, address: str) -> None:
    """*domain* accepts mail for *address*, then sends its sender a bounce (5.1.1)."""
    scene = scene_of(context)
    address = scene.expand(address, localize=False)
    host = _host(scene, domain)
    if address.rpartition("@")[2].lower() != host.domain:
        raise StepFailed(f"{address} is not at {host.domain}, so that host never sees its mail")
    host.bounce(address)


@phrase(
    "Given",
    'the host "{domain}" accepts mail',
    example='Given the host "example.net" accepts mail',
)
def host_accepts(context: Any, domain: str) -> None:
    """*domain* is back to normal: it accepts every recipient."""
    _host(scene_of(context), domain).accept()


@phrase(
    "Given",
    '"{address}" is away',
    example='Given "bob@example.net" is away',
)
def person_is_away(context: Any, address: str) -> None:
    """*address*'s mail is delivered and answered automatically (RFC 3834 rules kept).

    A docstring under the step is the automatic answer's text.
    """
    scene = scene_of(context)
    address = scene.expand(address, localize=False)
    host = _host(scene, address.rpartition("@")[2])
    if context.text:
        host.vacation(address, scene.expand(context.text))
    else:
        host.vacation(address)
