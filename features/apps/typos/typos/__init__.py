"""The typos app: the runtime's spelling features run it."""
