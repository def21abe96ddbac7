"""How other processes find the runtime of a data dir: a lock only the live runtime holds, and
a small JSON file with its pid and URL. A file whose lock is free is stale and ignored."""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from commands.errors import ConfigError

LOCK_NAME = "runtime.lock"
INFO_NAME = "runtime.json"


@dataclass(frozen=True)
class RuntimeInfo:
    pid: int
    url: str
    started_at: float


def find_runtime(data_dir: Path) -> RuntimeInfo | None:
    info = data_dir / INFO_NAME
    lock = data_dir / LOCK_NAME
    if not info.exists() or not lock.exists():
        return None
    with lock.open("r") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return RuntimeInfo(**json.loads(info.read_text()))
            except (OSError, ValueError, TypeError):
                return None
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


class RuntimeFile:
    """Held by the runtime for its whole life: one runtime per data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.data_dir / LOCK_NAME).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            running = find_runtime(self.data_dir)
            where = f" (pid {running.pid}, {running.url})" if running else ""
            raise ConfigError(
                f"a runtime already runs on data dir {self.data_dir}{where}; talk to it "
                f"(cqrs status, cqrs query), or give this one another CQRS_DATA_DIR"
            ) from None
        self._handle = handle

    def publish(self, url: str) -> None:
        info = RuntimeInfo(pid=os.getpid(), url=url, started_at=time.time())
        tmp = self.data_dir / (INFO_NAME + ".tmp")
        tmp.write_text(json.dumps(asdict(info)))
        tmp.replace(self.data_dir / INFO_NAME)

    def release(self) -> None:
        (self.data_dir / INFO_NAME).unlink(missing_ok=True)
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
