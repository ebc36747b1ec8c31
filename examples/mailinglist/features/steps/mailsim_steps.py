"""The mailing list's features use mailsim's vocabulary, and nothing else."""

from mailsim.steps import *  # noqa: F403
