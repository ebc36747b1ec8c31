"""The responder app: the runtime's RFC 3834 features run it."""
