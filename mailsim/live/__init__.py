"""The live driver: the step library's conversations, against a real server.

``mailsim run --live HOST:PORT`` plays each scenario against a server (``mailsim
serve`` of the same application, say). People's mail goes to the server over SMTP;
the server's replies go out through its relay, whose smart host must be a sink
that this run starts (``--sink``; by default where the project's ``[relay]`` points),
and are sorted from there into the people's mailboxes.

Things that hold here as in the simulated world:

- **Unique people.** Every scenario of every run gets its own addresses:
  ``alice@example.org`` becomes ``alice+ms<run><n>@example.org``, so neither two
  runs nor two scenarios ever see each other's mail or conversations. Texts a step
  compares are rewritten the same way (:meth:`LiveScenario.localize`).
- **Waiting with a deadline.** Expecting mail polls the sink until the mail is there
  or the deadline passes, then fails saying what came instead. Expecting *no* mail
  watches for a quiet period first, failing as soon as something arrives.
- **Honest limits.** Moving the clock or switching a remote host's behaviour is not
  possible against a real server, and a conversation's state is only observable
  through the server's state database (``--state-url``): such steps raise
  :class:`NotPossibleLive` (or :class:`NotObservableLive`), which the step library
  turns into a skipped scenario with that reason — never a pass.

This package talks SMTP with :mod:`smtplib` and never imports ``aiosmtpd``; the sink
is the runtime's ``SmtpSink`` (or anything with its shape, :class:`MailSink`).
"""

from mailsim.live.driver import LiveRun, LiveScenario, local_app, unique_address
from mailsim.live.smtp import (
    Endpoint,
    LiveError,
    MailSink,
    NotObservableLive,
    NotPossibleLive,
    SunkMessage,
    hand_over,
    open_sink,
    probe_relay,
)

__all__ = [
    "Endpoint",
    "LiveError",
    "LiveRun",
    "LiveScenario",
    "MailSink",
    "NotObservableLive",
    "NotPossibleLive",
    "SunkMessage",
    "hand_over",
    "local_app",
    "open_sink",
    "probe_relay",
    "unique_address",
]
