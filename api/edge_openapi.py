"""The edge's OpenAPI document, made from the schema registry it checks commands with: one
envelope schema per registered type and version, whose `data` is that version's struct, so a
client generated from `/openapi.json` knows every command the edge takes."""

from __future__ import annotations

from typing import Any

import msgspec

from commands.edge import CE_BATCH, CE_STRUCTURED, JSON, NDJSON
from commands.schemas import SchemaRegistry
from core.envelope import MAX_TS

REF = "#/components/schemas/{name}"


def envelope_name(type_: str, v: int) -> str:
    return f"{type_}.v{v}"


def openapi_document(registry: SchemaRegistry) -> dict[str, Any]:
    schemas = [(t, v, registry.get(t, v)) for t in registry.types() for v in registry.versions(t)]
    _, components = msgspec.json.schema_components(
        [s.data for _, _, s in schemas if s is not None], ref_template=REF
    )
    for type_, v, schema in schemas:
        assert schema is not None
        components[envelope_name(type_, v)] = {
            "type": "object",
            "title": f"{type_} v{v}",
            "required": ["id", "type", "aggregate_id", "ts", "v", "data"],
            "properties": {
                "id": _text("unique: the idempotency key"),
                "type": {"const": type_},
                "aggregate_id": _text("the partition key"),
                "ts": {"type": "integer", "minimum": 0, "maximum": MAX_TS, "description": "ms"},
                "v": {"const": v},
                "data": {"$ref": REF.format(name=schema.data.__name__)},
            },
        }
    one = {"oneOf": [{"$ref": REF.format(name=envelope_name(t, v))} for t, v, _ in schemas]}
    results = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "refused": {"type": "integer"},
            "unavailable": {"type": "integer"},
            "error": {"type": "string"},
            "commands": {"type": "array", "items": {"type": "object"}},
        },
    }
    answers = {
        "202": "every command is in the log (each with its partition and offset)",
        "207": "the batch was split: each entry says accepted (202) or why not",
        "400": "the body is not JSON, or holds no command",
        "401": "missing or wrong bearer token",
        "409": "the id was logged for a different command",
        "413": "the body is over the size limit",
        "415": "a content type the edge does not take",
        "422": "every command refused; each entry names the field and what is expected",
        "429": "over this client's request rate (Retry-After)",
        "503": "the broker did not acknowledge some command: resend with the same ids",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "cqrs-streams edge", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/commands": {
                "post": {
                    "summary": "append commands to the command log",
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {"schema": {"oneOf": [one, {"type": "array", "items": one}]}},
                            NDJSON: {"schema": one},
                            CE_STRUCTURED: {"schema": {"type": "object"}},
                            CE_BATCH: {"schema": {"type": "array"}},
                        },
                    },
                    "responses": {
                        status: {
                            "description": text,
                            "content": {JSON: {"schema": results}},
                        }
                        for status, text in answers.items()
                    },
                }
            },
            "/health": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text"}}}},
        },
    }


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description}
