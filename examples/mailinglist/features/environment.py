"""So that plain `behave` runs these features too (`mailsim run` needs no such file)."""

from mailsim.steps.environment import *  # noqa: F403
