"""`cqrs edge`: the command side as a service (HTTP in, the command log out; see `api.edge`)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.ui import console
from core.errors import ConfigError
from deploy.bootstrap import resolve_brokers
from deploy.settings import Settings
from deploy.token import ensure_token

File = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8766, show_default=True, type=click.IntRange(0, 65535),
              help="0: any free port (the URL is printed)")  # fmt: skip
@click.option("--schemas", required=True, envvar="CQRS_SCHEMAS",
              help="module:ATTR of the SchemaRegistry commands are checked with (CQRS_SCHEMAS; "
                   "the orders demo's: examples.orders.schemas:SCHEMAS)")  # fmt: skip
@click.option("--certfile", type=File, help="serve HTTPS with this certificate (PEM)")
@click.option("--keyfile", type=File, help="and this private key (PEM)")
@click.option("--max-body", default=4 * 1024 * 1024, show_default=True,
              type=click.IntRange(1024), help="largest request body, bytes")  # fmt: skip
@click.option("--rate-limit", default=2000, show_default=True, type=click.IntRange(1),
              help="requests per second per client address")  # fmt: skip
@click.option("--max-future", default="1h", show_default=True,
              help="how far event time may run ahead of the edge's clock")  # fmt: skip
@click.option("--reuse-port", is_flag=True,
              help="share --port with other edges started with this flag (replicas on one "
                   "machine: Linux spreads connections over them; each keeps its own answer "
                   "cache: a retry on a new connection may append again, for dedupe to drop)",
              )  # fmt: skip
@click.pass_obj
def edge(
    settings: Settings,
    host: str,
    port: int,
    schemas: str,
    certfile: Path | None,
    keyfile: Path | None,
    max_body: int,
    rate_limit: int,
    max_future: str,
    reuse_port: bool,
) -> None:
    """Take commands over HTTP (POST /commands), check them, append them to the log."""
    from prometheus_client import CollectorRegistry

    from api.edge import PRODUCER_SETTINGS, Edge, EdgeMetrics
    from api.edge_server import serve_edge
    from api.security import Limits
    from commands.log import CommandLog
    from commands.producer import CommandProducer
    from operators.durations import millis
    from operators.validate import load_schemas

    if (certfile is None) != (keyfile is None):
        raise ConfigError("give both --certfile and --keyfile for TLS, or neither")
    try:
        registry = load_schemas(schemas)
        future_ms = millis(max_future, "--max-future")
    except ValueError as exc:
        raise ConfigError(f"{exc}") from None
    brokers = resolve_brokers(settings)
    with CommandLog(brokers, settings.topic) as log:
        log.partitions()  # a missing topic is an error that says how to create it
    token = settings.token or ensure_token(settings.token_file)
    service = Edge(
        CommandProducer(brokers, settings.topic, **PRODUCER_SETTINGS),
        registry,
        EdgeMetrics(CollectorRegistry()),
        future_ms,
    )
    try:
        serve_edge(
            service,
            host,
            port,
            token,
            Limits(max_body=max_body, max_in_flight=256),
            rate_limit,
            settings.allowed_hosts,
            (str(certfile), str(keyfile)) if certfile and keyfile else None,
            announce=lambda url: console.print(f"edge on {url}", highlight=False),
            reuse_port=reuse_port,
        )
    finally:
        service.close()
        console.print("edge stopped; every accepted command is in the log")


COMMANDS = (edge,)
