"""What every command shows goes through `cli.ui`: errors and values are never read as markup,
and a pipe gets whole lines."""

import io

import pytest

from cli import ui
from core.errors import CqrsError
from deploy.model import QueryResult


def test_an_error_is_shown_whole_and_never_read_as_markup(monkeypatch):
    console = ui.console_for(file=io.StringIO())
    monkeypatch.setattr(ui, "console", console)
    message = "projections[0].steps[0]: unknown filter '[/bold]' in " + "/a/long/path" * 12
    ui.show_error(CqrsError(message))
    assert console.file.getvalue() == f"error: {message}\n"


@pytest.mark.parametrize("value", ["[/bold]", "[red]x[/red]", "a" * 300])
def test_a_query_value_is_shown_as_it_is(value):
    console = ui.console_for(file=io.StringIO())
    console.print(ui.result_table(QueryResult(["v", "[n]"], ["String", "UInt8"], [[value, 1]])))
    lines = console.file.getvalue().splitlines()
    assert any(f"│ {value} │ 1 " in line for line in lines), lines
    assert any("[n]" in line for line in lines)
