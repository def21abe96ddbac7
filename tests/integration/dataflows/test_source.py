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


def test_an_idle_partition_polls_again_soon_then_less_often(brokers, make_topic):
    """Right after data the next fetch is usually in flight: the first empty poll is tried
    again within a millisecond, and the wait doubles up to `idle_wait` while polls stay empty
    (a whole `idle_wait` after every fetch left a catching-up partition idle). Data resets it."""
    topic = make_topic(partitions=1)
    produce(brokers, topic, OrderGenerator(seed=6).take(5))
    source = CommandLogSource(brokers, topic, idle_wait=timedelta(milliseconds=20))
    part = source.build_part("source", part_key(0), None)

    def wait_after_empty_poll() -> tuple[timedelta, timedelta]:
        """The wait the poll set, bounded from both sides by clocks read around the call."""
        before = datetime.now(UTC)
        assert part.next_batch() == []
        after = datetime.now(UTC)
        awake = part.next_awake()
        assert awake is not None
        return awake - before, awake - after

    try:
        got = 0
        deadline = time.monotonic() + 60
        while got < 5:  # the records, whatever the number of polls they take
            assert time.monotonic() < deadline, "the records never came"
            batches = part.next_batch()
            got += sum(len(polled.records) for _, polled in batches)
            if not batches:
                time.sleep(0.01)
        for expected_ms in (1, 2, 4, 8, 16, 20, 20, 20):
            longest, shortest = wait_after_empty_poll()
            expected = timedelta(milliseconds=expected_ms)
            assert shortest <= expected <= longest
        produce(brokers, topic, OrderGenerator(seed=7).take(1))
        deadline = time.monotonic() + 60
        while not part.next_batch():
            assert time.monotonic() < deadline, "the new record never came"
            time.sleep(0.01)
        longest, shortest = wait_after_empty_poll()
        assert shortest <= timedelta(milliseconds=1) <= longest
    finally:
        source.close_all()
