"""Small test doubles shared by the test modules."""
