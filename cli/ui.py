"""What the CLI shows, and how it fits the terminal or the pipe it goes to.

Results go to stdout (`out`), messages and progress to stderr (`console`), so a result can be
piped while the user still reads what happens. To a terminal, text and tables wrap at its width
at word boundaries, and a word longer than its column folds: nothing is cut off with "…". To a
pipe or a file nothing is wrapped: a line of text stays one line, and a table keeps its natural
width, one row per line, so a script's grep finds whole values. (Rich by itself would wrap both
at 80 columns there, breaking lines mid-word and cutting table cells short.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import IO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from core.errors import CqrsError
from deploy.model import QueryResult

#: how wide a table written to a pipe may grow before it wraps (it keeps its natural width)
PIPE_WIDTH = 1000


def console_for(stderr: bool = False, file: IO[str] | None = None) -> Console:
    """A console that wraps for a terminal and leaves lines whole for anything else."""
    if Console(stderr=stderr, file=file).is_terminal:
        return Console(stderr=stderr, file=file)
    return Console(stderr=stderr, file=file, width=PIPE_WIDTH, soft_wrap=True)


console = console_for(stderr=True)
out = console_for()


class FittedTable:
    """A table laid out for the width it is given, cutting no value off: the columns named in
    `wrap` wrap at their spaces, the others keep their widest value on one line (a name, a
    number). When even that does not fit, every column wraps and a word longer than its column
    folds onto the next line; rich's own layout would cut those short with "…" or crop the
    columns past the edge. None of the text is read as markup."""

    def __init__(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[str]],
        wrap: Collection[str] = (),
        title: str | None = None,
        caption: str | None = None,
    ) -> None:
        self.headers = list(headers)
        self.rows = [list(row) for row in rows]
        self.wrap = wrap
        self.title, self.caption = title, caption

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.layout(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.layout(options.max_width))

    def layout(self, width: int) -> Table:
        least = [self._least(i, header) for i, header in enumerate(self.headers)]
        fits = sum(least) + 3 * len(least) + 1 <= width  # with the padding and the rules
        shown = Table(title=self.title, caption=self.caption)
        for header, at_least in zip(self.headers, least, strict=True):
            shown.add_column(Text(header), overflow="fold", min_width=at_least if fits else None)
        for row in self.rows:
            shown.add_row(*(Text(cell) for cell in row))
        return shown

    def _least(self, i: int, header: str) -> int:
        """The width column `i` needs: its widest value, or its longest word if it wraps."""
        words = [len(word) for word in header.split()] or [1]
        if header in self.wrap:
            return max(words + [len(word) for row in self.rows for word in row[i].split()])
        return max(words + [len(row[i]) for row in self.rows])


def result_table(
    result: QueryResult, title: str | None = None, caption: str | None = None
) -> FittedTable:
    """A query's result as a table, every value as text, any column free to wrap."""
    rows = [[str(v) for v in row] for row in result.to_json()["rows"]]
    return FittedTable(result.columns, rows, result.columns, title, caption)


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
    """An error as the user reads it: its message whole (a spec's error names the field and
    the fix), none of it read as markup."""
    console.print(Text.assemble(("error:", "red"), " ", str(exc)), highlight=False)
