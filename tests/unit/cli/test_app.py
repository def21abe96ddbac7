"""A command loads only what it uses: `cqrs --help`, every command's `--help` and the commands
that only ask the runtime (refused here: none runs) import none of the machinery that runs
pipelines. With a runtime answering: tests/e2e/test_cli.py."""

import json
import subprocess
import sys

from tests.conftest import REPO

#: what only running a pipeline, the store or the broker needs (each takes 50-300 ms to import)
HEAVY = ("bytewax", "litestar", "uvicorn", "chdb", "clickhouse_connect", "kafka")

SPEC = str(REPO / "examples" / "orders" / "specs" / "orders.yaml")

#: the commands that change deployments, which only ever ask the runtime
ASK_THE_RUNTIME = [
    ["start", "orders_v1"],
    ["stop", "orders_v1"],
    ["skip", "orders_v1", "--partition", "0", "--offset", "1"],
    ["deploy", SPEC],
    ["deploy", "init", SPEC],
    ["deploy", "await", "orders"],
    ["deploy", "promote", "orders"],
    ["deploy", "rollback", "orders"],
    ["deploy", "abort", "orders"],
    ["deploy", "cleanup", "orders"],
    ["deploy", "history", "orders"],
]

#: runs each command line through the entry point in one process, then lists the top-level
#: packages loaded: one interpreter start for them all
_RUN = """
import json, sys
import click
from cli.app import cqrs
from cli.main import main

def every_help(command, path):
    yield [*path, "--help"]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from every_help(sub, [*path, name])

data_dir, lines = sys.argv[1], json.loads(sys.argv[2])
for line in [*every_help(cqrs, []), *lines]:
    sys.argv = ["cqrs", "--data-dir", data_dir, *line]
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code
    print(json.dumps([line, code]), file=sys.stderr)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def imported(stderr: str) -> set[str]:
    """The top-level packages a process run with PYTHONPROFILEIMPORTTIME=1 imported."""
    lines = (line for line in stderr.splitlines() if line.startswith("import time:"))
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines}


def test_help_and_the_commands_that_ask_the_runtime_load_no_pipeline_machinery(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(tmp_path / "data"), json.dumps(ASK_THE_RUNTIME)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ends = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("[[")]
    helps = [line for line, code in ends if line[-1] == "--help" and code == 0]
    assert len(helps) >= 25 and ["deploy", "promote", "--help"] in helps
    no_runtime = f"no runtime runs on data dir {tmp_path / 'data'}; start one with `cqrs serve`"
    assert done.stderr.count(no_runtime) == len(ASK_THE_RUNTIME)
    assert [code for line, code in ends if line in ASK_THE_RUNTIME] == [2] * len(ASK_THE_RUNTIME)
    assert "Usage: cqrs [OPTIONS] COMMAND" in done.stdout
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "cli" in loaded and "click" in loaded  # the listing is of this run
    assert loaded.isdisjoint(HEAVY), sorted(loaded.intersection(HEAVY))
