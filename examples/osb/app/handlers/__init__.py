"""Handler modules of the one-shot blog."""
