"""`cqrs status`: every deployment's state, lag and progress, from the running runtime, or
computed by the CLI itself from the shared store and the broker when none runs."""

from __future__ import annotations

import math

import click
import msgspec

from cli.ui import FittedTable, out
from deploy import bootstrap
from deploy.model import GONE, DeploymentStatus, Desired
from deploy.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "everything", is_flag=True, help="also retired and aborted deployments")
@click.option("--wide", is_flag=True, help="every column: exact offsets, rows, commands taken in")
@click.pass_obj
def status(settings: Settings, as_json: bool, everything: bool, wide: bool) -> None:
    """Every deployment: state, lag, how far behind and progress (--wide: also its processes
    and the partitions each reads, the rows per projection and the commands taken in and
    accepted; --json: per partition)."""
    statuses = bootstrap.service(settings).list_deployments(everything)
    if as_json:
        click.echo(msgspec.json.encode(statuses).decode())
        return
    out.print(status_table(statuses, wide))


#: the columns that fit 80 terminal columns; `--wide` adds the rest
COMPACT = ("deployment", "state", "lag", "behind", "progress")
WIDE = (*COMPACT, "procs", "partitions", "rows", "in / accepted")


def status_table(statuses: list[DeploymentStatus], wide: bool = False) -> FittedTable:
    """One row per deployment. Compact, progress is the share of its offsets done (a live
    deployment has no end: "live"); wide, the offsets themselves, the rows of each projection
    and the commands taken in and accepted."""
    rows = []
    for s in statuses:
        lag = sum(s.lag.values())
        state = s.state.value if s.desired == Desired.RUNNING else f"{s.state.value} (held)"
        if s.stage in GONE:
            state = s.stage.value  # its database is dropped: what it was doing no longer matters
        behind = f"{s.behind_s:.1f}s" if s.behind_s is not None else "?"
        row = [s.name, state, f"{lag:,}", behind, _progress(s, wide)]
        if wide:
            row += [_shape(s), _placement(s)]
            row.append(", ".join(f"{k} {v:,}" for k, v in s.rows.items()))
            row.append(_taken_in(s))
        rows.append(row)
    wrap = ("state", "partitions", "rows", "in / accepted")
    return FittedTable(WIDE if wide else COMPACT, rows, wrap=wrap)


def _shape(s: DeploymentStatus) -> str:
    """Processes, and workers in each when more than one: `2`, `2x4`."""
    return str(s.processes) if s.workers == 1 else f"{s.processes}x{s.workers}"


def _placement(s: DeploymentStatus) -> str:
    """Which process (its pid) reads which log partitions: known to the runtime that runs
    the deployment only."""
    if s.cluster is msgspec.UNSET:
        return ""
    return "; ".join(
        f"{p.process} (pid {p.pid}): {','.join(map(str, p.partitions)) or '-'}" for p in s.cluster
    )


def _progress(s: DeploymentStatus, exact: bool) -> str:
    if s.follow:
        return "live"
    if exact:
        return f"{s.done:,}/{s.total:,}"
    if not s.total:
        return "-"
    return f"{math.floor(100 * s.done / s.total)}%"  # 100% only once all is done


def _taken_in(s: DeploymentStatus) -> str:
    """Commands taken in / accepted: counted only by the runtime that runs it (else blank)."""
    if s.consumed is msgspec.UNSET:
        return ""
    accepted = 0.0 if s.accepted is msgspec.UNSET else s.accepted
    return f"{s.consumed:,.0f} / {accepted:,.0f}"


COMMANDS = (status,)
