"""Faults put at the sink's client boundary: a ClickHouse client whose inserts fail, stall, or
refuse chosen rows, around the real client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from sinks.store import open_client


class FaultyClient:
    """Delegates to a real client; `insert` into projection tables goes through `fault`."""

    def __init__(self, real: Any, plan: FaultPlan) -> None:
        self._real = real
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def insert(self, table: str, data: Any, **kw: Any) -> Any:
        if "_progress" not in table:
            context = kw["context"]  # the table's own, reused (sinks/writer.py)
            self._plan.before_insert(table, list(zip(*data, strict=True)), context.settings)
        return self._real.insert(table, data, **kw)


class FaultPlan:
    def __init__(
        self,
        fail_for_s: float = 0.0,
        delay_s: float = 0.0,
        refuse: Callable[[tuple[Any, ...]], bool] | None = None,
    ) -> None:
        self.fail_for_s = fail_for_s
        # the outage starts at the first insert: a busy machine may take seconds to get a
        # deployment there
        self.fail_until: float | None = None
        self.delay_s = delay_s
        self.refuse = refuse
        self.attempts: list[tuple[str, int, str]] = []  # (table, rows, token)
        self.failures = 0
        self._lock = threading.Lock()

    def factory(self) -> Callable[[str], FaultyClient]:
        return lambda dsn: FaultyClient(open_client(dsn), self)

    def before_insert(self, table: str, rows: Any, settings: dict[str, Any]) -> None:
        with self._lock:
            self.attempts.append((table, len(rows), settings.get("insert_deduplication_token", "")))
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            if self.fail_until is None:
                self.fail_until = time.monotonic() + self.fail_for_s
        if time.monotonic() < self.fail_until:
            with self._lock:
                self.failures += 1
            raise OperationalError("injected: ClickHouse is unreachable")
        if self.refuse is not None and any(self.refuse(row) for row in rows):
            raise DatabaseError(
                "Code: 53. DB::Exception: injected: Type mismatch in a row. (TYPE_MISMATCH)"
            )
