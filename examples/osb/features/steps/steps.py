"""The blog's features use mailsim's vocabulary (and the few steps in blog.py)."""

from mailsim.steps import *  # noqa: F403
