"""Orders at a fixed rate for a fixed time, in a process of its own: the latency job's producer.
A producer in the pipeline's process shares its GIL, so the pipeline's pauses would delay the
sends (and hide in the figures) and the sends would slow the pipeline; a real producer is
elsewhere. Prints a JSON line: sent, rate reached.

    python -m bench.paced_load <brokers> <topic> <rate> <seconds>
"""

from __future__ import annotations

import json
import sys
import time

from commands.load import produce_load
from commands.producer import CommandProducer
from examples.orders.generator import OrderGenerator

if __name__ == "__main__":
    brokers, topic = sys.argv[1], sys.argv[2]
    rate, seconds = int(sys.argv[3]), float(sys.argv[4])
    generator = OrderGenerator(seed=7, start_ms=int(time.time() * 1000), step_ms=1000 / rate)
    with CommandProducer(brokers, topic) as producer:
        sent = produce_load(producer, generator, rate=rate, duration_s=seconds)
    if sent.errors:
        raise SystemExit(f"{sent.errors} sends failed")
    print(json.dumps({"sent": sent.sent, "rate": sent.rate}))
