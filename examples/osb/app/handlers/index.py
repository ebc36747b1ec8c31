"""The index builder's handler: what a QueueReceiver hands each job of ``[queues] index``.

It is not one of the server's handlers (``[app] handlers`` in mailsim.toml), so
``index@`` takes no mail from outside; only the worker that empties the queue
(``python -m app.worker``) loads it.
"""

from __future__ import annotations

from mailsim_runtime import MailRequest, route, stateless

from app import index


@route("index@(host)")
@stateless
def BUILD_INDEX(message: MailRequest, host: str) -> None:
    index.build_index()
