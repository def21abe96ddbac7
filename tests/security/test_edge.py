"""The edge's HTTP surface under attack: a corpus of known abuses, then a hypothesis fuzzer of
bodies and headers against one real edge process. Every answer is JSON with the status its
case calls for, nothing a client sends ends the process, and nothing refused reaches the log."""

from __future__ import annotations

import re
import socket
import time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.log import CommandLog
from tests.integration.commands.edge_process import EdgeProcess, logged

CONTENT_TYPES = ["application/json", "application/x-ndjson", "application/cloudevents+json",
                 "application/cloudevents-batch+json", "text/plain", "application/xml"]  # fmt: skip
CE_HEADERS = ["ce-specversion", "ce-id", "ce-type", "ce-source", "ce-time", "ce-subject",
              "ce-partitionkey", "ce-dataversion"]  # fmt: skip


@pytest.fixture(scope="module")
def edge(brokers, tmp_path_factory):
    topic = f"edge_fuzz_{time.time_ns()}"
    with CommandLog(brokers, topic) as log:
        log.ensure(1)
    process = EdgeProcess(
        brokers, topic, tmp_path_factory.mktemp("edge"), "--max-body", "65536",
        "--rate-limit", "100000",
    )  # fmt: skip
    process.topic = topic
    yield process
    assert process.stop() == 0


def raw(edge, payload: bytes) -> tuple[int, dict]:
    """Send bytes as they are; (status, the JSON answer)."""
    with socket.create_connection((edge.host, edge.port), timeout=30) as sock:
        sock.sendall(payload)  # the socket stays open for writing: uvicorn drops a request
        data = b""  # whose client half-closed before the answer
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", head.lower())
            if length and len(body) >= int(length.group(1)):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), data[:300]
    return int(head.split()[1]), msgspec.json.decode(body)


def test_known_abuses_are_refused_as_json(edge):
    auth = f"Authorization: Bearer {edge.token}\r\n"
    host = f"Host: {edge.host}:{edge.port}\r\n"
    post = "POST /commands HTTP/1.1\r\n"
    cases = [
        (f"{post}{host}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}", 401),
        (f"{post}{host}Authorization: Bearer {edge.token}x\r\nContent-Type: application/json"
         "\r\nContent-Length: 2\r\n\r\n{}", 401),
        (f"{post}Host: evil.example\r\n{auth}Content-Type: application/json\r\n"
         "Content-Length: 2\r\n\r\n{}", 400),
        (f"{post}{host}Origin: http://evil.example\r\n{auth}Content-Type: application/json\r\n"
         "Content-Length: 2\r\n\r\n{}", 403),
        (f"{post}{host}{auth}Content-Type: application/json\r\nContent-Length: 9999999\r\n\r\n",
         413),
        (f"{post}{host}{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked"
         "\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
        (f"{post}{host}{auth}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}", 415),
        (f"{post}{host}{auth}Content-Type: application/json\r\nContent-Length: -1\r\n\r\n", 400),
        (f"GET /../../etc/passwd HTTP/1.1\r\n{host}{auth}\r\n", 404),
    ]  # fmt: skip
    for request, status in cases:
        assert raw(edge, request.encode())[0] == status, request
    deep = b"[" * 20_000 + b"]" * 20_000
    for body in (deep, b'{"id": "\xff"}', b"[" + b"{}," * 10_001 + b"{}]"):
        head = f"{post}{host}{auth}Content-Type: application/json\r\nContent-Length: {len(body)}"
        status, answer = raw(edge, head.encode() + b"\r\n\r\n" + body)
        assert status in (400, 413, 422), (status, answer)
    assert edge.request("GET", "/health", token=False)[0] == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=6),
    max_leaves=16,
)  # fmt: skip
envelope_like = st.fixed_dictionaries(
    {"id": st.text(max_size=8), "type": st.sampled_from(["order.placed", "order.paid", "x"]),
     "aggregate_id": st.text(max_size=8), "ts": st.integers(), "v": st.integers(-1, 3)},
    optional={"data": json_values, "specversion": st.just("1.0"), "source": st.text(max_size=4)},
)  # fmt: skip
bodies = (
    st.binary(max_size=400)
    | json_values.map(msgspec.json.encode)
    | envelope_like.map(msgspec.json.encode)
    | st.lists(envelope_like, max_size=5).map(msgspec.json.encode)
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES) | header_text,
    ce=st.dictionaries(st.sampled_from(CE_HEADERS), header_text, max_size=5),
)
def test_fuzzed_bodies_and_headers_get_json_answers_and_log_nothing_refused(
    edge, body, content_type, ce
):
    status, answer, _ = edge.post(body, content_type, **ce)
    assert status in (202, 207, 400, 409, 415, 422), answer
    if status >= 400:
        assert isinstance(answer.get("error"), str) and answer["error"]
    for entry in answer.get("commands", []):
        assert entry["status"] in (202, 409, 422)
        if entry["status"] == 202:
            edge.accepted = getattr(edge, "accepted", set()) | {entry["id"]}


def test_the_fuzzed_edge_logged_only_what_it_accepted(edge, brokers):
    ids = {command.id for _, _, command in logged(brokers, edge.topic)}
    assert ids == getattr(edge, "accepted", set())
    assert edge.request("GET", "/health", token=False)[0] == 200
