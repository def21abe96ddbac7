"""Pipeline metrics, made by one factory that takes a registry (tests pass a fresh one).

Families are created once per registry; each deployment gets children labelled with its
pipeline, version and deployment name. Counters are bumped per batch, not per command.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LABELS = ("pipeline", "version", "deployment")


class Metrics:
    """The metric families of one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.consumed = Counter(
            "cqrs_commands_consumed",
            "Records read from the command log",
            [*_LABELS, "partition"],
            registry=registry,
        )
        self.next_offset = Gauge(
            "cqrs_source_next_offset",
            "Next offset the source will read",
            [*_LABELS, "partition"],
            registry=registry,
        )
        self.lag = Gauge(
            "cqrs_consumer_lag",
            "Records in the log partition the source has not read yet",
            [*_LABELS, "partition"],
            registry=registry,
        )
        self.latency = Histogram(
            "cqrs_end_to_end_latency_seconds",
            "From a command's log time to its rows being written, per batch (its newest record)",
            _LABELS,
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60, 300),
        )
        self.state = Gauge(
            "cqrs_deployment_state",
            "1 for the state the deployment is in (running, stopped, completed, failed)",
            [*_LABELS, "state"],
            registry=registry,
        )
        self.progress = Gauge(
            "cqrs_deployment_progress_ratio",
            "Offsets written over offsets to write: of its range for a replay, of the log so far "
            "for a live deployment (1 is caught up)",
            _LABELS,
            registry=registry,
        )
        self.watermark_delay = Gauge(
            "cqrs_window_watermark_delay_seconds",
            "Wall-clock time minus a windowed step's watermark (newest event time) per partition",
            [*_LABELS, "step", "partition"],
            registry=registry,
        )
        self.rejected = Counter(
            "cqrs_commands_rejected",
            "Records refused by a step, sent to the DLQ",
            [*_LABELS, "step", "reason"],
            registry=registry,
        )
        self.skipped = Counter(
            "cqrs_commands_skipped",
            "Commands left out on purpose, by why (filtered, deduplicated)",
            [*_LABELS, "step", "why"],
            registry=registry,
        )
        self.accepted = Counter(
            "cqrs_commands_accepted",
            "Commands that passed every shared filter",
            _LABELS,
            registry=registry,
        )
        self.step_items = Counter(
            "cqrs_step_items",
            "Items through each step, by direction (in, out, rejected, skipped)",
            [*_LABELS, "step", "direction"],
            registry=registry,
        )
        self.projected = Counter(
            "cqrs_projection_rows_written",
            "Rows inserted into projection tables",
            [*_LABELS, "projection"],
            registry=registry,
        )
        self.insert_retries = Counter(
            "cqrs_sink_insert_retries",
            "Inserts into ClickHouse that failed for the infrastructure and were retried",
            [*_LABELS, "projection"],
            registry=registry,
        )
        self.insert_seconds = Histogram(
            "cqrs_sink_insert_duration_seconds",
            "Time to insert one batch into ClickHouse",
            [*_LABELS, "projection"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.insert_rows = Histogram(
            "cqrs_sink_insert_rows",
            "Rows per insert into ClickHouse",
            [*_LABELS, "projection"],
            registry=registry,
            buckets=(1, 10, 100, 1000, 5000, 10_000, 25_000, 50_000, 100_000),
        )

    def for_deployment(self, pipeline: str, version: int, deployment: str) -> DeploymentMetrics:
        return DeploymentMetrics(self, (pipeline, str(version), deployment))

    def forget(self, deployment: str) -> None:
        """Drop every series of a deployment that is gone: a runtime that lives through many
        deploys would otherwise keep (and export) the series of each one."""
        for family in vars(self).values():
            if isinstance(family, Counter | Gauge | Histogram):
                family.remove_by_labels({"deployment": deployment})


class DeploymentMetrics:
    """One deployment's view of the families: the callbacks the source, steps and sinks call."""

    def __init__(self, metrics: Metrics, labels: tuple[str, str, str]) -> None:
        self._m = metrics
        self._labels = labels

    def on_consumed(self, partition: int, records: int, next_offset: int, lag: int | None) -> None:
        part = str(partition)
        if records:
            self._m.consumed.labels(*self._labels, part).inc(records)
        self._m.next_offset.labels(*self._labels, part).set(next_offset)
        if lag is not None:
            self._m.lag.labels(*self._labels, part).set(lag)

    def on_written(self, log_times_ms: list[int]) -> None:
        now = time.time()
        histogram = self._m.latency.labels(*self._labels)
        for ts in log_times_ms:
            histogram.observe(max(0.0, now - ts / 1000))

    def on_watermark(self, step: str, partition: int, watermark_ms: int) -> None:
        delay = max(0.0, time.time() - watermark_ms / 1000)
        self._m.watermark_delay.labels(*self._labels, step, str(partition)).set(delay)

    def set_state(self, state: str) -> None:
        for known in ("running", "stopped", "completed", "failed"):
            self._m.state.labels(*self._labels, known).set(1 if known == state else 0)

    def set_progress(self, ratio: float) -> None:
        self._m.progress.labels(*self._labels).set(ratio)

    def on_rejected(self, step: str, reason: str, count: int = 1) -> None:
        self._m.rejected.labels(*self._labels, step, reason).inc(count)

    def on_skipped(self, step: str, why: str, count: int) -> None:
        self._m.skipped.labels(*self._labels, step, why).inc(count)

    def on_accepted(self, count: int) -> None:
        if count:
            self._m.accepted.labels(*self._labels).inc(count)

    def on_step(self, step: str, ins: int, outs: int, rejected: int, skipped: int) -> None:
        items = self._m.step_items
        for direction, n in (
            ("in", ins),
            ("out", outs),
            ("rejected", rejected),
            ("skipped", skipped),
        ):
            if n:
                items.labels(*self._labels, step, direction).inc(n)

    def on_retry(self, projection: str, error: BaseException) -> None:
        self._m.insert_retries.labels(*self._labels, projection).inc()

    def on_flush(self, projection: str, rows: int, seconds: float) -> None:
        self._m.projected.labels(*self._labels, projection).inc(rows)
        self._m.insert_seconds.labels(*self._labels, projection).observe(seconds)
        self._m.insert_rows.labels(*self._labels, projection).observe(rows)
