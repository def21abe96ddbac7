"""`cqrs produce` and `cqrs demo`: the demo's orders onto the command log, and the whole demo
(broker, producer, the orders pipeline, live counts) in one command."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import click
from rich.live import Live

from cli.runtime import graceful_sigterm, report_end
from cli.ui import FittedTable, console, out, result_table
from core.errors import CqrsError
from deploy.bootstrap import DEMO_SPEC, local_broker, resolve_brokers
from deploy.model import QueryResult
from deploy.settings import Settings
from deploy.token import read_token

if TYPE_CHECKING:
    from commands.load import LoadStats


@click.command()
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="commands per second")
@click.option("--count", type=click.IntRange(min=1), help="stop after this many commands")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="stop after S s")
@click.option("--seed", default=0, show_default=True, help="same seed, same orders")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(1, 1000))
@click.option("--via", metavar="URL", help="send through the edge at URL (`cqrs edge`), in batches")
@click.pass_obj
def produce(
    settings: Settings,
    rate: float | None,
    count: int | None,
    duration: float | None,
    seed: int,
    partitions: int,
    via: str | None,
) -> None:
    """Generate demo orders onto the command log, with a progress line."""
    from commands.edge_client import EdgeClient
    from commands.load import produce_load
    from commands.log import CommandLog
    from commands.producer import CommandProducer
    from examples.orders.generator import OrderGenerator

    generator = OrderGenerator(
        seed=seed, start_ms=int(time.time() * 1000), step_ms=1000.0 / rate if rate else 1.0
    )
    if via:
        sender: CommandProducer | EdgeClient = EdgeClient(
            via, settings.token or read_token(settings.token_file)
        )
    else:
        brokers = resolve_brokers(settings)
        with CommandLog(brokers, settings.topic) as log:
            log.ensure(partitions)
        sender = CommandProducer(brokers, settings.topic)
    with sender as producer:
        stats = produce_load(
            producer,
            generator,
            rate=rate,
            count=count,
            duration_s=duration,
            on_progress=_progress_line,
        )
    console.print()
    if stats.errors:
        raise CqrsError(f"{stats.errors} commands failed: {producer.last_error}")


def _progress_line(stats: LoadStats) -> None:
    console.print(
        f"sent {stats.sent:>10,}  acked {stats.acked:>10,}  "
        f"rate {stats.rate:>9,.0f}/s  errors {stats.errors}",
        end="\r",
        highlight=False,
    )


#: the orders demo's panel that the live counts show
DEMO_PANEL = "orders_by_status"


@click.command()
@click.option("--rate", default=500.0, show_default=True, help="commands per second")
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def demo(settings: Settings, rate: float, seed: int) -> None:
    """Start the broker, produce orders, run the orders pipeline, show live counts (Ctrl-C)."""
    from commands.load import produce_load
    from commands.log import CommandLog
    from commands.producer import CommandProducer
    from dataflows.spec import load_pipeline
    from deploy.panels import DEMO_PANELS
    from deploy.runtime import Runtime
    from examples.orders.generator import OrderGenerator

    settings = settings.with_(panels=DEMO_PANELS)  # the dashboard draws the orders' panels
    launcher = None  # set when the demo starts the local broker, so it stops it again
    if settings.brokers:
        brokers = settings.brokers
    else:
        found = local_broker(settings)
        if found.status() is None:
            launcher = found
            if not found.dist.is_cached:
                console.print("fetching Apache Kafka from Maven Central (first run only)…")
        brokers = found.start().bootstrap
    console.print(f"broker {brokers}")
    with CommandLog(brokers, settings.topic) as log:
        log.ensure(6)
    stop = threading.Event()
    stats: dict[str, LoadStats] = {}
    producer = CommandProducer(brokers, settings.topic)
    generator = OrderGenerator(seed=seed, start_ms=int(time.time() * 1000), step_ms=1000.0 / rate)

    def produce_forever() -> None:
        produce_load(
            producer,
            generator,
            rate=rate,
            should_stop=stop.is_set,
            on_progress=lambda s: stats.__setitem__("load", s),
        )

    feeder = threading.Thread(target=produce_forever, name="demo-producer", daemon=True)
    try:
        with graceful_sigterm(), Runtime(settings, brokers) as runtime:
            name = runtime.ensure(load_pipeline(DEMO_SPEC), DEMO_SPEC.read_text()).name
            feeder.start()
            console.print(f"{name} running; API {runtime.url}; Ctrl-C to stop")
            console.print(f"dashboard: {runtime.dashboard_url}", highlight=False, soft_wrap=True)
            panels = runtime.panels.panels if runtime.panels else ()
            sql = next(p for p in panels if p.key == DEMO_PANEL).sql(settings.query_database)
            ended = None
            with Live(console=out, refresh_per_second=1) as live:
                try:
                    while ended is None:
                        live.update(_demo_view(runtime.query(sql), stats.get("load")))
                        time.sleep(2.0)
                        ended = runtime.settled(name)
                except KeyboardInterrupt:
                    # The last counts stay on screen (and reach a pipe, where Live shows only
                    # its final frame), even when Ctrl-C came before the first refresh.
                    stop.set()
                    live.update(_demo_view(runtime.query(sql), stats.get("load")))
            if not out.is_terminal:
                out.line()  # Live ends its last frame with a newline only on a terminal
            if ended is None:
                console.print("stopping…")
            stop.set()
            feeder.join(30)
        if ended is not None:
            report_end(ended, name)
    finally:
        stop.set()
        producer.close()
        if launcher is not None:
            launcher.stop()


def _demo_view(result: QueryResult, load: LoadStats | None) -> FittedTable:
    caption = None if load is None else f"produced {load.sent:,} commands at {load.rate:,.0f}/s"
    return result_table(result, "orders by status (query.orders, refreshed every 2 s)", caption)


COMMANDS = (produce, demo)
