"""Every address at forward.example.com forwards to the same name at another domain.

``bob@forward.example.com`` goes on to ``bob@example.net`` (``[settings] forward_to``).
The forwarded mail keeps its envelope sender, as a ``.forward`` file does, so when
the relay cannot deliver it the delivery report goes back to whoever wrote it.
"""

from mailsim_runtime import MailRequest, current_app, route, stateless


@route("(name)@(host)", name="[^@]+", host="forward\\.example\\.com")
@stateless
def FORWARD(message: MailRequest, name: str, host: str) -> None:
    app = current_app()
    target = f"{name}@{app.settings['forward_to']}"
    app.relay.deliver(message.original, sender=message.sender, recipients=[target])
