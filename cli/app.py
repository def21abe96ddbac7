"""`cqrs`: the root group, its options (settings come from `CQRS_*` variables; flags override
them), the command groups it is made of, and how an error ends the process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from cli import (
    broker,
    catalog,
    deploy,
    dlq,
    edge,
    produce,
    query,
    replay,
    runtime,
    spec,
    status,
    topic,
)
from cli.ui import show_error
from core.errors import CqrsError
from deploy.memory import limit_malloc_arenas
from deploy.settings import Settings


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), help="CQRS_DATA_DIR (default .data)")
@click.option("--brokers", help="CQRS_BROKERS: host:port of a running broker (default: local)")
@click.option("--clickhouse", help="CQRS_CLICKHOUSE: chdb:///dir or http(s)://host:8123")
@click.option("--topic", help="CQRS_TOPIC: the command log topic (default commands)")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def cqrs(ctx: click.Context, log_level: str, **overrides: Any) -> None:
    """CQRS on streaming data: a Kafka command log, Bytewax filters, ClickHouse projections."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    # kafka-python's IO thread warns whenever the GIL kept it waiting: noise under load
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    ctx.obj = Settings.from_env(**overrides)


for _group in (
    broker,
    topic,
    produce,
    edge,
    spec,
    catalog,
    runtime,
    replay,
    status,
    query,
    deploy,
    dlq,
):
    for _command in _group.COMMANDS:
        cqrs.add_command(_command)


def run() -> None:
    """Run the command line; a `CqrsError` ends it with its message and exit status 2."""
    limit_malloc_arenas()
    try:
        cqrs(standalone_mode=False)
    except CqrsError as exc:
        show_error(exc)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
