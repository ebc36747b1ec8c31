"""The receiver's shortcuts past aiosmtpd's slow paths give aiosmtpd's own answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st
from mailsim_runtime import App, route, stateless
from mailsim_runtime.mail import MailRequest
from mailsim_runtime.server import Receiver, _LmtpSession, _Session


@route("(user)@(host)", user=".+", host=".+")
@stateless
def TAKE(message: MailRequest, user: str, host: str) -> None:
    """Every address."""


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def session(kind: type[_Session], loop: asyncio.AbstractEventLoop, folder: Path) -> _Session:
    import sys

    receiver = Receiver(
        App([sys.modules[__name__]], hostname="example.com"),
        port=0,
        queue=folder / "incoming",
        durability="none",
    )
    return kind(receiver, hostname="example.com", tls_context=None, timeout=300, loop=loop)


@pytest.mark.parametrize("kind", [_Session, _LmtpSession])
def test_the_session_lists_every_command_and_auth_mechanism_aiosmtpd_would_find(
    kind: type[_Session], loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    made = session(kind, loop, tmp_path)
    every = object.__dir__(made)
    assert sorted(made._smtp_methods) == sorted(
        name.removeprefix("smtp_") for name in every if name.startswith("smtp_")
    )
    assert sorted(made._auth_methods) == sorted(
        name.removeprefix("auth_").replace("__", "-") for name in every if name.startswith("auth_")
    )


atext = st.text(alphabet="abcXYZ09!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=6)
dot_atom = st.lists(atext, min_size=1, max_size=3).map(".".join)
paths = st.one_of(
    st.builds(lambda a, b: f"<{a}@{b}>", dot_atom, dot_atom),
    st.builds(
        lambda a, b, gap, rest: f"<{a}@{b}>{gap}{rest}",
        dot_atom,
        dot_atom,
        st.sampled_from(["", " ", "  ", "\t", " \t"]),
        st.sampled_from(["", "SIZE=100", "BODY=8BITMIME SIZE=2", "(comment) SIZE=1", " x", "("]),
    ),
    st.text(alphabet='<>@.a"[] ()\\:,;é', max_size=20),
)


def outcome(parse: Callable[[str], object], arg: str) -> object:
    """What *parse* returns, or the kind of error it raises (aiosmtpd's parser raises
    IndexError on some malformed paths; the shortcut must leave those to it)."""
    try:
        return parse(arg)
    except Exception as error:
        return type(error)


@pytest.fixture(scope="module")
def plain_session(
    loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> _Session:
    return session(_Session, loop, tmp_path_factory.mktemp("session"))


@given(arg=paths)
def test_the_plain_path_shortcut_is_aiosmtpds_own_parse(plain_session: _Session, arg: str) -> None:
    try:
        for limit in (0, 3):
            plain_session.local_part_limit = limit
            assert outcome(plain_session._getaddr, arg) == outcome(
                lambda a: SMTP._getaddr(plain_session, a), arg
            )
    finally:
        plain_session.local_part_limit = 0
