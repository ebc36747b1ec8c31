"""The one-shot blog: a mail publishes a web page, comments need a confirmation."""
