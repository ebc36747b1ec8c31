"""Takes any address in any of its domains and forgets about it."""

from mailsim_runtime import MailRequest, route, stateless


@route("(local)@(domain)", local=".+", domain=".+")
@stateless
def ANYTHING(message: MailRequest, local: str, domain: str) -> None:
    del message, local, domain
