"""Which process of a deployment's cluster writes the projection tables.

With a ClickHouse server every process builds the table sinks it lists and writes its own
share: each lists every sink partition, and Bytewax builds each partition in one worker of the
cluster (the others route that partition's rows to it). The embedded store can be opened by one
process only, process 0 (the runtime), so in the other processes a table sink lists nothing
(`Elsewhere`) and their rows cross Bytewax's exchange to process 0.
"""

from __future__ import annotations

from typing import Any

from bytewax.outputs import FixedPartitionedSink


def writes_store(clickhouse_dsn: str, process_id: int) -> bool:
    """Whether a process of a cluster builds the table sinks it is assigned. With a ClickHouse
    server every process writes its own share; the embedded store is held by process 0 alone,
    so the others route their rows to it through Bytewax's exchange (`Elsewhere`)."""
    return process_id == 0 or not clickhouse_dsn.startswith("chdb://")


class Elsewhere(FixedPartitionedSink[Any, Any]):
    """A partitioned sink whose partitions all live in another process (process 0, which
    holds the store): it routes items as the real sink does, and builds none here."""

    def __init__(self, sink: FixedPartitionedSink[Any, Any]) -> None:
        self._sink = sink

    def list_parts(self) -> list[str]:
        return []

    def part_fn(self, item_key: str) -> int:
        return self._sink.part_fn(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> Any:
        raise AssertionError(f"{for_part} of {step_id} is built in process 0 only")
