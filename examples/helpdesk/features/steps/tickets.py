"""The desk's shorthand, made of mailsim's steps: a ticket opened, a ticket answered."""

from __future__ import annotations

from typing import Any

from behave import given

AGENTS = ("agent1@staff.example.org", "agent2@staff.example.org")


@given('"{customer}" has opened ticket {number:d} about "{subject}"')
def has_opened_a_ticket(context: Any, customer: str, number: int, subject: str) -> None:
    """The customer wrote to support@; the acknowledgement and both notices arrived."""
    ticket = f"ticket-{number}@help.example.com"
    steps = [
        f'When "{customer}" sends a mail to "support@help.example.com" with subject "{subject}"',
        f'Then "{customer}" receives a mail from "{ticket}" with subject "[Ticket #{number}]"',
    ]
    steps += [
        f'And "{agent}" receives a mail from "{ticket}" with subject "[Ticket #{number}]"'
        for agent in AGENTS
    ]
    context.execute_steps("\n".join(steps))


@given('"{agent}" has answered it saying "{text}"')
def has_answered_it(context: Any, agent: str, text: str) -> None:
    """The agent answered the new-ticket notice they got last, which took the ticket."""
    context.execute_steps(
        f'''
        When "{agent}" replies to the last mail saying "{text}"
        Then "{agent}" receives a mail with subject "It is yours"
        And "alice@example.org" receives a mail containing "{text}"
        '''
    )
