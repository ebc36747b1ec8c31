"""So that plain `behave features/` works too; `mailsim run` installs these hooks itself."""

from mailsim.steps.environment import *  # noqa: F403
