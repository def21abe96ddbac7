"""Where results go: ClickHouse projections (the query side) and Kafka topics (DLQ, downstream)."""
