"""mailsim: write email applications test-first.

The runtime (:mod:`mailsim_runtime`) runs mail applications; this package adds the
simulated mail world, conversation specs and the ``mailsim`` command.
"""

__version__ = "0.1.0"
