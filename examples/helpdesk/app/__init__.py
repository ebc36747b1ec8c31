"""The help desk example application."""
