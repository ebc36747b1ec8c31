"""A handler that writes its own table and a confirmation inside its transition."""

import sqlalchemy as sa
from mailsim_runtime import current_app, route
from mailsim_runtime.mail import MailRequest

metadata = sa.MetaData()
entries = sa.Table("ledger_entries", metadata, sa.Column("word", sa.String(100), primary_key=True))


@route("(word)@ledger.example.com")
def START(message: MailRequest, word: str) -> object:
    app = current_app()
    with app.transaction() as connection:
        connection.execute(sa.insert(entries).values(word=word))
        # reads see this transaction's own writes
        count = connection.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one()
    app.settings["count"] = count
    app.confirmations.register("ledger", message)
    return DONE


@route("(word)@ledger.example.com")
def DONE(message: MailRequest, word: str) -> object:
    return None
