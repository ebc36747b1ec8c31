"""An atheris (libFuzzer) target: :func:`fuzz_receive.exercise`, coverage-guided by the
runtime's and the email package's own code::

    python tests/faults/fuzz_atheris.py -runs=100000 -timeout=2 [corpus folder]

``-timeout=2`` makes any single input that takes longer than two seconds a failure;
an exception escaping :func:`~fuzz_receive.exercise` is a crash, written to a file.
atheris is optional (``pip install atheris``); the Hypothesis harness in
``test_hostile_input.py`` covers the same path without it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["mailsim_runtime", "email", "fuzz_receive"]):
    from fuzz_receive import exercise, make_app


def main() -> None:
    app = make_app()

    def target(data: bytes) -> None:
        exercise(data, app)

    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
