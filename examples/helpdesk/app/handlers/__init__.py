"""Handler modules of the help desk example."""
