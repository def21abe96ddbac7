"""`cqrs`, the command line: one module per command group, thin over `deploy/` (parse the flags,
call, render), a shared `ui` for what is shown and how, and `main`, the entry point.

A command pays only for what it uses. These modules import at their top only what defining the
commands needs (click, rich, the settings, the runtime's HTTP client, `deploy.bootstrap`), so
`cqrs --help`, `cqrs status` against a runtime or `cqrs deploy` start in a quarter of the time;
the machinery a command runs (the runtime, the store, kafka-python, Bytewax, the HTTP server, a
spec's filters) is imported in that command's callback. tests/unit/cli/test_app.py holds it.
"""
