"""A deployment's Bytewax recovery directory: how many partitions a new one gets, and the check
that an existing one is whole before a run resumes from it.

Bytewax fixes the number of recovery partitions when the directory is made, and each worker
of a cluster writes the snapshots of its keys to the partition they hash to; a resume on any
number of processes reads the same set (Bytewax rescales from it). A new directory gets one
partition per process of the largest cluster allowed, so a deployment that grows keeps its
snapshot writes spread. A directory made before (one partition) stays resumable: the count is
read from the partitions themselves.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from core.errors import RecoveryError
from deploy.cluster import MAX_PROCESSES

#: recovery partitions of a new directory
PARTITIONS = MAX_PROCESSES


def part_count(directory: Path) -> int | None:
    """How many partitions the directory was made with (from any partition's own record),
    None when no partition is left to say."""
    for part in sorted(directory.glob("part-*.sqlite3")):
        with contextlib.suppress(sqlite3.Error):
            with contextlib.closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True)) as db:
                row = db.execute("SELECT part_count FROM parts LIMIT 1").fetchone()
            if row is not None:
                return int(row[0])
    return None


def check(name: str, directory: Path) -> None:
    """Refuse a directory that lacks a partition: resuming would redo or skip commands."""
    count = part_count(directory) or 1
    missing = [f"part-{i}.sqlite3" for i in range(count)]
    missing = [p for p in missing if not (directory / p).exists()]
    if missing:
        raise RecoveryError(
            f"{name}: recovery partition(s) {missing} are missing from {directory}; resuming "
            f"would reprocess or skip commands. Restore them, or rebuild the projections with "
            f"a replay into a new database"
        )
