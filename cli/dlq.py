"""`cqrs dlq`: the dead-letter topic, what the pipelines refused and why; and putting chosen
records back on the command log once their cause is fixed."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click
from rich.text import Text

from cli.ui import console, out
from core.errors import CqrsError
from deploy.bootstrap import resolve_brokers
from deploy.settings import Settings

if TYPE_CHECKING:
    from commands.dead_letters import DeadLetter


@click.group()
def dlq() -> None:
    """The dead-letter topic: what the pipelines refused, and why."""


def _letters(
    settings: Settings, start: int, follow: bool, reason: str | None, repeats: bool = False
) -> Iterator[DeadLetter]:
    """Dead letters from `start` on, each rejection once unless `repeats` (a deployment that
    restarted redid its last epoch, rejects included)."""
    from commands.dead_letters import first_of_each, read_dead_letters
    from sinks.dlq import dlq_topic

    brokers = resolve_brokers(settings)
    # Repeats are recognised from the DLQ's start, whatever `start` shows.
    letters = read_dead_letters(brokers, dlq_topic(settings.topic), 0, None, follow)
    for letter in letters if repeats else first_of_each(letters):
        if letter.offset >= start and (reason is None or letter.reason == reason):
            yield letter


@dlq.command("tail")
@click.option("--from", "start", default=0, show_default=True, help="first DLQ offset")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many")
@click.option("--follow", is_flag=True, help="keep waiting for new ones")
@click.option("--reason", help="only this reason (not_json, late, …)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--all", "repeats", is_flag=True, help="also repeats of a rejection (restarts)")
@click.pass_obj
def dlq_tail(
    settings: Settings,
    start: int,
    limit: int | None,
    follow: bool,
    reason: str | None,
    as_json: bool,
    repeats: bool,
) -> None:
    """Show rejected records with their reason and origin, each rejection once."""
    letters = _letters(settings, start, follow, reason, repeats)
    for letter in itertools.islice(letters, limit):
        if as_json:
            doc = {
                "offset": letter.offset,
                "key": letter.key.decode(errors="replace") if letter.key is not None else None,
                "headers": letter.headers,
                "value": (letter.value or b"")[:2000].decode(errors="replace"),
            }
            click.echo(json.dumps(doc))
            continue
        out.print(letter_lines(letter), highlight=False, soft_wrap=True)


def letter_lines(letter: DeadLetter) -> Text:
    """A dead letter as two lines: where and why it was rejected, then the start of its bytes.
    None of it is read as markup: a record's text is its sender's, and a stray `[/x]` in it
    must not stop the listing."""
    h = letter.headers
    return Text.assemble(
        (str(letter.offset), "bold"),
        f" {h.get('reason')} at {h.get('step')} ({h.get('deployment')}, "
        f"{h.get('source.topic')}[{h.get('source.partition')}]@{h.get('source.offset')}): "
        f"{h.get('detail', '')[:160]}\n    {(letter.value or b'')[:60]!r}",
    )


@dlq.command("replay")
@click.option("--offset", "offsets", multiple=True, type=int, help="a DLQ offset (repeatable)")
@click.option("--reason", help="every record with this reason")
@click.option("--all", "everything", is_flag=True, help="every record in the DLQ")
@click.option("--dry-run", is_flag=True, help="show what would be replayed")
@click.pass_obj
def dlq_replay(
    settings: Settings,
    offsets: tuple[int, ...],
    reason: str | None,
    everything: bool,
    dry_run: bool,
) -> None:
    """Re-produce chosen records, unchanged, to the command log (after fixing the cause); each
    rejection once, whatever repeats of it the DLQ holds."""
    from commands.dead_letters import first_of_each
    from commands.dead_letters import replay as replay_letters

    if not (offsets or reason or everything):
        raise click.UsageError("choose records: --offset N (repeatable), --reason R or --all")
    wanted = set(offsets)
    every = list(_letters(settings, 0, False, reason, repeats=True))
    missing = wanted - {letter.offset for letter in every}
    if missing:
        raise CqrsError(f"no DLQ record at offset(s) {sorted(missing)}; nothing was replayed")
    # An offset stands for its rejection, which is replayed once (as its first dead letter).
    chosen = {x.rejection for x in every if everything or reason or x.offset in wanted}
    letters = [x for x in first_of_each(every) if x.rejection in chosen]
    for letter in letters:
        said = f"{'would replay' if dry_run else 'replay'} {letter.offset} ({letter.reason})"
        console.print(Text(said))
    if dry_run:
        return
    acked = replay_letters(resolve_brokers(settings), settings.topic, letters)
    console.print(f"{acked} of {len(letters)} records back on {settings.topic}")
    if acked != len(letters):
        raise CqrsError("some records were not acknowledged by the broker")


COMMANDS = (dlq,)
