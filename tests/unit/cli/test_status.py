"""`cqrs status`'s table: the compact default fits 80 terminal columns with every value on one
line, `--wide` shows every column, and no value is cut off, on a terminal of any width or in a
pipe (one line per deployment there)."""

import io
from collections import Counter

import msgspec
import pytest
from rich.console import Console

from cli.status import COMPACT, WIDE, status_table
from cli.ui import console_for
from deploy.model import DeploymentStatus


def status(name, **changed):
    fields = {
        "name": name, "pipeline": name.rsplit("_v", 1)[0], "version": 1, "error": None,
        "start": {}, "stop": None, "next": {}, "end": {}, "behind": None, "state": "running", "desired": "running", "lag": {"0": 1_234_567, "1": 0},
        "behind_s": 12.25, "done": 12_345_678, "total": 12_345_679, "follow": False,
        "rows": {"orders": 1_234_567, "revenue_per_minute": 98_765, "top_skus_5m": 4_321},
        "consumed": 12_345_678.0, "accepted": 12_300_000.0, "stage": "", **changed,
    }  # fmt: skip
    return msgspec.convert(fields, DeploymentStatus, strict=False)


STATUSES = [
    status(
        "revenue_by_region_v12",
        processes=2,
        cluster=[
            {"process": 0, "pid": 100, "partitions": [0]},
            {"process": 1, "pid": 101, "partitions": [1]},
        ],
    ),
    status("orders_v2", state="stopped", desired="stopped", lag={"0": 0}, behind_s=None),
    status("orders_v3", follow=True, done=5, total=5, behind_s=0.0),
    status("empty_v1", state="completed", done=0, total=0, lag={}),
    status("orders_v1", state="stopped", desired="stopped", stage="retired"),
]
COMPACT_ROWS = [
    ["revenue_by_region_v12", "running", "1,234,567", "12.2s", "99%"],  # one offset left
    ["orders_v2", "stopped (held)", "0", "?", "99%"],
    ["orders_v3", "running", "1,234,567", "0.0s", "live"],
    ["empty_v1", "completed", "0", "12.2s", "-"],
    ["orders_v1", "retired", "1,234,567", "12.2s", "99%"],
]
WIDE_ROW = [
    "revenue_by_region_v12", "running", "1,234,567", "12.2s", "12,345,678/12,345,679",
    "2", "0 (pid 100): 0; 1 (pid 101): 1", "orders 1,234,567, revenue_per_minute 98,765, top_skus_5m 4,321", "12,345,678 / 12,300,000",
]  # fmt: skip


def shown(console, table):
    console.print(table)
    return console.file.getvalue().splitlines()


def terminal(width):
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def cells(line):
    return [c.strip() for c in line.split("│")[1:-1]]


def glyphs(text):
    """The characters of a text but its spaces and the table's rules."""
    return Counter(c for c in text if not c.isspace() and c not in "│┃━─┏┓┗┛┡┩┣┫╇┳┻┼└┘┌┐┴┬")


def test_the_compact_table_fits_80_columns_one_line_a_deployment():
    lines = shown(terminal(80), status_table(STATUSES))
    assert max(len(line) for line in lines) <= 80
    (header,) = [line for line in lines if "deployment" in line]
    assert [c.strip() for c in header.split("┃")[1:-1]] == list(COMPACT)
    assert [cells(line) for line in lines if cells(line)] == COMPACT_ROWS


@pytest.mark.parametrize(("width", "wide"), [(80, True), (60, False), (40, True)])
def test_on_a_narrow_terminal_nothing_is_cut_off(width, wide):
    lines = shown(terminal(width), status_table(STATUSES, wide))
    assert max(len(line) for line in lines) <= width
    headers = " ".join(WIDE if wide else COMPACT)
    values = [cell for line in shown(console_for(file=io.StringIO()), status_table(STATUSES, wide))
              for cell in cells(line)]  # fmt: skip
    assert glyphs("\n".join(lines)) == glyphs(headers + "".join(values))


def test_in_a_pipe_the_wide_table_keeps_one_whole_line_a_deployment():
    lines = shown(console_for(file=io.StringIO()), status_table(STATUSES, wide=True))
    rows = [cells(line) for line in lines if cells(line)]
    assert rows[0] == WIDE_ROW
    assert [row[0] for row in rows] == [s.name for s in STATUSES]
    assert len(lines) == 4 + len(STATUSES)  # the top rule, header, its rule, rows, bottom rule
