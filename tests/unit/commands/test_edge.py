"""The edge's pure part: bodies into checked commands or refusals naming the field; the same
check as the `validate` filter; the answers kept for retried ids."""

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.edge import AnswerCache, BodyError, Checked, Refused, parse_body
from core.envelope import Command, Envelope, LogRecord, encode_command
from examples.orders.generator import OrderGenerator
from examples.orders.schemas import SCHEMAS
from operators.validate import Validate, ValidateParams

NOW = 1_767_225_700_000
HOUR = 3_600_000


def parse(body, content_type="application/json", headers=None):
    return parse_body(content_type, headers or {}, body, SCHEMAS, NOW, HOUR)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"{}", "text/plain", 415),
        (b"{}", "application/cloudevents-batch+json", 400),
        (b"[{}]", "application/cloudevents+json", 400),
        (b"\xff", "application/x-ndjson", 400),
        (b'{"id": "\xff"}', "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    ],
)
def test_a_body_with_no_command_is_refused_whole(body, content_type, status):
    with pytest.raises(BodyError) as caught:
        parse(body, content_type)
    assert caught.value.status == status


def test_the_edge_refuses_exactly_what_the_validate_filter_rejects():
    """Same check, same reasons: commands the filter passes are the ones the edge takes."""
    validate = Validate(
        "v", ValidateParams(schemas="examples.orders.schemas:SCHEMAS", max_future="1h")
    )
    good = OrderGenerator(seed=3, start_ms=NOW - 1000).take(50)
    bad = [
        msgspec.structs.replace(good[0], id="x1", data={**good[0].data, "region": "mars"}),
        msgspec.structs.replace(good[1], id="x2", ts=NOW + 2 * HOUR),
        msgspec.structs.replace(good[2], id="x3", v=9),
        msgspec.structs.replace(good[3], id="x4", aggregate_id="someone-else"),
    ]
    commands = good + bad
    _, items = parse(b"[" + b",".join(encode_command(c) for c in commands) + b"]")
    for command, item in zip(commands, items, strict=True):
        record = LogRecord(0, 0, NOW, command.aggregate_id.encode(), encode_command(command))
        verdict = validate.apply(Envelope(record, command))
        if isinstance(item, Checked):
            assert verdict.command == command
            assert item.value == encode_command(command) and item.key == record.key
        else:
            assert item.reason == verdict.reason.value, (item, verdict)
    paths = [(i.reason, i.path) for i in items if isinstance(i, Refused)]
    assert paths == [
        ("invalid_data", "$.data.region"),
        ("future_time", "$.ts"),
        ("unsupported_version", "$.v"),
        ("key_mismatch", "$.aggregate_id"),
    ]


def test_cloudevents_map_onto_the_envelope():
    data = {"order_id": "o-1", "order_state": 1}
    event = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "order.shipped",
             "subject": "o-1", "time": "2026-01-01T00:00:01.5+00:00",
             "data": {"order_id": "o-1", "carrier": "dhl"}}  # fmt: skip
    _, [item] = parse(msgspec.json.encode(event), "application/cloudevents+json")
    assert item.command == Command("e1", "order.shipped", "o-1", 1767225601500, 1, event["data"])
    headers = {"ce-specversion": "1.0", "ce-id": "e%202", "ce-source": "/s",
               "ce-type": "order.shipped", "ce-partitionkey": "o-1"}  # fmt: skip
    _, [item] = parse(msgspec.json.encode(event["data"]), headers=headers)
    assert (item.command.id, item.command.ts, item.command.aggregate_id) == ("e 2", NOW, "o-1")
    for broken, path in [
        ({**event, "specversion": "0.3"}, "$.specversion"),
        ({**event, "source": ""}, "$.source"),
        ({**event, "time": "yesterday"}, "$.time"),
        ({**event, "dataversion": "one"}, "$.dataversion"),
        ({**event, "data": data, "datacontenttype": "text/xml"}, "$.datacontenttype"),
        ({**event, "data": "text"}, "$.data"),
    ]:
        _, [item] = parse(msgspec.json.encode(broken), "application/cloudevents+json")
        assert (item.status, item.path) == (422, path), item


def test_a_retried_command_finds_its_answer_and_a_different_one_its_conflict():
    cache = AnswerCache(size=2)
    a, b, c = (Checked(i, cmd, encode_command(cmd)) for i, cmd in enumerate(
        OrderGenerator(seed=1).take(3)))  # fmt: skip
    assert cache.get(a) is None
    cache.put(a, 1, 10)
    assert cache.get(a) == (1, 10)
    other = Checked(0, msgspec.structs.replace(a.command, ts=0), b"{}")
    assert cache.get(other) is False
    cache.put(b, 2, 20)
    cache.put(c, 3, 30)
    assert cache.get(a) is None  # the oldest answer went first


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300) | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
        max_leaves=20,
    ).map(msgspec.json.encode),
    st.sampled_from(["application/json", "application/x-ndjson", "application/cloudevents+json",
                     "application/cloudevents-batch+json", "text/html"]),
    st.dictionaries(st.sampled_from(["ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time",
                                     "ce-subject", "ce-dataversion"]), st.text(max_size=20)),
)  # fmt: skip
def test_no_body_raises_anything_but_a_body_error(body, content_type, headers):
    try:
        _, items = parse(body, content_type, headers)
    except BodyError as exc:
        assert exc.status in (400, 415)
        return
    for item in items:
        assert isinstance(item, Checked) or (item.status == 422 and item.path.startswith("$"))
