"""`cqrs dlq tail` shows a dead letter as its sender wrote it: text that looks like markup is
shown as it is, and never stops the listing."""

import io

from cli.dlq import letter_lines
from cli.ui import console_for
from commands.dead_letters import DeadLetter


def test_a_letter_is_shown_as_its_sender_wrote_it():
    letter = DeadLetter(
        offset=7, timestamp=0, key=b"k", value=b'{"id": "[/bold]"} [red]x',
        headers={"reason": "not_json", "step": "decode", "deployment": "orders_v1",
                 "source.topic": "commands", "source.partition": "2", "source.offset": "41",
                 "detail": "Expected `object` near [/x] [bold]"},
    )  # fmt: skip
    console = console_for(file=io.StringIO())
    console.print(letter_lines(letter))
    assert console.file.getvalue().splitlines() == [
        "7 not_json at decode (orders_v1, commands[2]@41): Expected `object` near [/x] [bold]",
        '    b\'{"id": "[/bold]"} [red]x\'',
    ]
