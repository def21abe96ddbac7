"""Load generation: send commands at a target rate for a count or a duration, reporting progress.

Pacing sleeps in small slices against a schedule (not per command), so the achieved rate holds
even when a single send is slower than the gap between commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from commands.producer import CommandProducer
from core.envelope import Command


@dataclass
class LoadStats:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def produce_load(
    producer: CommandProducer,
    commands: Iterable[Command],
    *,
    rate: float | None = None,
    count: int | None = None,
    duration_s: float | None = None,
    on_progress: Callable[[LoadStats], None] | None = None,
    progress_every_s: float = 0.5,
    should_stop: Callable[[], bool] = lambda: False,
) -> LoadStats:
    """Send until `count` commands or `duration_s` seconds (whichever comes first; neither means
    forever); `rate` in commands per second, `None` for as fast as the producer goes."""
    stats = LoadStats()
    start = time.monotonic()
    next_report = start + progress_every_s
    for command in commands:
        if count is not None and stats.sent >= count:
            break
        now = time.monotonic()
        if (duration_s is not None and now - start >= duration_s) or should_stop():
            break
        if rate:
            due = start + stats.sent / rate
            if due > now:
                time.sleep(due - now)
        producer.send(command)
        stats.sent += 1
        if on_progress is not None and now >= next_report:
            _snapshot(stats, producer, start)
            on_progress(stats)
            next_report = now + progress_every_s
    producer.flush()
    _snapshot(stats, producer, start)
    if on_progress is not None:
        on_progress(stats)
    return stats


def _snapshot(stats: LoadStats, producer: CommandProducer, start: float) -> None:
    stats.acked = producer.acked
    stats.errors = producer.errors
    stats.elapsed_s = time.monotonic() - start
