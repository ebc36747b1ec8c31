"""The echo app: the step library's features run it."""
