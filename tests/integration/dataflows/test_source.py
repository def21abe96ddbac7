"""The source's partitions against the real broker."""

import pytest

from commands.log import CommandLog, part_key
from dataflows.source import CommandLogSource
from examples.orders.generator import OrderGenerator
from tests.conftest import produce


def test_a_partition_built_at_its_stop_still_reports_where_it_stands(brokers, make_topic):
    """A bounded run resumed after it read a partition to its end reads nothing there; its
    position must still reach the metrics (in a cluster, through the child's reports), or the
    partition vanishes from `cqrs_source_next_offset` and from the placement."""
    topic = make_topic(partitions=2)
    produce(brokers, topic, OrderGenerator(seed=5).take(40))
    with CommandLog(brokers, topic) as log:
        ends = log.end_offsets()
    seen = []
    source = CommandLogSource(
        brokers, topic, stop_at=ends, on_consumed=lambda *report: seen.append(report)
    )
    try:
        for partition, end in ends.items():
            part = source.build_part("source", part_key(partition), end)
            with pytest.raises(StopIteration):
                part.next_batch()
            assert seen[-1] == (partition, 0, end, None)
    finally:
        source.close_all()
    assert len(seen) == len(ends)
