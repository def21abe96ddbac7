"""What the CLI shows: results go to stdout (`out`), messages and progress to stderr (`console`),
so a result can be piped while the user still reads what happens."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from commands.errors import CqrsError
from deploy.query import QueryResult

console = Console(stderr=True)
out = Console()


def result_table(result: QueryResult) -> Table:
    """A query's result as a table, every value as text."""
    shown = Table(*result.columns)
    for row in result.to_json()["rows"]:
        shown.add_row(*(str(v) for v in row))
    return shown


def progress_bar(*fields: TextColumn) -> Progress:
    """The bar of long work on stderr: what, how far (done/total), `fields`, time left."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *fields,
        TimeRemainingColumn(),
        console=console,
    )


def show_error(exc: CqrsError) -> None:
    """An error as the user reads it, in red."""
    console.print(f"[red]error:[/red] {exc}", highlight=False)
