"""`cqrs`'s entry point. A command that will become the data dir's runtime (`serve`, `run`)
takes the runtime lock here, before the CLI and everything it imports load (half a second, far
more on a busy machine): a `cqrs status` or `cqrs deploy` started right after it then finds a
runtime starting and waits for it, instead of opening the store under it or concluding that
none runs. Only the standard library and the settings are imported before the claim.
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.errors import CqrsError
from deploy.runtime_file import claim
from deploy.settings import Settings

RUNTIME_COMMANDS = ("serve", "run")
#: the group's options that take a value (`--data-dir X`), so the command after them is found
_VALUED = ("--data-dir", "--brokers", "--clickhouse", "--topic", "--log-level")


def main() -> None:
    args = sys.argv[1:]
    command, data_dir = _command(args)
    if command in RUNTIME_COMMANDS and "--help" not in args and not _member(args):
        try:
            settings = Settings.from_env(data_dir=Path(data_dir) if data_dir else None)
        except CqrsError:
            pass  # the CLI reports a bad setting itself
        else:
            claim(settings.data_dir)
    from cli.app import run

    run()


def _member(args: list[str]) -> bool:
    """`run --process-id i` with i > 0 is a member of a cluster across hosts: no runtime."""
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name == "--process-id":
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            return value.strip() not in ("", "0")
    return False


def _command(args: list[str]) -> tuple[str | None, str | None]:
    """The subcommand and the `--data-dir` given before it."""
    data_dir = None
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in _VALUED:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if name == "--data-dir":
                data_dir = value
        elif not arg.startswith("-"):
            return arg, data_dir
        i += 1
    return None, data_dir
