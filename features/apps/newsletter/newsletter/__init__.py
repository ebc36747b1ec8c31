"""The newsletter app: the runtime's bounce-handling features run it."""
