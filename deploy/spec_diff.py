"""What changed between two versions of a pipeline spec, in words a deployment history shows:
filters added, removed or changed, projections added or removed, and steps within them."""

from __future__ import annotations

from typing import Any

from dataflows.spec import PipelineSpec


def _steps(entries: list[str | dict[str, Any]]) -> dict[str, Any]:
    """step id -> (filter name, params), as the spec writes them."""
    steps: dict[str, Any] = {}
    for entry in entries:
        if isinstance(entry, str):
            steps[entry] = (entry, {})
            continue
        entry = dict(entry)
        step_id = entry.pop("id", None)
        ((name, params),) = entry.items()
        steps[step_id or name] = (name, params or {})
    return steps


def _diff(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = [f"{kind} added: {k}" for k in new if k not in old]
    changes += [f"{kind} removed: {k}" for k in old if k not in new]
    changes += [f"{kind} changed: {k}" for k in new if k in old and old[k] != new[k]]
    return changes


def diff_specs(old: PipelineSpec, new: PipelineSpec) -> list[str]:
    changes = _diff("filter", _steps(old.filters), _steps(new.filters))
    old_projections = {p.name: p for p in old.projections}
    new_projections = {p.name: p for p in new.projections}
    changes += _diff(
        "projection", {k: None for k in old_projections}, {k: None for k in new_projections}
    )
    for name in new_projections.keys() & old_projections.keys():
        changes += _diff(
            f"{name} step",
            _steps(old_projections[name].steps),
            _steps(new_projections[name].steps),
        )
    if old.source != new.source:
        changes.append("source changed")
    return changes
