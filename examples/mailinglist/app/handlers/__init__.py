"""Handler modules of the mailing-list example."""
