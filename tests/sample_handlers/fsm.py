"""States that exercise the state machine's rules: chaining, staying, failing, ERROR."""

from mailsim_runtime import current_app, route, route_like
from mailsim_runtime.mail import MailRequest


def _log(entry: str) -> None:
    current_app().settings.setdefault("calls", []).append(entry)


@route("(word)@fsm.example.com")
def START(message: MailRequest, word: str) -> object:
    _log(f"START {word}")
    if word == "chain":
        return WAITING(message, word)  # runs WAITING now; its answer is the next state
    if word == "boom":
        raise RuntimeError("boom in START")
    if word == "stay":
        return None
    if word == "bad":
        return "WAITING"  # not a function: a programming error, reported
    return WAITING


@route_like(START)
def WAITING(message: MailRequest, word: str) -> object:
    _log(f"WAITING {word}")
    if word == "boom":
        raise ValueError("boom in WAITING")
    return DONE


@route("(word)@done.example.com")
def DONE(message: MailRequest, word: str) -> object:
    _log(f"DONE {word}")
    return START


def ERROR(message: MailRequest, **captures: str) -> object:
    _log(f"ERROR {message.recipient}")
    return START
