"""The dashboards' panels, defined once: the built-in dashboard runs the business queries, and
the provisioned Grafana dashboards are generated from the same list
(`python -m deploy.panels` rewrites `deploy/grafana/dashboards/*.json`).

Business panels query the stable views with SQL (Grafana's ClickHouse data source); health
panels query the runtime's metrics with PromQL (Grafana's Prometheus data source).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAFANA_DIR = Path(__file__).parent / "grafana" / "dashboards"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    kind: str  # timeseries, barchart, table, stat
    query: str  # SQL over `{views}` (business), or PromQL (health)
    columns: tuple[str, ...] = ()  # what a business query answers

    def sql(self, views: str) -> str:
        return self.query.format(views=views)


BUSINESS = (
    Panel(
        "revenue_by_region",
        "Revenue per minute by region and currency",
        "timeseries",
        "SELECT window_start AS time, concat(region, ' ', currency) AS series, "
        "sum(revenue) AS revenue FROM {views}.revenue_per_minute "
        "WHERE window_start >= (SELECT max(window_start) FROM {views}.revenue_per_minute) "
        "- INTERVAL 60 MINUTE GROUP BY time, series ORDER BY time, series",
        ("time", "series", "revenue"),
    ),
    Panel(
        "paid_by_region",
        "Paid orders per minute by region",
        "timeseries",
        "SELECT window_start AS time, region AS series, sum(paid_orders) AS paid_orders "
        "FROM {views}.revenue_per_minute "
        "WHERE window_start >= (SELECT max(window_start) FROM {views}.revenue_per_minute) "
        "- INTERVAL 60 MINUTE GROUP BY time, series ORDER BY time, series",
        ("time", "series", "paid_orders"),
    ),
    Panel(
        "orders_by_status",
        "Orders by status",
        "barchart",
        "SELECT status, count() AS orders, round(sum(amount), 2) AS amount "
        "FROM {views}.orders GROUP BY status ORDER BY status",
        ("status", "orders", "amount"),
    ),
    Panel(
        "top_skus",
        "Top SKUs by quantity, last 5 minutes",
        "barchart",
        "SELECT tupleElement(item, 1) AS sku, tupleElement(item, 2) AS quantity FROM "
        "(SELECT top_skus FROM {views}.top_skus_5m ORDER BY window_start DESC LIMIT 1) "
        "ARRAY JOIN top_skus AS item",
        ("sku", "quantity"),
    ),
)

HEALTH = (
    Panel("throughput", "Commands consumed per second", "timeseries",
          "sum by (deployment) (rate(cqrs_commands_consumed_total[1m]))"),
    Panel("lag", "Consumer lag (records)", "timeseries",
          "sum by (deployment) (cqrs_consumer_lag)"),
    Panel("dlq", "Rejected to the DLQ per second, by reason", "timeseries",
          "sum by (reason) (rate(cqrs_commands_rejected_total[5m]))"),
    Panel("latency", "End-to-end latency p99 (log time to written)", "timeseries",
          "histogram_quantile(0.99, sum by (le, deployment) "
          "(rate(cqrs_end_to_end_latency_seconds_bucket[5m])))"),
    Panel("insert_latency", "ClickHouse insert p95", "timeseries",
          "histogram_quantile(0.95, sum by (le, projection) "
          "(rate(cqrs_sink_insert_duration_seconds_bucket[5m])))"),
    Panel("deployments", "Deployments by state", "table",
          "max by (deployment, state) (cqrs_deployment_state) == 1"),
    Panel("progress", "Replay / catch-up progress", "timeseries",
          "cqrs_deployment_progress_ratio"),
    Panel("watermark", "Window watermark delay (s)", "timeseries",
          "max by (deployment, step) (cqrs_window_watermark_delay_seconds)"),
)  # fmt: skip


def _grafana_panel(panel: Panel, index: int, datasource: dict[str, str]) -> dict[str, Any]:
    if datasource["type"] == "prometheus":
        target = {"refId": "A", "datasource": datasource, "expr": panel.query}
    else:
        target = {
            "refId": "A",
            "datasource": datasource,
            "editorType": "sql",
            "format": 1 if panel.kind == "timeseries" else 2,
            "rawSql": panel.sql("query"),
        }
    return {
        "id": index + 1,
        "title": panel.title,
        "type": panel.kind,
        "datasource": datasource,
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "targets": [target],
    }


def grafana(
    uid: str, title: str, panels: tuple[Panel, ...], datasource: dict[str, str]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "schemaVersion": 39,
        "refresh": "5s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": [_grafana_panel(p, i, datasource) for i, p in enumerate(panels)],
    }


DASHBOARDS = {
    "business.json": grafana(
        "cqrs-business", "Orders: business view", BUSINESS,
        {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"},
    ),
    "pipeline-health.json": grafana(
        "cqrs-health", "Pipelines: health", HEALTH, {"type": "prometheus", "uid": "prometheus"}
    ),
}  # fmt: skip


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name], indent=2) + "\n"


if __name__ == "__main__":
    for name in DASHBOARDS:
        (GRAFANA_DIR / name).write_text(render(name))
        print(f"wrote {GRAFANA_DIR / name}", file=sys.stderr)
