"""Scenario 3 (log time → visible in the stable view at a fixed rate) for several sink flush
delays, side by side on one broker in one run: what the flush delay buys against the rest.
With `--against DIR` (another checkout, as for `bench.memory`), each delay runs there too,
alternating with this checkout, `--rounds` times.

    python -m bench.latency [--rate N] [--seconds N] [--delays-ms 250,100] [--against DIR]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import yaml

from bench.__main__ import ORDERS_SPEC, REPO, WORK
from bench.memory import run
from deploy.broker import KafkaDistribution, LocalBroker


def spec_with_delay(delay_ms: int) -> Path:
    """The orders v1 spec with every projection's sink flushing after `delay_ms`."""
    spec = yaml.safe_load((REPO / ORDERS_SPEC).read_text())
    for projection in spec["projections"]:
        projection["sink"] = {**projection.get("sink", {}), "max_delay_ms": delay_ms}
    path = WORK / f"orders-delay-{delay_ms}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def main(
    rate: int, seconds: int, delays: list[int], against: Path | None, rounds: int
) -> dict[str, dict[str, Any]]:
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "latency-broker", ignore_errors=True)  # a fresh log: this run's topics
    broker = LocalBroker(WORK / "latency-broker", KafkaDistribution(REPO / ".cache"))
    brokers = broker.start().bootstrap
    checkouts = {"this checkout": REPO} | ({str(against): against.resolve()} if against else {})
    results = {}
    try:
        for n in range(rounds):
            for delay in delays:
                for label, checkout in checkouts.items():
                    name = f"{label}, max_delay_ms {delay}, round {n + 1}"
                    args = {
                        "brokers": brokers,
                        "topic": f"latency-{len(results)}",
                        "spec": str(spec_with_delay(delay)),
                        "rate": rate,
                        "seconds": seconds,
                    }
                    results[name] = run(checkout, f"latency-{len(results)}", "latency", args)
    finally:
        broker.stop()
    for name, r in results.items():
        print(
            f"{name}: {r['achieved_rate']:,} cmd/s, p50 {r['p50_s']} s, "
            f"p99 {r['p99_s']} s, max {r['max_s']} s ({r['batches']:,} batches; p99 by tenth "
            f"of the run: {r.get('p99_s_by_tenth')})"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.latency")
    parser.add_argument("--rate", type=int, default=7_150)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--delays-ms", default="250,100")
    parser.add_argument("--against", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    a = parser.parse_args()
    main(a.rate, a.seconds, [int(d) for d in a.delays_ms.split(",")], a.against, a.rounds)
