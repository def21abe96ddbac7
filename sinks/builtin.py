"""Imports every built-in sink kind, so their registrations are in `SINKS`; lists them."""

from sinks import clickhouse, dlq, topic  # noqa: F401 - imported for their registrations
from sinks.output import SINKS, SinkKind


def list_sinks() -> list[SinkKind]:
    """Every registered sink kind with its parameters and docs (what `cqrs sinks` prints)."""
    return SINKS.describe()
