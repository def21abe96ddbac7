"""A real `cqrs edge` process against the session's broker: what it answers, and what the log
holds afterwards (every command answered 202 exactly once, at the partition and offset the
answer gave; nothing refused)."""

from __future__ import annotations

import os
import ssl
import subprocess
import time

import msgspec
import pytest

from core.envelope import encode_command
from examples.orders.generator import OrderGenerator
from examples.orders.schemas import SCHEMAS
from tests.integration.commands.edge_process import CQRS, EdgeProcess, logged

NOW_MS = int(time.time() * 1000)


@pytest.fixture(scope="module")
def topic(brokers):
    from commands.log import CommandLog

    name = f"edge_{int(time.time() * 1000)}"
    with CommandLog(brokers, name) as log:
        log.ensure(3)
    return name


@pytest.fixture(scope="module")
def edge(brokers, topic, tmp_path_factory):
    process = EdgeProcess(brokers, topic, tmp_path_factory.mktemp("edge"))
    yield process
    process.stop()


def placed(order_id: str, command_id: str, **data_changes) -> dict:
    data = {"order_id": order_id, "customer_id": "c-1", "region": "eu-west", "currency": "EUR",
            "items": [{"sku": "s-1", "qty": 2, "unit_price": 9.5}], **data_changes}  # fmt: skip
    return {"id": command_id, "type": "order.placed", "aggregate_id": order_id, "ts": NOW_MS,
            "v": 1, "data": data}  # fmt: skip


def test_commands_in_every_form_are_logged_once_and_refusals_never(edge, brokers, topic):
    accepted: dict[str, tuple[int, int]] = {}

    def take(answer):
        for entry in answer["commands"]:
            if entry["status"] == 202:
                accepted[entry["id"]] = (entry["partition"], entry["offset"])

    # no token: 401, and nothing else happens
    status, answer, _ = edge.request("POST", "/commands", b"{}", token=False)
    assert status == 401 and "token" in answer["error"]

    # one command: 202 with its place in the log; the same request again: the same answer
    one = msgspec.json.encode(placed("o-1", "c-one"))
    status, first, _ = edge.post(one)
    assert status == 202 and first["accepted"] == 1, first
    for _ in range(3):
        assert edge.post(one)[:2] == (202, first)
    take(first)

    # the same id for a different command: 409, nothing logged
    status, answer, _ = edge.post(msgspec.json.encode(placed("o-1", "c-one", region="us-east")))
    assert status == 409 and answer["commands"][0]["path"] == "$.id", answer

    # a batch, answered per command: generated orders plus three broken ones
    good = OrderGenerator(seed=5, start_ms=NOW_MS - 60_000).take(200)
    broken = [
        placed("o-2", "bad-qty", items=[{"sku": "s", "qty": "2", "unit_price": 1}]),
        {**placed("o-3", "bad-ts"), "ts": NOW_MS + 86_400_000},
        {**placed("o-4", "bad-type"), "type": "order.exploded"},
    ]
    body = msgspec.json.encode([msgspec.to_builtins(c) for c in good] + broken)
    status, batch, _ = edge.post(body)
    assert status == 207 and (batch["accepted"], batch["refused"]) == (200, 3), batch["error"]
    errors = {e["id"]: (e["status"], e["reason"], e["path"]) for e in batch["commands"][200:]}
    assert errors == {
        "bad-qty": (422, "invalid_data", "$.data.items[0].qty"),
        "bad-ts": (422, "future_time", "$.ts"),
        "bad-type": (422, "unknown_type", "$.type"),
    }
    assert "Expected `int`, got `str`" in batch["commands"][200]["expected"]
    take(batch)
    # every refused: 422 for the request, the first field named in `error`
    status, answer, _ = edge.post(msgspec.json.encode(broken))
    assert status == 422 and answer["error"].startswith("command 0: $.data.items[0].qty"), answer

    # NDJSON
    lines = [placed(f"o-n{i}", f"nd-{i}") for i in range(3)]
    status, answer, _ = edge.post(
        b"\n".join(msgspec.json.encode(x) for x in lines) + b"\n", "application/x-ndjson"
    )
    assert status == 202 and answer["accepted"] == 3, answer
    take(answer)

    # CloudEvents, in the shapes of the spec's HTTP binding examples (structured, batched,
    # binary); the extension `partitionkey` or else `subject` is the aggregate id
    data = placed("o-ce", "x")["data"]
    event = {"specversion": "1.0", "type": "order.placed", "source": "/mycontext/subcontext",
             "id": "1234-1234-1234", "time": "2018-04-05T03:56:24Z", "subject": "o-ce",
             "datacontenttype": "application/json", "data": data}  # fmt: skip
    status, answer, _ = edge.post(
        msgspec.json.encode(event), "application/cloudevents+json; charset=utf-8"
    )
    assert status == 202, answer
    take(answer)
    events = [{**event, "id": f"ce-b{i}", "partitionkey": f"o-cb{i}", "subject": "ignored",
               "data": {**data, "order_id": f"o-cb{i}"}} for i in range(2)]  # fmt: skip
    status, answer, _ = edge.post(msgspec.json.encode(events), "application/cloudevents-batch+json")
    assert status == 202 and answer["accepted"] == 2, answer
    take(answer)
    status, answer, _ = edge.post(
        msgspec.json.encode({**data, "order_id": "o-bin"}),
        "application/json; charset=utf-8",
        **{"ce-specversion": "1.0", "ce-type": "order.placed", "ce-time": "2018-04-05T03:56:24Z",
           "ce-id": "ce-bin%201", "ce-source": "/mycontext/subcontext",
           "ce-subject": "o-bin", "ce-dataversion": "1"},
    )  # fmt: skip
    assert status == 202, answer
    take(answer)
    status, answer, _ = edge.post(
        msgspec.json.encode({**event, "id": "ce-nokey", "subject": None}),
        "application/cloudevents+json",
    )
    assert status == 422 and answer["commands"][0]["path"] == "$.partitionkey", answer

    # the log holds exactly the accepted commands, once each, where the answers said
    records = logged(brokers, topic)
    by_id = {command.id: (partition, offset, command) for partition, offset, command in records}
    assert len(records) == len(by_id) == len(accepted) == 1 + 200 + 3 + 1 + 2 + 1
    assert {i: (p, o) for i, (p, o, _) in by_id.items()} == accepted
    for command in good:
        assert encode_command(by_id[command.id][2]) == encode_command(command)
    mapped = by_id["1234-1234-1234"][2]
    assert (mapped.type, mapped.aggregate_id, mapped.ts, mapped.v, mapped.data) == (
        "order.placed", "o-ce", 1522900584000, 1, data)  # fmt: skip
    assert by_id["ce-b1"][2].aggregate_id == "o-cb1"
    assert by_id["ce-bin 1"][2].aggregate_id == "o-bin"

    # what else it serves: health without a token, OpenAPI from the schemas, metrics
    assert edge.request("GET", "/health", token=False)[:2] == (200, {"status": "ok"})
    assert edge.request("GET", "/openapi.json", token=False)[0] == 401
    status, document, _ = edge.request("GET", "/openapi.json")
    assert status == 200
    for type_ in SCHEMAS.types():
        for v in SCHEMAS.versions(type_):
            assert document["components"]["schemas"][f"{type_}.v{v}"]["properties"]["v"] == {
                "const": v
            }
    status, metrics, _ = edge.request("GET", "/metrics")
    text = metrics["text"]
    assert 'cqrs_edge_commands_total{outcome="accepted",reason=""}' in text
    assert 'cqrs_edge_commands_total{outcome="refused",reason="invalid_data"} 2.0' in text
    assert "cqrs_edge_produce_seconds_count" in text and "cqrs_edge_requests_in_flight" in text


