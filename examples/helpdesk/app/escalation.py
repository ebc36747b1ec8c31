"""Escalation: telling the manager about tickets that wait too long.

Nothing in a mail application runs by itself when time passes — handlers run when
mail arrives. So the desk's time limits are checked by :func:`check_escalations`,
a plain function that something calls every few minutes:

- in production, cron (or a systemd timer) runs ``python -m app.escalation`` from
  the project folder, which builds the app from ``mailsim.toml`` the way
  ``mailsim serve`` does and runs the check once;
- in the tests, the test moves the world's clock and calls the check itself.

Each ticket is escalated once for each reason: the note that the manager was told
is written with a conditional UPDATE before the mail is queued, in one
transaction, so a second check (or two at once) sends nothing more. A customer
who is answered and then waits again may be escalated again.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mailsim_runtime import App

from app import model
from app.desk import desk_of
from app.outgoing import notify

__all__ = ["check_escalations", "main"]

log = logging.getLogger(__name__)


def check_escalations(app: App) -> list[str]:
    """Tell the manager about every ticket over a time limit; what was sent, one line each.

    - *unclaimed*: no agent has taken the ticket within ``claim_within``;
    - *unanswered*: an agent has it, but the customer has waited ``answer_within``.
    """
    sent: list[str] = []
    with app.bound():
        desk = desk_of(app)
        now = app.clock.now()
        for ticket in model.unclaimed_since(now - desk.claim_within):
            with app.transaction():
                if model.mark_escalated(ticket.number, "unclaimed", now):
                    notify(
                        desk.manager,
                        "staff/escalation_unclaimed.txt",
                        "{{ tag }} Nobody has taken it",
                        ticket,
                        reply_to=desk.ticket_address(ticket.number, "claim"),
                    )
                    sent.append(f"ticket {ticket.number}: unclaimed since {ticket.opened_at}")
        for ticket in model.unanswered_since(now - desk.answer_within):
            with app.transaction():
                if model.mark_escalated(ticket.number, "unanswered", now):
                    notify(
                        desk.manager,
                        "staff/escalation_unanswered.txt",
                        "{{ tag }} The customer is waiting",
                        ticket,
                        reply_to=desk.ticket_address(ticket.number, "claim"),
                    )
                    sent.append(f"ticket {ticket.number}: unanswered since {ticket.waiting_since}")
    for line in sent:
        log.info("escalated %s", line)
    return sent


def main(argv: list[str] | None = None) -> int:
    """``python -m app.escalation [PROJECT]``: run the check once, for cron."""
    from mailsim_runtime.config import load_config
    from mailsim_runtime.project import build_app, transport_from_config

    arguments = sys.argv[1:] if argv is None else argv
    config = load_config(Path(arguments[0] if arguments else "."))
    app = build_app(config, transport=transport_from_config(config))
    # Queue only while the check holds its database transactions; send afterwards,
    # so no SMTP conversation keeps the database locked. What cannot be sent now
    # stays in the durable outbox, where the server's relay retries it.
    app.relay.attempt_at_once = False
    for line in check_escalations(app):
        print(f"escalated {line}")
    app.relay.run_due()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
