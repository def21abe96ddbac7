"""`cqrs query`: read-only SQL on the projections, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys

import click

from cli.ui import out, result_table
from deploy import bootstrap
from deploy.settings import Settings


@click.command("query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_obj
def query(settings: Settings, sql: str, fmt: str) -> None:
    """Run a read-only SQL query (through the runtime when it holds the store)."""
    result = bootstrap.service(settings).query(sql)
    if fmt == "json":
        click.echo(json.dumps(result.to_json()))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.to_json()["rows"])
    else:
        out.print(result_table(result))


COMMANDS = (query,)
