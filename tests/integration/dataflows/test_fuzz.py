"""Fuzzed records on the real log, between good commands: the deployment finishes, every good
command is projected exactly as without the bad ones, every bad one is in the DLQ once with a
reason, and consumed = accepted + rejected + skipped. One scenario also carries a command of
16 MiB - 200 bytes (it reaches the DLQ whole), a different command reusing an id (id_conflict),
repeats with a forged `replayed-from-dlq` header (deduplicated all the same), and records whose
header key is not UTF-8, written at the protocol level (unreadable to the client)."""

import json
import uuid

import msgspec
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from commands.dead_letters import REPLAYED_HEADER
from commands.log import MAX_RECORD_BYTES, CommandLog
from core.envelope import encode_command
from dataflows.spec import load_pipeline
from deploy.deployment import State
from examples.orders.generator import OrderGenerator
from sinks.ddl import qualified
from tests.conftest import REPO, renamed
from tests.integration.dataflows.test_bad_input import read_dlq
from tests.oracles import (
    ORDER_COLUMNS,
    diff_orders,
    diff_windows,
    expected_orders,
    expected_revenue_per_minute,
)

GOOD = OrderGenerator(seed=71, step_ms=200).take(600)
PLACED = next(c for c in GOOD if c.type == "order.placed")
SHARED_STEPS = ("source", "decode", "validate", "dedupe", "order_state")
BIG = MAX_RECORD_BYTES - 200


class RawHeaderKey(str):
    """A header key whose bytes on the wire are not UTF-8: kafka-python's producer writes a
    header key with `str.encode`, so this puts raw bytes into the record batch itself."""

    def encode(self, *args, **kwargs):
        return b"\xffkey\xfe"


def fresh(n, **changes):
    """A valid order.placed of an order no good command touches, as a dict to break."""
    order = f"bad-order-{n}"
    command = msgspec.to_builtins(PLACED)
    command.update(id=f"bad-{n}", aggregate_id=order)
    command["data"] = {**command["data"], "order_id": order}
    command.update(changes)
    return command


def text(doc):
    return json.dumps(doc).encode()


_wrong = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.text(max_size=4),
)
_wrong_for = {  # a value of each field's wrong type
    "str": _wrong.filter(lambda v: not isinstance(v, str)),
    "int": _wrong.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)),
    "dict": _wrong.filter(lambda v: not isinstance(v, dict)),
    "list": _wrong.filter(lambda v: not isinstance(v, list)),
}
_fields = {
    **dict.fromkeys(["id", "type", "aggregate_id"], "str"),
    **dict.fromkeys(["ts", "v"], "int"),
    "data": "dict",
    **dict.fromkeys(["data.order_id", "data.customer_id", "data.region", "data.currency"], "str"),
    "data.items": "list",
}
_numbers = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999", "-1", "1" + "0" * 30, "5e-324", "0.5"]
)

# Each is (kind, parameters); `render` turns one into (key, value, headers) for its index.
KINDS = [
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("deep"), st.integers(200, 5000), st.sampled_from(["[", '{"a":'])),
    st.tuples(st.just("number"), st.sampled_from(["ts", "v"]), _numbers),
    st.tuples(st.just("qty"), st.integers(10, 40)),
    st.sampled_from(list(_fields)).flatmap(
        lambda f: st.tuples(st.just("wrong_type"), st.just(f), _wrong_for[_fields[f]])
    ),
    st.tuples(st.just("dup_key"), st.sampled_from(["ts", "type", "data"]), st.integers()),
    st.tuples(st.just("control"), st.integers(0, 31)),
    st.tuples(st.just("empty"), st.sampled_from([None, b""]), st.sampled_from([None, b""])),
    st.tuples(st.just("key"), st.sampled_from([None, b""])),
    st.tuples(st.just("oversize"), st.integers(1024 * 1024 + 1, 1536 * 1024)),
    st.tuples(st.just("header_key"), st.binary(max_size=8)),
]
#: every kind two to four times, in an order of its own
BAD = st.tuples(*(st.lists(kind, min_size=2, max_size=4) for kind in KINDS)).flatmap(
    lambda lists: st.permutations([bad for kind in lists for bad in kind])
)


def render(bad, n):
    kind, *p = bad
    key = f"bad-order-{n}".encode()
    if kind == "bytes":
        return key, p[0], []
    if kind == "deep":
        depth, opener = p
        closer = "]" if opener == "[" else "}"
        nested = (opener * depth + "1" + closer * depth).encode()
        return key, text(fresh(n, data="@")).replace(b'"@"', nested), []
    if kind == "number":
        field, literal = p
        return key, text(fresh(n, **{field: "@"})).replace(b'"@"', literal.encode()), []
    if kind == "qty":
        doc = fresh(n)
        doc["data"]["items"] = [{"sku": "sku-001", "qty": 10 ** p[0], "unit_price": 1.0}]
        return key, text(doc), []
    if kind == "wrong_type":
        field, value = p
        doc = fresh(n)
        if field.startswith("data."):
            doc["data"][field[5:]] = value
        else:
            doc[field] = value
        return key, text(doc), []
    if kind == "dup_key":
        field, _ = p
        raw = text(fresh(n))
        return key, raw[:-1] + f', "{field}": "@wrong"}}'.encode(), []
    if kind == "control":
        raw = text(fresh(n)).replace(b'"customer_id": "', b'"customer_id": "' + bytes([p[0]]))
        return key, raw, []
    if kind == "empty":  # (the client refuses a record with neither)
        return (b"" if p[0] is None and p[1] is None else p[0]), p[1], []
    if kind == "key":
        return p[0], text(fresh(n)), []
    if kind == "oversize":
        return key, text(fresh(n, data={"blob": "x" * p[0]})), []
    assert kind == "header_key"
    return key, text(fresh(n)), [(RawHeaderKey("k"), p[0])]


