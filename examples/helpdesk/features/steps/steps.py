"""The help desk's features use mailsim's vocabulary (and one step of their own)."""

from mailsim.steps import *  # noqa: F403
