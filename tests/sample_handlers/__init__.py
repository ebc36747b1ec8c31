"""Handler modules the tests load into routers by name."""