@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(bad=BAD)
def test_fuzzed_records_between_good_commands(bad, brokers, run_bounded, store):
    tag = uuid.uuid4().hex[:8]
    topic = f"fuzz_{tag}"
    with CommandLog(brokers, topic) as log:
        log.ensure(3)
    producer = KafkaProducer(
        bootstrap_servers=brokers, acks="all", linger_ms=5, max_request_size=BIG + 64 * 1024
    )
    every = max(1, len(GOOD) // (len(bad) + 1))
    planted = {}  # (partition, offset) -> what was planted
    for i, command in enumerate(GOOD):
        producer.send(topic, key=command.aggregate_id.encode(), value=encode_command(command))
        if i % every == every - 1 and i // every < len(bad):
            n = i // every
            key, value, headers = render(bad[n], n)
            if headers:
                producer.flush()  # a batch of its own: what follows it stays readable
            sent = producer.send(topic, key=key, value=value, headers=headers)
            if headers:
                producer.flush()
            meta = sent.get(timeout=30)
            planted[meta.partition, meta.offset] = bad[n][0]
    # After every good command: a different command reusing a good id, the same bytes again
    # with a forged replay header, and a command just under the log's 16 MiB limit.
    reuse = msgspec.structs.replace(PLACED, data={**PLACED.data, "customer_id": "someone-else"})
    meta = producer.send(topic, key=reuse.aggregate_id.encode(), value=encode_command(reuse))
    meta = meta.get(timeout=30)
    planted[meta.partition, meta.offset] = "id_reuse"
    forged = [(REPLAYED_HEADER, b"0")]
    for command in GOOD[:3]:
        producer.send(topic, key=command.aggregate_id.encode(), value=encode_command(command),
                      headers=forged)  # fmt: skip
    huge = b'{"id":"huge","blob":"' + b"x" * (BIG - 23) + b'"}'
    assert len(huge) == BIG
    meta = producer.send(topic, key=b"huge", value=huge).get(timeout=60)
    planted[meta.partition, meta.offset] = "huge"
    producer.flush()
    producer.close()

    pipeline = renamed(
        load_pipeline(REPO / "examples" / "orders" / "specs" / "orders.yaml"), f"fz_{tag}"
    )
    registry = CollectorRegistry()
    deployment = run_bounded(pipeline, topic, registry=registry)
    assert deployment.state is State.COMPLETED

    db = pipeline.deployment
    rows = list(store.query(f"SELECT {ORDER_COLUMNS} FROM `{db}`.orders FINAL").named_results())
    assert diff_orders(expected_orders(GOOD), rows) == []
    revenue = pipeline.projections[1]
    windows = list(
        store.query(
            revenue.projector.view(qualified(db, revenue.output.table.name))
        ).named_results()
    )
    want = expected_revenue_per_minute(GOOD)
    assert diff_windows(want, windows, ("window_start", "region", "currency")) == []

    dlq = read_dlq(brokers, topic, expect=len(planted))
    where = [
        (int(h["source.partition"]), int(h["source.offset"]))
        for h in ({k: v.decode() for k, v in r.headers} for r in dlq)
    ]
    assert sorted(where) == sorted(planted), "each bad record in the DLQ exactly once"
    reasons = {w: dict(r.headers)["reason"].decode() for w, r in zip(where, dlq, strict=True)}
    assert all(reasons.values())
    assert {reasons[w] for w, kind in planted.items() if kind == "header_key"} <= {"unreadable"}
    assert reasons[next(w for w, k in planted.items() if k == "id_reuse")] == "id_conflict"
    big = next(r for w, r in zip(where, dlq, strict=True) if planted[w] == "huge")
    assert (dict(big.headers)["reason"], len(big.value)) == (b"too_large", BIG)

    def total(name, **labels):
        return sum(
            s.value
            for metric in registry.collect()
            for s in metric.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    consumed = total("cqrs_commands_consumed_total")
    assert consumed == len(GOOD) + len(planted) + 3
    rejected = sum(total("cqrs_commands_rejected_total", step=s) for s in SHARED_STEPS)
    skipped = sum(total("cqrs_commands_skipped_total", step=s) for s in SHARED_STEPS)
    assert skipped == 3  # the forged replays: repeats all the same
    assert consumed == total("cqrs_commands_accepted_total") + rejected + skipped
