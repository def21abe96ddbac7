"""The orders demo's dashboard: revenue, paid orders, statuses and top SKUs, over the stable
views of the orders pipeline's projections. The runtime draws them when told where they are
(`cqrs serve --panels examples.orders.dashboard:PANELS`, CQRS_PANELS; `cqrs demo` does it
itself), and `python -m deploy.panels` writes Grafana's business dashboard from them."""

from __future__ import annotations

from core.panels import Panel, Panels

# The last hour of windows the log holds, not of the wall clock: a replay of old orders draws.
_LAST_HOUR = (
    "WHERE window_start >= (SELECT max(window_start) FROM {views}.revenue_per_minute) "
    "- INTERVAL 60 MINUTE"
)

PANELS = Panels(
    "Orders: business view",
    (
        Panel(
            "revenue_by_region",
            "Revenue per minute by region and currency",
            "timeseries",
            "SELECT window_start AS time, concat(region, ' ', currency) AS series, "
            f"sum(revenue) AS revenue FROM {{views}}.revenue_per_minute {_LAST_HOUR} "
            "GROUP BY time, series ORDER BY time, series",
            ("time", "series", "revenue"),
        ),
        Panel(
            "paid_by_region",
            "Paid orders per minute by region",
            "timeseries",
            "SELECT window_start AS time, region AS series, sum(paid_orders) AS paid_orders "
            f"FROM {{views}}.revenue_per_minute {_LAST_HOUR} "
            "GROUP BY time, series ORDER BY time, series",
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
    ),
)
