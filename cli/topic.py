"""`cqrs topic`: the command log topic and its DLQ."""

from __future__ import annotations

import click

from cli.ui import console
from deploy.bootstrap import resolve_brokers
from deploy.settings import Settings


@click.group()
def topic() -> None:
    """The command log topic."""


@topic.command("create")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(1, 1000))
@click.pass_obj
def topic_create(settings: Settings, partitions: int) -> None:
    """Create the command log (retention unlimited, log time set by the broker) and its DLQ, if
    missing; an existing log is given the settings it lacks."""
    from commands.log import ENFORCED, CommandLog
    from sinks.dlq import ensure_dlq

    brokers = resolve_brokers(settings)
    with CommandLog(brokers, settings.topic) as log:
        count = log.ensure(partitions)
        changed = log.enforce(ENFORCED)
    for name, (was, now) in changed.items():
        console.print(f"topic {settings.topic}: {name} was {was or 'unset'}, set to {now}")
    dlq = ensure_dlq(brokers, settings.topic)
    console.print(f"topic {settings.topic}: {count} partitions; DLQ {dlq}")


COMMANDS = (topic,)
