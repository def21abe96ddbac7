"""The one place that opens ClickHouse: a clickhouse-connect client from a DSN.

`chdb://<dir>` is the engine embedded in this process; chDB allows one process per directory
and one directory per process. So opening it takes an exclusive lock file beside the directory
that names the holder: a second process gets a clear error pointing at the process that holds
the store (and at its query endpoint), never a half-initialised engine or a second copy.

The embedded engine starts with the first connection of the process, with `ENGINE_SETTINGS`.
chDB's defaults are a server's, sized for a host it owns: the global thread pool keeps up to a
thousand idle threads (each holding three `/proc` files open for its metrics), and one DROP of
a table with a few hundred parts starts 128 threads to delete them, which then stay; the mark
caches may grow to 5 GiB. A runtime shares its host and lives through many deploys, so the
project bounds them. chDB 4.4 sizes its pools from a configuration file it finds in the working
directory when the engine starts, and ignores pool sizes given on the connection (they show in
`system.server_settings` and change nothing): so the first connection starts the engine from a
directory holding that file. README ("The engine's pools") has the figures of
`python -m bench.engine_pools`.

chDB shuts its engine down when the process's last connection to it closes, and starts a new
one, with a server's defaults, at the next connection. So the engine is held open from its start
to the process's end by a connection of this module's own: a bench job's last sink
closing no longer tears it down mid-process (the teardown reads back ~50 MB of the library
that `_trim_library` gave back: it decided a bounded run's peak RSS when its sinks held the last
connections; BENCHMARKS.md "Peak RSS"), and a connection after that no longer meets an engine
without `ENGINE_SETTINGS` and the page-out.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import IO, Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.errors import StoreError

#: server settings of the embedded engine (a ClickHouse server keeps its own configuration)
ENGINE_SETTINGS: dict[str, str] = {
    # idle threads the global pool keeps for later queries, beyond its busy ones: 1,000
    "max_thread_pool_free_size": "16",
    # threads that delete the parts of a dropped table: 128
    "max_parts_cleaning_thread_pool_size": "8",
    # marks of the parts read lately: 5 GiB; the projections' marks take kilobytes
    "mark_cache_size": str(64 * 1024 * 1024),
    # which marks a WHERE condition filtered out, per part: 100 MiB
    "query_condition_cache_size": str(16 * 1024 * 1024),
    # code compiled for expressions evaluated often: 128 MiB
    "compiled_expression_cache_size": str(32 * 1024 * 1024),
}

#: give back the pages of chDB's library that starting the engine read in (`_trim_library`)
TRIM_LIBRARY = True
_MADV_PAGEOUT = 21  # Linux 5.4+

_lock = threading.Lock()
_embedded: tuple[Path, IO[str]] | None = None  # the one chDB directory this process holds
#: this process's own connection, made when it started the engine with ENGINE_SETTINGS: it
#: keeps the engine up until the process ends (see above); None until then
_held: Client | None = None


class StoreBusy(StoreError):
    """The embedded store is held by another process (for now: it may be a short query)."""


def open_client(dsn: str, wait_s: float = 0.0, settings: dict[str, Any] | None = None) -> Client:
    """A client for the DSN; embedded stores are opened (and locked) once per process, waiting
    up to `wait_s` for another process (a one-off `cqrs query`, say) to let go of it.
    `settings` are the session's (set in order on an embedded one, sent with every request to
    a server)."""
    if dsn.startswith("chdb://"):
        path = Path(dsn.removeprefix("chdb://")).resolve()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with _lock:
                    _hold_embedded(path)
                    if _held is None:
                        return _start_engine(path, settings)
                break
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        return _connect(f"chdb://{path}", settings=settings)
    # No session id: one client is shared by threads, and a session would serialise them.
    return _connect(dsn, autogenerate_session_id=False, settings=settings)


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


def _start_engine(path: Path, settings: dict[str, Any] | None) -> Client:
    """The first connection, made from a directory holding the engine's configuration file:
    chDB reads it (and sizes its pools) only when the engine starts. The directory is changed
    back at once; nothing else of this process runs yet when it opens its store. The session
    settings are the caller's, as for any later connection (a reader's `readonly`)."""
    global _held
    root = ET.Element("clickhouse")
    for name, value in ENGINE_SETTINGS.items():
        ET.SubElement(root, name).text = value
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="cqrs-engine-") as config_dir:
        (Path(config_dir) / "config.xml").write_text(ET.tostring(root, encoding="unicode"))
        os.chdir(config_dir)
        try:
            client = _connect(f"chdb://{path}", settings=settings)
        finally:
            os.chdir(previous)
    _held = _connect(f"chdb://{path}")
    if TRIM_LIBRARY:
        _trim_library()
    return client


def _trim_library() -> None:
    """Ask the kernel to take back the pages of chDB's library that are in memory now.

    Loading the library (530 MB) and starting the engine read ~250 MB of its code and constants
    into the process (readahead around what its initialisers touch), of which the engine then
    runs a fraction: paged out, the rest no longer counts against the process or its cgroup,
    and what the engine runs comes back on first use (`python -m bench.engine_memory` has the
    figures). Only read-only mappings of the library file are advised, and the kernel takes only
    the pages no other process maps; an older kernel refuses the advice and nothing changes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1] or not fields[5].endswith("_chdb.abi3.so"):
            continue
        start, end = (int(address, 16) for address in fields[0].split("-"))
        libc.madvise(start, end - start, _MADV_PAGEOUT)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _hold_embedded(path: Path) -> None:
    """Take the store's lock file (the caller holds `_lock`)."""
    global _embedded
    if _embedded is not None:
        held, _ = _embedded
        if held != path:
            raise StoreError(
                f"this process already has the embedded store {held} open; chDB allows one "
                f"directory per process, so {path} needs a process of its own"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the data dir: owner only
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
