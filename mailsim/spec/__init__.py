"""Assertions about a conversation: matchers, expectations and the safety batteries."""
