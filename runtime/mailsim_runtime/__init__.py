"""mailsim's runtime: a mail application server in the Lamson tradition.

Handlers are plain functions named after the states of a per-conversation state
machine, routed by address patterns; they reach their application through
:func:`current_app`.
"""

from mailsim_runtime.app import App, current_app
from mailsim_runtime.mail import Attachment, HeaderInjectionError, MailRequest, MailResponse
from mailsim_runtime.routing import (
    Router,
    nolocking,
    route,
    route_like,
    state_key_generator,
    stateless,
)

__all__ = [
    "App",
    "Attachment",
    "HeaderInjectionError",
    "MailRequest",
    "MailResponse",
    "Router",
    "current_app",
    "nolocking",
    "route",
    "route_like",
    "state_key_generator",
    "stateless",
]

__version__ = "0.1.0"
