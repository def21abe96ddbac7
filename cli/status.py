"""`cqrs status`: every deployment's state, lag and progress, from the running runtime, or
computed by the CLI itself from the shared store and the broker when none runs."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from cli.ui import out
from commands.log import CommandLog
from deploy.bootstrap import resolve_brokers
from deploy.client import connect
from deploy.registry import Registry
from deploy.runtime_file import find_runtime
from deploy.settings import Settings
from deploy.status import describe, listed
from operators.code import allow_list
from sinks.store import open_client


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "everything", is_flag=True, help="also retired and aborted deployments")
@click.pass_obj
def status(settings: Settings, as_json: bool, everything: bool) -> None:
    """Every deployment: state, progress and lag per partition, rows per projection."""
    runtime_info = find_runtime(settings.data_dir) if settings.embedded else None
    if runtime_info is not None:
        statuses = connect(settings, runtime_info.url).deployments(everything)
    else:
        statuses = _without_runtime(settings, everything)
    if as_json:
        click.echo(json.dumps(statuses))
        return
    out.print(status_table(statuses))


def _without_runtime(settings: Settings, everything: bool) -> list[dict[str, Any]]:
    client = open_client(settings.clickhouse_dsn)
    registry = Registry(client, settings.control_database)
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


def status_table(statuses: list[dict[str, Any]]) -> Table:
    table = Table("deployment", "state", "lag", "behind", "progress", "rows", "in / accepted")
    for s in statuses:
        lag = sum(int(v) for v in s["lag"].values())
        progress = f"{s['done']:,}/{s['total']:,}" if not s["follow"] else "live"
        rows = ", ".join(f"{k} {v:,}" for k, v in s["rows"].items())
        flow = (
            f"{s.get('consumed', 0):,.0f} / {s.get('accepted', 0):,.0f}" if "consumed" in s else ""
        )
        state = s["state"] if s["desired"] == "running" else f"{s['state']} (held)"
        behind = f"{s['behind_s']:.1f}s" if s["behind_s"] is not None else "?"
        table.add_row(s["name"], state, f"{lag:,}", behind, progress, rows, flow)
    return table


COMMANDS = (status,)
