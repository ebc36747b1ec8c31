"""The step library under test: mailsim's vocabulary, with one import."""

from mailsim.steps import *  # noqa: F403
