"""Reading a spec file, apart from checking it: a CLI command that only sends a spec's text to
the runtime (which checks it) imports this, not the filters and sink kinds `dataflows.spec`
loads, and both report a file they cannot read in the same words."""

from __future__ import annotations

from pathlib import Path

from core.errors import SpecError


def read_spec(path: Path) -> bytes:
    """The spec file's bytes, or a `SpecError` naming the file and why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
