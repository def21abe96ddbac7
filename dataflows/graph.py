"""A pipeline drawn: as Mermaid (for docs and reviews) or as plain text (for a terminal)."""

from __future__ import annotations

import re

from dataflows.spec import Pipeline
from operators.base import Filter, PartitionLocal


def _node(step_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", step_id)


def _label(step_id: str, stateful: bool) -> str:
    return f"{step_id} (state)" if stateful else step_id


def mermaid(pipeline: Pipeline, topic: str) -> str:
    lines = ["flowchart LR", f'  source[("{topic}")] --> decode']
    previous = "decode"
    stepped = ["decode"]
    for f in pipeline.filters:
        node = _node(f.step_id)
        lines.append(
            f'  {previous} --> {node}["{_label(f.step_id, isinstance(f, PartitionLocal))}"]'
        )
        previous = node
        stepped.append(node)
    for projection in pipeline.projections:
        last = previous
        for f in projection.steps:
            node = _node(f.step_id)
            lines.append(
                f'  {last} --> {node}["{_label(f.step_id, isinstance(f, PartitionLocal))}"]'
            )
            last = node
            stepped.append(node)
        sink = _node(f"sink_{projection.name}")
        target = projection.output.label(pipeline.deployment)
        lines.append(f'  {last} --> {sink}[("{target}")]')
    lines.append(f'  dlq[("{topic}.dlq")]')
    for node in stepped:
        lines.append(f"  {node} -.->|rejects| dlq")
    return "\n".join(lines)


def text(pipeline: Pipeline, topic: str) -> str:
    def step(f: Filter) -> str:
        return _label(f.step_id, isinstance(f, PartitionLocal))

    shared = " → ".join(["decode", *(step(f) for f in pipeline.filters)])
    lines = [f"{pipeline.deployment}: {topic} → {shared}"]
    for projection in pipeline.projections:
        target = projection.output.describe(pipeline.deployment)
        chain = " → ".join(step(f) for f in projection.steps)
        lines.append(f"  ├─ {projection.name}: {chain} → {target}")
    lines.append(f"  └─ every reject → {topic}.dlq")
    return "\n".join(lines)
