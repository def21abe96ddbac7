"""What `cqrs status` shows for each deployment: its state, how far it has written in each
log partition, the lag behind the log's end (in commands, and in time: how long the oldest
command it has not applied has been on the log), and the rows of its projections.

Progress rows hold, per partition, the offset before the source's position (see
`sinks.progress`): the position passes transaction markers and aborted records, so a
deployment whose log ends in markers shows lag 0 and done == total. Every partition of the log
counts, also one added after the deployment started.

Everything comes from shared places (the registry, the progress rows, the broker), so a status
can be computed by the runtime or, when none runs, by the CLI itself.
"""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client

from deploy.model import GONE, DeploymentStatus
from deploy.records import Record
from deploy.specs import Specs
from sinks.ddl import literal, qualified
from sinks.progress import PROGRESS, read_progress

EndOffsets = Callable[[str], dict[int, int]]  # topic -> end offsets
#: (topic, next offsets) -> seconds since the log time of the record at each offset (None:
#: the broker did not say)
Behind = Callable[[str, dict[int, int]], dict[int, float | None]]


def listed(records: list[Record], everything: bool = False) -> list[Record]:
    """In the order people read them, by pipeline and then version as a number (orders_v2
    before orders_v10); retired and aborted deployments only with `everything`."""
    shown = [r for r in records if everything or r.stage not in GONE]
    return sorted(shown, key=lambda r: (r.pipeline, r.version, r.name))


def behind(
    topic: str, nexts: dict[int, int], ends: dict[int, int], measure: Behind
) -> dict[int, float | None]:
    """Per partition, how long the first record not applied yet has been on the log (its log
    time to now); 0 where every record is applied. Unlike a count of records, this does not
    grow with the producers' rate: a deployment that keeps up stays within its flush delay of
    0, and one that has not applied a backlog loaded in a second is still as old as the
    backlog. None where the broker did not answer in time."""
    pending = {p: nexts.get(p, 0) for p, end in ends.items() if nexts.get(p, 0) < end}
    seconds = measure(topic, pending) if pending else {}
    return {
        p: None if p in seconds and seconds[p] is None else round(seconds.get(p) or 0.0, 3)
        for p in ends
    }


def written(client: Client, database: str, projections: list[str]) -> dict[int, int]:
    """Per partition, the next offset every table projection has written up to (min)."""
    if not _has_table(client, database, PROGRESS.name):
        return {}
    progress = read_progress(client, database)
    partitions = {p for by_part in progress.values() for p in by_part}
    return {
        p: min(progress.get(name, {}).get(p, -1) for name in projections) + 1 for p in partitions
    }


def describe(
    client: Client,
    record: Record,
    end_offsets: EndOffsets,
    specs: Specs,
    measure: Behind | None = None,
) -> DeploymentStatus:
    """The status of one deployment; with `measure`, also how far behind the head of the log
    it is in time (`behind`, per partition, and `behind_s`, the most; None when a partition
    did not answer), else those are None."""
    pipeline = specs.of(record)
    tables = [t.name for t in pipeline.tables]
    done_to = written(client, record.name, tables)
    ends = end_offsets(record.topic)
    partitions = sorted({*record.start, *done_to, *ends})
    nexts = {p: max(done_to.get(p, 0), record.start.get(p, 0)) for p in partitions}
    target = record.stop if record.stop is not None else ends
    lag = {p: max(0, ends.get(p, 0) - nexts.get(p, 0)) for p in ends}
    late = behind(record.topic, nexts, ends, measure) if measure is not None else None
    total = sum(max(0, target.get(p, 0) - record.start.get(p, 0)) for p in target)
    done = sum(
        max(0, min(nexts.get(p, 0), target.get(p, 0)) - record.start.get(p, 0)) for p in target
    )
    rows = {}
    for name in tables:
        if _has_table(client, record.name, name):
            rows[name] = client.command(f"SELECT count() FROM {qualified(record.name, name)}")
    return DeploymentStatus(
        name=record.name,
        pipeline=record.pipeline,
        version=record.version,
        state=record.state,
        desired=record.desired,
        stage=record.stage,
        error=record.error or None,
        follow=record.stop is None,
        start=record.start,
        stop=record.stop,
        next=nexts,
        end=ends,
        lag=lag,
        behind=late,
        behind_s=_most(late),
        done=done,
        total=total,
        rows=rows,
        processes=record.processes,
        workers=record.workers,
    )


def _most(late: dict[int, float | None] | None) -> float | None:
    if late is None or None in late.values():
        return None
    return max((v for v in late.values() if v is not None), default=0.0)


def _has_table(client: Client, database: str, table: str) -> bool:
    found = client.command(
        f"SELECT count() FROM system.tables WHERE database = {literal(database)} "
        f"AND name = {literal(table)}"
    )
    return bool(int(found))
