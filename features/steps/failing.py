"""Steps for specifying how other steps fail: run them, keep the failure, check its text.

Then this step fails:
  \"\"\"
  Then "alice@example.org" receives no mail
  \"\"\"
And the failure says:
  \"\"\"
  alice@example.org: expected no mail, but 1 arrived
  \"\"\"
"""

from typing import Any

from behave import then


def _flat(text: str) -> str:
    return " ".join(text.split())


@then("this step fails:")
@then("these steps fail:")
def this_step_fails(context: Any) -> None:
    steps = context.text
    try:
        context.execute_steps(steps)
    except AssertionError as failure:
        context.failure = str(failure)
        return
    if not context.scenario.should_skip:
        raise AssertionError(f"expected this to fail, but it passed:\n{steps}")


@then("the failure says:")
def the_failure_says(context: Any) -> None:
    failure = getattr(context, "failure", None)
    if failure is None:
        raise AssertionError("no step has failed yet: say 'Then this step fails:' first")
    for line in context.text.splitlines():
        if line.strip() and _flat(line) not in _flat(failure):
            raise AssertionError(f"the failure does not say {line.strip()!r}; it says:\n{failure}")
