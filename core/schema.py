"""The shape of a projection table: what a projector declares and a sink writes.

Only the description lives here, with the check of a plain name; turning it into SQL is the
sinks' (`sinks.ddl`), so a filter can declare its table without importing a sink.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import StoreError

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def is_ident(name: str) -> bool:
    """A plain name: letters, digits and '_', starting with a letter or '_' (the whole of it)."""
    return isinstance(name, str) and _IDENT.fullmatch(name) is not None


@dataclass(frozen=True)
class Table:
    """A projection table: columns in insert order, its sorting key, and the version column that
    makes it a ReplacingMergeTree (the row with the highest version of a key wins)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    order_by: tuple[str, ...]
    version: str | None = None
    settings: dict[str, int | str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def __post_init__(self) -> None:
        names = self.column_names
        for key in (*self.order_by, *((self.version,) if self.version else ())):
            if key not in names:
                raise StoreError(f"table {self.name}: key column {key!r} is not among {names}")
