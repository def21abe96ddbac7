"""The edge's pure part: what an HTTP body says, as commands or per-command refusals.

A body is one command (a JSON object), a batch (a JSON array), NDJSON (one command a line), or
CloudEvents 1.0 (structured, batched, or binary: attributes in `ce-*` headers, the body the
data). Each command is then checked with `commands.schemas.check_command`, the check the
`validate` filter runs, against the edge's clock: the edge refuses what the pipeline would
dead-letter, and says which field and what was expected.

CloudEvents map onto the envelope as: `id` → id, `type` → type, `time` (RFC 3339) → `ts` (the
edge's clock when absent), the `partitionkey` extension (else `subject`) → aggregate_id, the
`dataversion` extension → `v` (1 when absent), `data` → data (a JSON object).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import msgspec

from commands.schemas import SchemaRegistry, check_command
from core.envelope import MAX_TS, Command, Reason, encode_command

JSON = "application/json"
NDJSON = "application/x-ndjson"
CE_STRUCTURED = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
CONTENT_TYPES = (JSON, NDJSON, CE_STRUCTURED, CE_BATCH)
#: commands in one request: past it the body is refused whole (split the batch)
MAX_BATCH = 10_000

_PATH = re.compile(r" - at `\$(.*)`$")


class BodyError(ValueError):
    """The body as a whole cannot be read; `status` is the HTTP answer (400 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Refused(msgspec.Struct, frozen=True):
    """One command the edge will not log: `path` is the field (`$.data.items[0].qty`),
    `expected` what would be accepted there."""

    index: int
    id: str | None
    status: int
    reason: str
    path: str
    expected: str


class Checked(msgspec.Struct, frozen=True):
    """A command that passed every check, with the bytes and key it is logged with."""

    index: int
    command: Command
    value: bytes

    @property
    def key(self) -> bytes:
        return self.command.aggregate_id.encode()


Item = Checked | Refused


def parse_body(
    content_type: str,
    headers: Mapping[str, str],
    body: bytes,
    registry: SchemaRegistry,
    now_ms: int,
    max_future_ms: int,
) -> tuple[bool, list[Item]]:
    """(whether the body was a batch, each command checked or refused, in order); raises
    `BodyError` for a body that holds no command at all. `headers` are lower-case names."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == JSON and "ce-specversion" in headers:
        raw: list[Any] = [_binary_event(headers, _json(body))]
        batch, events = False, True
    elif kind in (JSON, CE_STRUCTURED, CE_BATCH):
        doc = _json(body)
        batch = isinstance(doc, list)
        if kind == CE_BATCH and not batch:
            raise BodyError(400, "a CloudEvents batch is a JSON array of events")
        if kind == CE_STRUCTURED and batch:
            raise BodyError(400, "send several CloudEvents as application/cloudevents-batch+json")
        raw, events = (doc if batch else [doc]), kind != JSON
    elif kind == NDJSON:
        raw, batch, events = (
            [_json(line) for line in body.splitlines() if line.strip()],
            True,
            False,
        )
    else:
        raise BodyError(415, f"send commands as one of {', '.join(CONTENT_TYPES)}")
    if not raw:
        raise BodyError(400, "the body holds no command")
    if len(raw) > MAX_BATCH:
        raise BodyError(400, f"{len(raw):,} commands in one request; send at most {MAX_BATCH:,}")
    items = [_check(i, doc, events, registry, now_ms, max_future_ms) for i, doc in enumerate(raw)]
    return batch, items


def _json(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BodyError(400, f"the body is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise BodyError(400, "the body is not UTF-8") from None
    except RecursionError:
        raise BodyError(400, "the body nests JSON too deep to be a command") from None


def _check(
    index: int,
    doc: Any,
    event: bool,
    registry: SchemaRegistry,
    now_ms: int,
    max_future_ms: int,
) -> Item:
    ident = doc.get("id") if isinstance(doc, dict) else None
    ident = ident if isinstance(ident, str) else None
    try:
        command = _from_event(doc, now_ms) if event else msgspec.convert(doc, Command)
    except msgspec.ValidationError as exc:
        return _refused(index, ident, Reason.WRONG_SHAPE, str(exc), "")
    except _EventError as exc:
        return Refused(index, ident, 422, Reason.WRONG_SHAPE.value, exc.path, exc.expected)
    refusal = check_command(registry, command, command.aggregate_id.encode(), now_ms, max_future_ms)
    if refusal is not None:
        prefix = ".data" if refusal.reason is Reason.INVALID_DATA else ""
        return _refused(index, command.id, refusal.reason, refusal.detail, prefix)
    return Checked(index, command, encode_command(command))


def _refused(index: int, ident: str | None, reason: Reason, detail: str, prefix: str) -> Refused:
    """A refusal whose path msgspec's message names (`… - at `$.ts``)."""
    found = _PATH.search(detail)
    path = "$" + prefix + (found.group(1) if found else "")
    expected = _PATH.sub("", detail)
    if reason is Reason.FUTURE_TIME:
        path = "$.ts"
    elif reason in (Reason.UNKNOWN_TYPE, Reason.UNSUPPORTED_VERSION):
        path = "$.type" if reason is Reason.UNKNOWN_TYPE else "$.v"
    elif reason is Reason.KEY_MISMATCH:
        path = "$.aggregate_id"
    return Refused(index, ident, 422, reason.value, path, expected)


class _EventError(ValueError):
    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path}: {expected}")
        self.path = path
        self.expected = expected


