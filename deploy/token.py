"""The API's bearer token: made at a runtime's first start, kept in `<data dir>/token` with
mode 0600, read by the CLI of the same user without anyone typing it (`CQRS_TOKEN` overrides).

The file is created with its final mode by `os.open` (never world-readable, not even between a
create and a chmod) under a temporary name, then renamed into place, so a reader sees the whole
token or none. A token file that others could read or that another user owns is not trusted:
the runtime replaces it with a new token.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def ensure_token(path: Path) -> str:
    """The token in `path`, made now if there is none usable."""
    token = _read_private(path)
    if token:
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return token


def read_token(path: Path) -> str | None:
    """What the CLI sends: the token of the data dir's runtime, if it made one."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _read_private(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            log.warning("%s is not a regular file; making a new token", path)
            return None
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            log.warning(
                "%s could be read by others (mode %o, owner %d); it is replaced by a new token",
                path, stat.S_IMODE(info.st_mode), info.st_uid,
            )  # fmt: skip
            return None
        return f.read().strip() or None
