"""The write side: the command log, producers, schemas and the demo load generator."""
