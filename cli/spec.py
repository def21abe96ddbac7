"""Pipeline specs without running them: `cqrs validate` checks one, `cqrs graph` draws it."""

from __future__ import annotations

from pathlib import Path

import click

from cli.ui import console
from deploy.settings import Settings


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
def validate(spec: Path) -> None:
    """Check a pipeline spec without starting anything."""
    from dataflows.spec import load_pipeline

    pipeline = load_pipeline(spec)
    console.print(f"{spec}: ok — {pipeline.deployment}")
    for table in pipeline.tables:
        cols = ", ".join(f"{n} {t}" for n, t in table.columns)
        console.print(f"  projection {table.name}: {cols}", highlight=False)


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid"]), default="text")
@click.pass_obj
def graph(settings: Settings, spec: Path, fmt: str) -> None:
    """Draw a pipeline's dataflow, as text or as a Mermaid flowchart."""
    from dataflows.graph import mermaid, text
    from dataflows.spec import load_pipeline

    pipeline = load_pipeline(spec)
    topic = pipeline.spec.source.topic or settings.topic
    click.echo((mermaid if fmt == "mermaid" else text)(pipeline, topic))


COMMANDS = (validate, graph)