def _from_event(doc: Any, now_ms: int) -> Command:
    """A CloudEvent (as a dict of its attributes and `data`) as a command (see the module)."""
    if not isinstance(doc, dict):
        raise _EventError("$", "a CloudEvent: a JSON object of its attributes")
    if doc.get("specversion") != "1.0":
        raise _EventError("$.specversion", '"1.0"')
    for name in ("id", "source", "type"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise _EventError(f"$.{name}", "a non-empty string (a required attribute)")
    key = doc.get("partitionkey") or doc.get("subject")
    if not isinstance(key, str) or not key:
        raise _EventError("$.partitionkey", "the aggregate id, in `partitionkey` or `subject`")
    kind = doc.get("datacontenttype")
    if kind is not None and not re.fullmatch(r"application/(\S+\+)?json(;.*)?", str(kind)):
        raise _EventError("$.datacontenttype", "application/json (the data is a JSON object)")
    if not isinstance(doc.get("data"), dict):
        raise _EventError("$.data", "a JSON object (data_base64 is not taken)")
    return Command(
        id=doc["id"],
        type=doc["type"],
        aggregate_id=key,
        ts=_event_time(doc.get("time"), now_ms),
        v=_version(doc.get("dataversion", 1)),
        data=doc["data"],
    )


def _event_time(value: Any, now_ms: int) -> int:
    if value is None:
        return now_ms
    try:
        ts = int(datetime.fromisoformat(str(value)).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        ts = -1
    if not 0 <= ts <= MAX_TS or not isinstance(value, str) or "T" not in value.upper():
        raise _EventError("$.time", "an RFC 3339 time with its offset (2018-04-05T17:31:00Z)")
    return ts


def _version(value: Any) -> int:
    text = str(value)
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise _EventError("$.dataversion", "the schema version, an integer from 1")
    return int(text)


def _binary_event(headers: Mapping[str, str], data: Any) -> dict[str, Any]:
    """A binary-mode event: each `ce-` header an attribute (values percent-decoded, as the
    HTTP binding says), the body its data."""
    doc: dict[str, Any] = {
        name[3:]: unquote(value) for name, value in headers.items() if name.startswith("ce-")
    }
    doc["data"] = data
    return doc


class AnswerCache:
    """What the edge answered for recent command ids, so a retried request gets the same
    answer without a second append. Per process and bounded: a retry that reaches another
    replica, or comes after `size` newer commands, appends again, and `dedupe` drops it."""

    def __init__(self, size: int = 200_000) -> None:
        self._size = size
        self._answers: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    def get(self, checked: Checked) -> tuple[int, int] | bool | None:
        """(partition, offset) if this command was logged; False if its id was logged for a
        different command; None if the id is new."""
        found = self._answers.get(checked.command.id)
        if found is None:
            return None
        digest, partition, offset = found
        return (partition, offset) if digest == hash(checked.value) else False

    def put(self, checked: Checked, partition: int, offset: int) -> None:
        self._answers[checked.command.id] = (hash(checked.value), partition, offset)
        self._answers.move_to_end(checked.command.id)
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)