def test_tls_rate_limit_and_sigterm(brokers, topic, tmp_path):
    """Served over TLS when given a certificate; past the rate limit 429 with Retry-After; on
    SIGTERM it answers what it accepted and exits 0."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls = ssl.create_default_context(cafile=str(cert))
    edge = EdgeProcess(brokers, topic, tmp_path / "edge", "--certfile", str(cert),
                       "--keyfile", str(key), "--rate-limit", "2", tls=tls)  # fmt: skip
    try:
        assert edge.url.startswith("https://")
        assert edge.post(msgspec.json.encode(placed("o-t", "term-1")))[0] == 202
        answers = [edge.request("GET", "/openapi.json") for _ in range(6)]
        limited = [(a, h) for s, a, h in answers if s == 429]
        assert limited, [s for s, _, _ in answers]
        assert "rate" in limited[0][0]["error"] and int(limited[0][1]["retry-after"]) >= 0
    finally:
        assert edge.stop() == 0
    assert any(c.id == "term-1" for _, _, c in logged(brokers, topic))


def test_produce_via_the_edge_logs_every_generated_command(edge, brokers, topic, tmp_path):
    before = {c.id for _, _, c in logged(brokers, topic)}
    env = {**os.environ, "CQRS_TOKEN": edge.token, "CQRS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [str(CQRS), "produce", "--via", edge.url, "--count", "1000", "--seed", "21"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "acked      1,000" in done.stderr
    added = {c.id for _, _, c in logged(brokers, topic)} - before
    assert added == {c.id for c in OrderGenerator(seed=21).take(1000)}
