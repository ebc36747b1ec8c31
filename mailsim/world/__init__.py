"""The simulated mail world: an application, people, remote hosts and virtual time."""

from mailsim.world.clock import VirtualClock
from mailsim.world.hosts import Behaviour, RemoteHost
from mailsim.world.mailbox import Mailbox, ReceivedMail
from mailsim.world.transcript import MessageEvent, Transcript, TransitionEvent
from mailsim.world.world import HandlerFailed, MailLoop, UnexpectedMail, World, WorldError

__all__ = [
    "Behaviour",
    "HandlerFailed",
    "MailLoop",
    "Mailbox",
    "MessageEvent",
    "ReceivedMail",
    "RemoteHost",
    "Transcript",
    "TransitionEvent",
    "UnexpectedMail",
    "VirtualClock",
    "World",
    "WorldError",
]
