"""Fill a topic with demo orders; the harness runs one process per share of the partitions.

    python -m bench.produce <brokers> <topic> <count> <seed> <share> <shares> <partitions>

Each process walks the same stream (the first `count` commands of `seed`) and sends the commands
whose partition is its share, so together they write that one stream. Splitting by partition,
not by halves of the stream, keeps each partition's event times in the order one generator made
them: two generators interleaved on one partition drift apart, and the windows would reject the
slower one's commands as late.
"""

from __future__ import annotations

import itertools
import sys

from kafka.partitioner.default import murmur2

from commands.load import produce_load
from commands.producer import CommandProducer
from examples.orders.generator import OrderGenerator


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the producer's default partitioner picks for `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


if __name__ == "__main__":
    brokers, topic = sys.argv[1], sys.argv[2]
    count, seed, share, shares, partitions = map(int, sys.argv[3:8])
    stream = itertools.islice(OrderGenerator(seed=seed, step_ms=5), count)
    mine = (
        c for c in stream if partition_of(c.aggregate_id.encode(), partitions) % shares == share
    )
    with CommandProducer(brokers, topic, linger_ms=50) as producer:
        stats = produce_load(producer, mine)
    if stats.errors:
        raise SystemExit(f"{stats.errors} sends failed")
