"""Blue/green on a backlog: how long from `deploy init` to promote when green must first replay
N commands, and the longest any query waited during the switch.

    python -m bench.bluegreen [commands]      (default 1,000,000; starts its own broker)
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import operators.builtin  # noqa: F401
from commands.load import produce_load
from commands.log import CommandLog
from commands.producer import CommandProducer
from dataflows.spec import load_pipeline
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.runtime import Runtime
from deploy.settings import Settings
from examples.orders.generator import OrderGenerator

REPO = Path(__file__).resolve().parents[1]
JOIN = (
    "SELECT (SELECT any(_deployment) FROM query.orders), "
    "(SELECT count() FROM query.revenue_per_minute)"
)


def wait(predicate: Callable[[], bool], every_s: float = 0.5) -> None:
    while not predicate():
        time.sleep(every_s)


def main(count: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-bluegreen-"))
    broker = LocalBroker(work / "broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    try:
        with CommandLog(brokers, "commands") as log:
            log.ensure(6)
        with CommandProducer(brokers, "commands") as producer:
            produce_load(producer, OrderGenerator(seed=1, step_ms=5), count=count)
        settings = Settings(data_dir=work / "data", brokers=brokers, http_port=0)
        v1, v2 = (
            REPO / "examples" / "orders" / "specs" / "orders.yaml",
            REPO / "examples" / "orders" / "specs" / "orders_v2.yaml",
        )
        with Runtime(settings, brokers) as runtime:
            runtime.ensure(load_pipeline(v1), v1.read_text())
            wait(lambda: runtime.get_deployment("orders_v1").done >= count)
            bg = runtime.bluegreen
            gaps: list[float] = []
            stop = threading.Event()

            def read() -> None:
                last = time.monotonic()
                while not stop.is_set():
                    runtime.query(JOIN)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            started = time.monotonic()
            bg.init(v2.read_text(), str(v2))
            wait(lambda: bg.state("orders").green_behind_s == 0)
            reader = threading.Thread(target=read)
            reader.start()
            time.sleep(2)
            switch_at = time.monotonic()
            bg.promote("orders", wait_s=60)
            promoted = time.monotonic() - started
            switch_s = time.monotonic() - switch_at
            time.sleep(2)
            stop.set()
            reader.join()
    finally:
        broker.stop()
    result = {
        "commands": count,
        "init_to_promote_s": promoted,
        "promote_call_s": switch_s,
        "longest_query_gap_s": max(gaps),
        "queries_during_switch_window": len(gaps),
    }
    print(
        f"backlog {count:,}: init to promote {promoted:.1f}s; "
        f"promote itself {switch_s * 1000:.0f} ms; longest gap between queries "
        f"{max(gaps) * 1000:.0f} ms over {len(gaps)} queries"
    )
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)))
