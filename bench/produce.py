"""Fill a topic with demo orders as fast as one process can (the harness runs two at once).

python -m bench.produce <brokers> <topic> <count> <seed>
"""

from __future__ import annotations

import sys

from commands.generator import OrderGenerator
from commands.load import produce_load
from commands.producer import CommandProducer

if __name__ == "__main__":
    brokers, topic, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with CommandProducer(brokers, topic, linger_ms=50) as producer:
        stats = produce_load(producer, OrderGenerator(seed=seed, step_ms=5), count=count)
    if stats.errors:
        raise SystemExit(f"{stats.errors} sends failed")
