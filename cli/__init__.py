"""`cqrs`, the command line: one module per command group, thin over `deploy/` (parse the flags,
call, render), a shared `ui` for what is shown and how, and `main`, the entry point."""
