"""What a dashboard draws, as a domain declares it: its panels, each a query and how to draw
its answer. A domain keeps its panels next to its schemas (the orders demo's are in
`examples/orders/dashboard.py`); the runtime's built-in dashboard and the Grafana generator
(`python -m deploy.panels`) take them by reference (`--panels module:ATTR`, CQRS_PANELS), so
the runtime knows nothing of any one domain. The runtime's own health panels are built from
the same type (`deploy.panels`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: how a panel can be drawn, by the built-in dashboard and by Grafana alike
KINDS = ("timeseries", "barchart", "table")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Panel:
    """One chart. A domain's panel queries the stable views with SQL written over `{views}`
    (the database that holds them: `query` unless the operator says otherwise); a timeseries
    answers `(time, series, value)` rows, a barchart `(label, value, …)` rows. `columns` are
    the names the query answers, so a test can hold the query to them."""

    key: str
    title: str
    kind: str
    query: str
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(
                f"panel key {self.key!r} must be lower-case letters, digits and '_', starting "
                f"with a letter (at most 64)"
            )
        if self.kind not in KINDS:
            raise ValueError(
                f"panel {self.key!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}"
            )

    def sql(self, views: str) -> str:
        """The query over the stable views in `views`."""
        try:
            return self.query.format(views=views)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"panel {self.key!r}: its query may hold only the placeholder {{views}} (write a "
                f"literal brace twice, {{{{ or }}}}): {exc!r}"
            ) from None


@dataclass(frozen=True)
class Panels:
    """A domain's dashboard: its title and its panels, in the order they are drawn."""

    title: str
    panels: tuple[Panel, ...]

    def __post_init__(self) -> None:
        keys = [p.key for p in self.panels]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"dashboard {self.title!r}: panel keys used twice: {twice}")
