"""The mailing-list example application."""
