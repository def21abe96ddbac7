"""Turns a resolved pipeline into a Bytewax dataflow: the thin layer around the executor.

    source ──(partition, records)──▶ pipeline (stateful, per partition) ──▶ one sink per projection
                                                                       └──▶ DLQ sink

The source emits one item per poll of a partition (its records and position), already keyed by
partition. One `stateful_batch` step runs `PartitionPipeline` for each partition and keeps its
state in Bytewax recovery under the step id `pipeline`. Each projection's output (and the DLQ's)
picks its sink's items from every batch's results: a table's sink receives, per batch,
`(partition, (first offset, last offset, newest log time, rows))`, also when the batch gave no
rows, so it always knows how far its partition has been processed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from core.envelope import Polled, Rejected
from core.errors import FailedAt
from core.outputs import BatchOutput
from dataflows.executor import NO_OBSERVERS, Observers, PartitionPipeline
from dataflows.spec import Pipeline, Projection
from sinks.dlq import DLQ

SinkFactory = Callable[[Projection], Sink[Any]]
PIPELINE_STEP = "pipeline"


def build_dataflow(
    flow_id: str,
    pipeline: Pipeline,
    source: Source[tuple[str, Polled]],
    projection_sink: SinkFactory,
    dlq_sink: Sink[Rejected],
    observers: Observers = NO_OBSERVERS,
) -> Dataflow:
    flow = Dataflow(flow_id)
    batches = op.input("source", flow, source)

    def build(resume: dict[str, Any] | None) -> _Logic:
        return _Logic(PartitionPipeline(pipeline, resume, observers))

    results = op.stateful_batch(PIPELINE_STEP, batches, build)  # type: ignore[arg-type]
    for projection in pipeline.projections:
        items = projection.output.stream(results)
        op.output(f"{projection.name}__sink", items, projection_sink(projection))
    op.output("dlq", DLQ.stream(results), dlq_sink)
    return flow


class _Logic(StatefulBatchLogic[Polled, BatchOutput, dict[str, Any]]):
    def __init__(self, pipeline: PartitionPipeline) -> None:
        self._pipeline = pipeline

    def on_batch(self, values: list[Polled]) -> tuple[Iterable[BatchOutput], bool]:
        outs = []
        for polled in values:
            try:
                outs.append(self._pipeline.run(polled))
            except Exception as exc:  # past every per-record guard: name where it happened
                first = polled.records[0].offset if polled.records else polled.next_offset
                raise FailedAt(polled.partition, first, exc) from exc
        return outs, self.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return self._pipeline.snapshot()
