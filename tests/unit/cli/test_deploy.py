"""`cqrs deploy history` as read on an 80-column terminal and in a pipe."""

import io

import msgspec
from rich.console import Console

from cli.deploy import history_view
from cli.ui import console_for
from deploy.model import History

DETAIL = "from orders_v3 after a promote whose gate the operator forced: " + "x" * 90
HISTORY = msgspec.convert({
    "pipeline": "orders",
    "versions": [
        {"name": "orders_v1", "version": 1, "stage": "retired", "changes": []},
        {"name": "orders_v2", "version": 2, "stage": "draining",
         "changes": ["top_skus_5m step changed: sliding", "filter added: [dedupe]"]},
        {"name": "orders_v3", "version": 3, "stage": "active", "changes": []},
    ],
    "events": [
        {"name": "orders_v1", "at": "2026-11-26T17:34:02.123000+00:00", "event": "promoted",
         "detail": ""},
        {"name": "orders_v10", "at": "2026-11-26T18:00:00.5+00:00", "event": "rolled back",
         "detail": DETAIL},
    ],
}, History)  # fmt: skip


def shown(console):
    console.print(history_view(HISTORY))
    return console.file.getvalue().splitlines()


def test_a_version_says_what_changed_from_the_one_before():
    lines = shown(console_for(file=io.StringIO()))
    assert lines[:3] == [
        "orders_v1 (retired): first version",
        "orders_v2 (draining): top_skus_5m step changed: sliding; filter added: [dedupe]",
        "orders_v3 (active): the same spec as orders_v2 but its version",
    ]


def test_in_a_pipe_each_event_is_one_whole_line_in_aligned_columns():
    lines = shown(console_for(file=io.StringIO()))
    assert lines[3:] == [
        "  2026-11-26 17:34:02.123Z  orders_v1   promoted",
        f"  2026-11-26 18:00:00.500Z  orders_v10  rolled back  {DETAIL}",
    ]


def test_on_a_terminal_lines_fit_80_columns_and_lose_nothing():
    terminal = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    lines = shown(terminal)
    assert max(len(line) for line in lines) <= 80
    assert lines[4].startswith("  2026-11-26 18:00:00.500Z  orders_v10  rolled back  from")
    assert "".join(" ".join(lines[4:]).split()) == "".join(
        f"2026-11-26 18:00:00.500Z orders_v10 rolled back {DETAIL}".split()
    )
