"""What the built-in dashboard draws: the domain's panels' rows, from the stable views (a panel
whose view the active deployment does not serve says so; no panels when the runtime was given
none, `deploy.panels.load_panels`), and each deployment's health, from its status and the
runtime's own metrics (read back from its Prometheus registry, so the page and a Prometheus
scrape show the same numbers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from core.errors import CqrsError
from core.panels import Panels
from deploy.model import Dashboard, DeploymentHealth, DeploymentStatus, PanelData, QueryResult
from deploy.records import Record


def assemble_dashboard(
    query: Callable[[str], QueryResult],
    statuses: list[tuple[DeploymentStatus, Record]],
    metrics_registry: CollectorRegistry,
    views: str,
    domain: Panels | None,
) -> Dashboard:
    panels = []
    for panel in domain.panels if domain is not None else ():
        entry = PanelData(key=panel.key, title=panel.title, kind=panel.kind)
        try:
            entry.rows = query(panel.sql(views)).to_json()["rows"]
        except CqrsError as exc:
            missing = "UNKNOWN_TABLE" in str(exc) or "does not exist" in str(exc)
            entry.error = "not served by the active deployment" if missing else str(exc)
        panels.append(entry)
    deployments = [
        DeploymentHealth(
            **msgspec.structs.asdict(status),
            rejected=by_label(metrics_registry, "cqrs_commands_rejected_total", record, "reason"),
            latency_p99=quantile(
                metrics_registry, "cqrs_end_to_end_latency_seconds_bucket", record, 0.99
            ),
        )
        for status, record in statuses
    ]
    return Dashboard(panels, deployments)


def metric_total(metrics_registry: CollectorRegistry, metric: str, record: Record) -> float:
    """A counter of the deployment, summed over its other labels."""
    return sum(s.value for s in _samples(metrics_registry, metric, record))


def by_label(
    metrics_registry: CollectorRegistry, metric: str, record: Record, label: str
) -> dict[str, float]:
    totals: dict[str, float] = {}
    for s in _samples(metrics_registry, metric, record):
        totals[s.labels[label]] = totals.get(s.labels[label], 0.0) + s.value
    return totals


def quantile(
    metrics_registry: CollectorRegistry, buckets: str, record: Record, q: float
) -> float | None:
    """The upper bound of the histogram bucket holding the q-quantile."""
    counts = sorted(
        (float(s.labels["le"]), s.value) for s in _samples(metrics_registry, buckets, record)
    )
    count = counts[-1][1] if counts else 0
    if not count:
        return None
    return next(le for le, n in counts if n >= q * count)


def _samples(metrics_registry: CollectorRegistry, metric: str, record: Record) -> list[Any]:
    labels = {
        "pipeline": record.pipeline,
        "version": str(record.version),
        "deployment": record.name,
    }
    return [
        s
        for family in metrics_registry.collect()
        for s in family.samples
        if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())
    ]
