"""Progress: per deployment, projection and log partition, the highest offset whose effects are
written: the offset before the source's position, so it covers the transaction markers and
aborted records the source passed without returning them (the log can end in one). It lives in
the deployment's database beside the projections, so "caught up" can be read from the same
place as the data, by any process that can query it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from clickhouse_connect.driver.client import Client

from core.schema import Table
from sinks.ddl import create_table, qualified
from sinks.writer import TableWriter

PROGRESS = Table(
    name="_progress",
    columns=(
        ("projection", "LowCardinality(String)"),
        ("partition", "UInt16"),
        ("offset", "Int64"),
        ("updated_at", "DateTime64(3, 'UTC')"),
    ),
    order_by=("projection", "partition"),
    version="offset",
)


def create_progress_table(client: Client, database: str, cluster: str | None = None) -> None:
    """On a cluster, every host holds all of it: any one answers "caught up"."""
    client.command(create_table(database, PROGRESS, cluster))


def progress_writer(client: Client, database: str) -> TableWriter:
    """The inserts of `record_progress` into the database's progress table."""
    return TableWriter(client, database, PROGRESS)


def record_progress(writer: TableWriter, projection: str, offsets: Mapping[int, int]) -> None:
    """`offsets`: {partition: the last offset written (-1: none yet)}, one insert for all."""
    now = int(time.time() * 1000)
    rows = [(projection, partition, offset, now) for partition, offset in offsets.items()]
    writer.insert(rows, {"async_insert": 0})


def read_progress(client: Client, database: str) -> dict[str, dict[int, int]]:
    """{projection: {partition: last offset written}}."""
    result = client.query(
        f"SELECT projection, partition, max(offset) FROM {qualified(database, PROGRESS.name)} "
        f"GROUP BY projection, partition"
    )
    progress: dict[str, dict[int, int]] = {}
    for projection, partition, offset in result.result_rows:
        progress.setdefault(projection, {})[partition] = offset
    return progress
