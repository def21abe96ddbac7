"""How other processes find the runtime of a data dir: a lock only the live runtime holds, and
a small JSON file with its pid, its URL and whether it is still starting. A file whose lock is
free is stale and ignored.

A runtime takes the lock before it does anything slow (the `cqrs` entry point claims it for
`serve` and `run` before the CLI even loads) and says `starting` until its API answers. A
command that finds the lock held waits for `serving` instead of opening the embedded store
under the runtime or concluding that no runtime runs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from core.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = "runtime.lock"
INFO_NAME = "runtime.json"
STARTING = "starting"
SERVING = "serving"
#: how long a command waits for a runtime that is starting (it may itself wait for a one-off
#: `cqrs query` to let go of the embedded store)
START_WAIT_S = 120.0
#: how long a runtime retries a lock that another command is only testing
_TAKE_LOCK_S = 2.0

_claimed: dict[Path, IO[str]] = {}  # data dir -> lock taken early by this process


@dataclass(frozen=True)
class RuntimeInfo:
    pid: int
    url: str
    started_at: float
    state: str = SERVING


def read_runtime(data_dir: Path) -> RuntimeInfo | None:
    """The runtime holding the data dir, serving or still starting; None when none holds it."""
    lock = data_dir / LOCK_NAME
    if not lock.exists():
        return None
    with lock.open("r") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(data_dir)
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def find_runtime(data_dir: Path, wait_s: float = START_WAIT_S) -> RuntimeInfo | None:
    """The serving runtime of the data dir, or None when no runtime holds it. A runtime that is
    starting is waited for, up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        info = read_runtime(data_dir)
        if info is None or info.state == SERVING:
            return info
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the runtime of data dir {data_dir} (pid {info.pid}) is still starting after "
                f"{wait_s:.0f}s; see its log, or try again when it serves"
            )
        if not said:
            log.info("waiting for the runtime of %s (pid %d) to start", data_dir, info.pid)
            said = True
        time.sleep(0.1)


def claim(data_dir: Path) -> bool:
    """Take the data dir's runtime lock now, for a runtime this process is about to open (True
    if taken). Refusals are left to the runtime's own open, which explains them."""
    key = data_dir.resolve()
    if key in _claimed:
        return True
    try:
        handle = _lock(data_dir, wait_s=0.0)
    except (ConfigError, OSError):
        return False
    _claimed[key] = handle
    _write_info(data_dir, RuntimeInfo(os.getpid(), "", time.time(), STARTING))
    return True


class RuntimeFile:
    """Held by the runtime for its whole life: one runtime per data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = _claimed.pop(self.data_dir.resolve(), None)
        if handle is None:
            handle = _lock(self.data_dir, wait_s=_TAKE_LOCK_S)
        self._handle = handle
        self._started_at = time.time()
        _write_info(self.data_dir, RuntimeInfo(os.getpid(), "", self._started_at, STARTING))

    def publish(self, url: str) -> None:
        """The API answers at `url`: commands waiting for this runtime may use it now."""
        _write_info(self.data_dir, RuntimeInfo(os.getpid(), url, self._started_at, SERVING))

    def release(self) -> None:
        (self.data_dir / INFO_NAME).unlink(missing_ok=True)
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _lock(data_dir: Path, wait_s: float) -> IO[str]:
    """The exclusive lock, retried for `wait_s`: a command testing the lock holds it for an
    instant, a runtime for its whole life."""
    # Owner only: the data dir holds the token, the store's files and the recovery state.
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = (data_dir / LOCK_NAME).open("a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            handle.close()
            running = _read_info(data_dir)
            where = f" (pid {running.pid}, {running.url or running.state})" if running else ""
            raise ConfigError(
                f"a runtime already runs on data dir {data_dir}{where}; talk to it "
                f"(cqrs status, cqrs query), or give this one another CQRS_DATA_DIR"
            ) from None


def _read_info(data_dir: Path) -> RuntimeInfo:
    """What the lock holder wrote; a holder that has not written yet (or a file left by a dead
    one) is a runtime still starting."""
    try:
        info = RuntimeInfo(**json.loads((data_dir / INFO_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return RuntimeInfo(-1, "", time.time(), STARTING)
    if not _alive(info.pid):
        return RuntimeInfo(-1, "", time.time(), STARTING)
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_info(data_dir: Path, info: RuntimeInfo) -> None:
    tmp = data_dir / (INFO_NAME + ".tmp")
    tmp.write_text(json.dumps(asdict(info)))
    tmp.replace(data_dir / INFO_NAME)
