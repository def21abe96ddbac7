"""`cqrs broker`: the local Kafka broker of a data dir, for when no `CQRS_BROKERS` is set."""

from __future__ import annotations

import sys
import time

import click

from cli.ui import console, out
from deploy.bootstrap import local_broker
from deploy.settings import Settings


@click.group()
def broker() -> None:
    """The local Kafka broker (not used when CQRS_BROKERS is set)."""


@broker.command("start")
@click.option("--port", type=int, help="listen on this port (default: a free one, kept after)")
@click.pass_obj
def broker_start(settings: Settings, port: int | None) -> None:
    """Fetch Kafka from Maven Central (first time only), start it, wait until it answers."""
    launcher = local_broker(settings, port)
    if not launcher.dist.is_cached:
        console.print(f"fetching Apache Kafka {launcher.dist.version} from Maven Central (once)…")
    started = time.monotonic()
    state = launcher.start()
    console.print(
        f"broker up on {state.bootstrap} (pid {state.pid}, {time.monotonic() - started:.1f}s)"
    )
    out.print(state.bootstrap)


@broker.command("stop")
@click.pass_obj
def broker_stop(settings: Settings) -> None:
    """Stop the local broker cleanly; its log stays on disk for the next start."""
    stopped = local_broker(settings).stop()
    console.print("broker stopped" if stopped else "no local broker was running")


@broker.command("status")
@click.pass_obj
def broker_status(settings: Settings) -> None:
    state = local_broker(settings).status()
    if state is None:
        out.print("stopped")
        sys.exit(1)
    out.print(f"running on {state.bootstrap} (pid {state.pid})")


COMMANDS = (broker,)
