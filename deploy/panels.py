"""The dashboards' panels: the runtime's own health panels (PromQL over its metrics, for
Grafana's Prometheus data source), a domain's panels taken by reference (SQL over the stable
views: the built-in dashboard runs them, Grafana's ClickHouse data source too), and the Grafana
dashboards generated from both:

    python -m deploy.panels --panels examples.orders.dashboard:PANELS

rewrites `deploy/grafana/dashboards/*.json` (the orders demo's, as docker-compose provisions
them). A domain's panels are code, so they are imported as a spec's modules are: only from the
project's own packages and the modules the operator allows (`--allow-module`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.panels import Panel, Panels
from deploy.settings import Settings
from operators.code import CodeRefused, allow_list, load, only

GRAFANA_DIR = Path(__file__).parent / "grafana" / "dashboards"
#: the orders demo's panels, as the setting names them
DEMO_PANELS = "examples.orders.dashboard:PANELS"
_SETTING = "CQRS_PANELS / --panels"

HEALTH = Panels("Pipelines: health", (
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
))  # fmt: skip


def load_panels(settings: Settings) -> Panels | None:
    """The domain's panels `settings.panels` names (None when it names none), each query
    checked; a reference that cannot be used is refused, naming the setting and the fix."""
    if settings.panels is None:
        return None
    fix = f"give module:ATTR of your domain's Panels (the orders demo's: {DEMO_PANELS})"
    try:
        with only(allow_list(settings.allow_modules)):
            found = load(settings.panels)
    except CodeRefused:
        module = settings.panels.partition(":")[0]
        raise ConfigError(
            f"{_SETTING}: module {module!r} is not one the runtime may import; allow it with "
            f"--allow-module {module} (CQRS_ALLOW_MODULES)"
        ) from None
    except Exception as exc:  # the domain's module failed to import: its error, and ours
        raise ConfigError(f"{_SETTING}={settings.panels!r}: {exc}; {fix}") from None
    if not isinstance(found, Panels):
        what = "nothing" if found is None else f"a {type(found).__name__}"
        raise ConfigError(
            f"{_SETTING}={settings.panels!r} names {what}, not a core.panels.Panels; {fix}"
        )
    for panel in found.panels:
        try:
            panel.sql(settings.query_database)
        except ValueError as exc:
            raise ConfigError(f"{_SETTING}={settings.panels!r}: {exc}") from None
    return found


def _grafana_panel(
    panel: Panel, index: int, datasource: dict[str, str], views: str
) -> dict[str, Any]:
    if datasource["type"] == "prometheus":
        target = {"refId": "A", "datasource": datasource, "expr": panel.query}
    else:
        target = {
            "refId": "A",
            "datasource": datasource,
            "editorType": "sql",
            "format": 1 if panel.kind == "timeseries" else 2,
            "rawSql": panel.sql(views),
        }
    return {
        "id": index + 1,
        "title": panel.title,
        "type": panel.kind,
        "datasource": datasource,
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "targets": [target],
    }


def grafana(uid: str, board: Panels, datasource: dict[str, str], views: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": board.title,
        "schemaVersion": 39,
        "refresh": "5s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": [_grafana_panel(p, i, datasource, views) for i, p in enumerate(board.panels)],
    }


def dashboards(domain: Panels | None, views: str) -> dict[str, str]:
    """Each Grafana dashboard's file name and JSON text: the health one always, the business
    one from the domain's panels when there are any."""
    boards = {
        "pipeline-health.json": grafana(
            "cqrs-health", HEALTH, {"type": "prometheus", "uid": "prometheus"}, views
        )
    }
    if domain is not None:
        boards["business.json"] = grafana(
            "cqrs-business",
            domain,
            {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"},
            views,
        )
    return {name: json.dumps(board, indent=2) + "\n" for name, board in boards.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.panels", description="Write the Grafana dashboards' JSON."
    )
    parser.add_argument("--panels", help=f"module:ATTR of the domain's Panels ({_SETTING})")
    parser.add_argument("--out", type=Path, default=GRAFANA_DIR, help="(default %(default)s)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(panels=args.panels)
        domain = load_panels(settings)
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    if domain is None:
        print(f"no domain panels ({_SETTING}): the health dashboard only", file=sys.stderr)
    for name, text in dashboards(domain, settings.query_database).items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
