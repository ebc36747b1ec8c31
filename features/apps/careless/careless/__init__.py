"""The careless app: the step library's failure features run it."""
