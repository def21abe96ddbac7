"""`cqrs status`: every deployment's state, lag and progress, from the running runtime, or
computed by the CLI itself from the shared store and the broker when none runs."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from cli.ui import FittedTable, out
from commands.log import CommandLog
from deploy.bootstrap import resolve_brokers
from deploy.legacy import connect, describe
from deploy.model import GONE
from deploy.records import Records
from deploy.runtime_file import find_runtime
from deploy.settings import Settings
from deploy.status import listed
from operators.code import allow_list
from sinks.store import open_client


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "everything", is_flag=True, help="also retired and aborted deployments")
@click.option("--wide", is_flag=True, help="every column: exact offsets, rows, commands taken in")
@click.pass_obj
def status(settings: Settings, as_json: bool, everything: bool, wide: bool) -> None:
    """Every deployment: state, lag, how far behind and progress (--wide: also the rows per
    projection and the commands taken in and accepted; --json: per partition)."""
    runtime_info = find_runtime(settings.data_dir) if settings.embedded else None
    if runtime_info is not None:
        statuses = connect(settings, runtime_info.url).deployments(everything)
    else:
        statuses = _without_runtime(settings, everything)
    if as_json:
        click.echo(json.dumps(statuses))
        return
    out.print(status_table(statuses, wide))


def _without_runtime(settings: Settings, everything: bool) -> list[dict[str, Any]]:
    client = open_client(settings.clickhouse_dsn)
    registry = Records(client, settings.control_database)
    registry.create_tables()
    brokers = resolve_brokers(settings)
    logs: dict[str, CommandLog] = {}

    def log_of(topic: str) -> CommandLog:
        return logs.setdefault(topic, CommandLog(brokers, topic))

    allowed = allow_list(settings.allow_modules)
    statuses = [
        describe(
            client,
            r,
            lambda t: log_of(t).end_offsets(),
            allowed,
            lambda t, o: log_of(t).behind(o),
        )
        for r in listed(registry.all(), everything)
    ]
    for command_log in logs.values():
        command_log.close()
    return statuses


#: the columns that fit 80 terminal columns; `--wide` adds the rest
COMPACT = ("deployment", "state", "lag", "behind", "progress")
WIDE = (*COMPACT, "rows", "in / accepted")


def status_table(statuses: list[dict[str, Any]], wide: bool = False) -> FittedTable:
    """One row per deployment. Compact, progress is the share of its offsets done (a live
    deployment has no end: "live"); wide, the offsets themselves, the rows of each projection
    and the commands taken in and accepted."""
    rows = []
    for s in statuses:
        lag = sum(int(v) for v in s["lag"].values())
        state = s["state"] if s["desired"] == "running" else f"{s['state']} (held)"
        if s.get("stage") in GONE:
            state = s["stage"]  # its database is dropped: what it was doing no longer matters
        behind = f"{s['behind_s']:.1f}s" if s["behind_s"] is not None else "?"
        row = [s["name"], state, f"{lag:,}", behind, _progress(s, wide)]
        if wide:
            row.append(", ".join(f"{k} {v:,}" for k, v in s["rows"].items()))
            row.append(
                f"{s['consumed']:,.0f} / {s.get('accepted', 0):,.0f}" if "consumed" in s else ""
            )
        rows.append(row)
    return FittedTable(WIDE if wide else COMPACT, rows, wrap=("state", "rows", "in / accepted"))


def _progress(s: dict[str, Any], exact: bool) -> str:
    if s["follow"]:
        return "live"
    if exact:
        return f"{s['done']:,}/{s['total']:,}"
    if not s["total"]:
        return "-"
    return f"{math.floor(100 * s['done'] / s['total'])}%"  # 100% only once all is done


COMMANDS = (status,)
