"""The one place that opens ClickHouse: a clickhouse-connect client from a DSN.

`chdb://<dir>` is the engine embedded in this process; chDB allows one process per directory
and one directory per process. So opening it takes an exclusive lock file beside the directory
that names the holder: a second process gets a clear error pointing at the process that holds
the store (and at its query endpoint), never a half-initialised engine or a second copy.

The embedded engine is started by the first connection of the process, with the settings in
`ENGINE_SETTINGS`. chDB's defaults are a server's, sized for a host it owns: up to a thousand
idle threads kept in the global pool (each holding three `/proc` files open for its metrics),
5 GiB mark caches. A runtime shares its host and lives through many deploys, so the project
bounds them (README, "The engine's pools", has the figures of `python -m bench.engine_pools`).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import IO

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from commands.errors import StoreError

#: server settings of the embedded engine (a ClickHouse server keeps its own configuration)
ENGINE_SETTINGS: dict[str, str] = {
    # idle threads the global pool keeps for later queries: chDB's default is 1,000
    "max_thread_pool_free_size": "16",
    # marks of the parts read lately: 5 GiB by default; the projections' marks are a few MB
    "mark_cache_size": str(64 * 1024 * 1024),
    # which marks a WHERE condition filtered out, per part: 100 MiB by default
    "query_condition_cache_size": str(16 * 1024 * 1024),
    # code compiled for expressions evaluated often: 128 MiB by default
    "compiled_expression_cache_size": str(32 * 1024 * 1024),
}

_lock = threading.Lock()
_embedded: tuple[Path, IO[str]] | None = None  # the one chDB directory this process holds


class StoreBusy(StoreError):
    """The embedded store is held by another process (for now: it may be a short query)."""


def open_client(dsn: str, wait_s: float = 0.0) -> Client:
    """A client for the DSN; embedded stores are opened (and locked) once per process, waiting
    up to `wait_s` for another process (a one-off `cqrs query`, say) to let go of it."""
    if dsn.startswith("chdb://"):
        path = Path(dsn.removeprefix("chdb://")).resolve()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                _hold_embedded(path)
                break
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        return _connect(f"chdb://{path}", chdb_options=ENGINE_SETTINGS)
    # No session id: one client is shared by threads, and a session would serialise them.
    return _connect(dsn, autogenerate_session_id=False)


def embedded_holder(path: Path) -> int | None:
    """The pid holding the embedded store at `path`, or None if no process holds it."""
    lock_file = _lock_path(path.resolve())
    if not lock_file.exists():
        return None
    with lock_file.open("r") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def _connect(dsn: str, **options: object) -> Client:
    try:
        return clickhouse_connect.get_client(dsn=dsn, **options)
    except ClickHouseError as exc:
        raise StoreError(f"cannot open ClickHouse at {dsn}: {exc}") from exc


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _hold_embedded(path: Path) -> None:
    global _embedded
    with _lock:
        if _embedded is not None:
            held, _ = _embedded
            if held != path:
                raise StoreError(
                    f"this process already has the embedded store {held} open; chDB allows one "
                    f"directory per process, so {path} needs a process of its own"
                )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = _lock_path(path).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreBusy(
                f"the embedded ClickHouse store {path} is open in process {holder}; chDB allows "
                f"one process per directory. Query it through that process (`cqrs query` does "
                f"so when it is the runtime), or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _embedded = (path, handle)
