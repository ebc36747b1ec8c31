"""The forwarder app: the runtime's retry and bounce features run it."""
