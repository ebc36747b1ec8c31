"""The confirming app: the runtime's confirmation features run it."""
