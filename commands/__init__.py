"""The write side: the command envelope, the command log, producers and the demo load generator."""
