"""The source's partitions against the real broker."""

import time
from datetime import UTC, datetime, timedelta

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


def test_a_partition_at_the_log_end_polls_every_idle_wait(brokers, make_topic):
    """Caught up, an empty poll waits `idle_wait`, before and after new data (the short waits
    are for a partition behind the log's end: unit-tested in tests/unit/dataflows)."""
    topic = make_topic(partitions=1)
    produce(brokers, topic, OrderGenerator(seed=6).take(5))
    idle = timedelta(milliseconds=20)
    source = CommandLogSource(brokers, topic, idle_wait=idle)
    part = source.build_part("source", part_key(0), None)

    def read(count: int) -> None:
        deadline = time.monotonic() + 60
        while count > 0:
            assert time.monotonic() < deadline, "the records never came"
            count -= sum(len(polled.records) for _, polled in part.next_batch())
            time.sleep(0.01)

    def wait_after_empty_poll() -> tuple[timedelta, timedelta]:
        """The wait the poll set, bounded from both sides by clocks read around the call."""
        before = datetime.now(UTC)
        assert part.next_batch() == []
        after = datetime.now(UTC)
        awake = part.next_awake()
        assert awake is not None
        return awake - before, awake - after

    try:
        read(5)
        for _ in range(3):
            longest, shortest = wait_after_empty_poll()
            assert shortest <= idle <= longest
        produce(brokers, topic, OrderGenerator(seed=7).take(1))
        read(1)
        longest, shortest = wait_after_empty_poll()
        assert shortest <= idle <= longest
    finally:
        source.close_all()
