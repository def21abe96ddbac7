"""The runtime's API, attacked over real HTTP: cross-site and foreign requests, DNS rebinding,
tokens, malformed lengths, slow clients, a crowd; then every route, and specs that name code
outside the allow-list. Nothing may hang or stop the runtime; every error is JSON."""

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import REPO
from tests.security.conftest import READ_TIMEOUT_S

ORDERS = (REPO / "examples" / "orders" / "specs" / "orders.yaml").read_text()
V2 = (REPO / "examples" / "orders" / "specs" / "orders_v2.yaml").read_text()


def raw(stack, data: bytes, wait_s: float = 15.0):
    """Send bytes as they are; the status and JSON of the answer, and whether the server
    closed the connection after it."""
    with socket.create_connection((stack.host, stack.port), timeout=wait_s) as s:
        s.sendall(data)
        return read_answer(s)


def read_answer(s):
    received = b""
    closed = False
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            closed = True
            break
        received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lengths = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
        if lengths and len(body) >= int(lengths[0].split(b":")[1]):
            closed = b"connection: close" in head.lower()
            break
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else 0
    return status, json.loads(body) if body else None, closed


def head(stack, method, path, *lines):
    extra = "".join(f"{line}\r\n" for line in lines)
    return f"{method} {path} HTTP/1.1\r\nHost: {stack.address}\r\n{extra}".encode()


def test_browsers_and_strangers_are_refused(stack):
    evil = {"Origin": "http://evil.example"}
    # a page elsewhere POSTing text/plain (no preflight): refused, whatever else it sends
    status, _, doc = stack.call("POST", "/query", b'{"sql": "SELECT 1"}',
                                {**evil, "Content-Type": "text/plain"}, token=False)  # fmt: skip
    assert status == 403 and "other origins" in doc["error"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        status, _, doc = stack.call("POST", "/query", b'{"sql": "SELECT 1"}',
                                    {"Content-Type": content_type})  # fmt: skip
        assert status == 415 and "application/json" in doc["error"], content_type
    assert stack.call("GET", "/health", headers=evil)[0] == 403
    assert stack.call("GET", "/health", headers={"Origin": f"http://{stack.address}"})[0] == 200
    # DNS rebinding: the browser sends the attacker's name as Host
    for host in (
        "evil.example",
        f"evil.example:{stack.port}",
        f"127.0.0.1.evil.example:{stack.port}",
    ):
        status, _, doc = stack.call("GET", "/health", headers={"Host": host})
        assert status == 400 and "CQRS_ALLOWED_HOSTS" in doc["error"], host
    assert raw(stack, b"GET /health HTTP/1.0\r\n\r\n")[0] == 400  # no Host at all
    # the token: on every route but the page, unknown routes too (nothing to enumerate)
    for method, path in [("GET", "/health"), ("GET", "/metrics"), ("GET", "/deployments"),
                         ("GET", "/schema/openapi.json"), ("GET", "/dashboard/data"),
                         ("POST", "/query"), ("GET", "/nope"), ("POST", "/deploy/init"),
                         ("POST", "/deployments/orders_v1/member")]:  # fmt: skip
        status, headers, doc = stack.call(method, path, {} if method == "POST" else None,
                                          token=False)  # fmt: skip
        assert status == 401 and "bearer token" in doc["error"], path
        assert headers["content-type"] == "application/json"
    for wrong in (f"Bearer {stack.token}x", f"bearer {stack.token}", stack.token, "Bearer "):
        assert stack.call("GET", "/health", headers={"Authorization": wrong}, token=False)[0] == 401
    # the page itself holds no data: no token needed, and the token may ride in its address
    for path in ("/dashboard", "/", "/dashboard?token=abc"):
        status, headers, page = stack.call("GET", path, token=False)
        assert status == 200 and "<svg" not in page and "innerHTML" not in page, path
        assert "script-src 'sha256-" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"


def test_malformed_lengths_and_bodies_get_json_errors(stack):
    auth = f"Authorization: Bearer {stack.token}"
    json_type = "Content-Type: application/json"
    cases = [
        (head(stack, "POST", "/query", auth, json_type, "Content-Length: -1") + b"\r\n{}", 400),
        (head(stack, "POST", "/query", auth, json_type, "Content-Length: abc") + b"\r\n{}", 400),
        (
            head(stack, "POST", "/query", auth, json_type, "Content-Length: 2", "Content-Length: 3")
            + b"\r\n{}",
            400,
        ),
        (
            head(stack, "POST", "/query", auth, json_type, "Content-Length: 99999999999999")
            + b"\r\n",
            413,
        ),
        (
            head(stack, "POST", "/query", auth, json_type, f"Content-Length: {2 * 2**20}")
            + b"\r\n"
            + b" " * 65536,
            413,
        ),
        (
            head(stack, "POST", "/query", auth, json_type, "Transfer-Encoding: chunked")
            + b"\r\n2\r\n{}\r\n0\r\n\r\n",
            411,
        ),
        (head(stack, "POST", "/query", auth, json_type) + b"\r\n", 411),
    ]
    for request, status in cases:
        got, doc, closed = raw(stack, request)
        assert got == status and "error" in doc, (request[:160], got, doc)
        assert closed, request[:160]
    for body, words in [(b"{", "JSON"), (b'{"sql": 1}', "sql"), (b"[]", "object"),
                        (b'{"sql": "SELECT 1", "x": 1}', "x")]:  # fmt: skip
        status, _, doc = stack.call("POST", "/query", body)
        assert status == 400 and words in doc["error"], (body, doc)
    assert stack.call("GET", "/nope")[0] == 404
    status, _, doc = stack.call("GET", "/query")
    assert status == 405 and "error" in doc
    assert stack.call("POST", "/deployments/orders_v1/explode", {})[0] == 404


def test_slow_clients_are_cut_and_the_runtime_goes_on(stack):
    def slow_head():
        with socket.create_connection((stack.host, stack.port), timeout=30) as s:
            s.sendall(b"POST /query HTTP/1.1\r\nHost: ")  # and then nothing
            started = time.monotonic()
            return *read_answer(s), time.monotonic() - started

    def slow_body():
        with socket.create_connection((stack.host, stack.port), timeout=30) as s:
            s.sendall(head(stack, "POST", "/query", f"Authorization: Bearer {stack.token}",
                           "Content-Type: application/json", "Content-Length: 40") + b"\r\n")  # fmt: skip
            started = time.monotonic()
            for byte in b'{"sql": "SELECT 1"':
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.3)
            return *read_answer(s), time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(slow_head), pool.submit(slow_body)]
        while not all(f.done() for f in slow):  # meanwhile the runtime answers everyone else
            assert stack.call("GET", "/health", timeout=10)[0] == 200
            time.sleep(0.2)
    for future in slow:
        status, doc, closed, took = future.result()
        assert status == 408 and "error" in doc and closed, (status, doc)
        assert READ_TIMEOUT_S - 0.5 < took < READ_TIMEOUT_S + 8


def test_a_crowd_gets_answers_or_503_and_never_a_hang(stack):
    barrier = threading.Barrier(200)

    def one(i):
        barrier.wait()
        if i % 2:
            return stack.call("POST", "/query", {"sql": "SELECT count() FROM query.orders"},
                              timeout=90)  # fmt: skip
        return stack.call("GET", "/deployments", timeout=90)

    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(one, range(200)))
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 32
    for status, headers, doc in answers:
        if status == 503:
            assert headers["retry-after"] == "1" and "error" in doc
    assert stack.call("GET", "/health")[0] == 200


def test_every_route(stack):
    status, _, deployments = stack.call("GET", "/deployments")
    assert status == 200 and [d["name"] for d in deployments] == ["orders_v1"]
    status, _, one = stack.call("GET", "/deployments/orders_v1")
    assert status == 200 and one["name"] == "orders_v1" and one["rows"]["orders"] > 0
    for method, path in [("GET", "/deployments/nope"), ("POST", "/deployments/nope/start"),
                         ("POST", "/deployments/nope/stop")]:  # fmt: skip
        status, _, doc = stack.call(method, path, {} if method == "POST" else None)
        assert status == 404 and "no deployment named 'nope'" in doc["error"], path
    # a member's ask for its run (the spec and settings: token only, above): orders_v1 runs in
    # one process, so there is no run to join; a malformed report names its field
    status, _, doc = stack.call("POST", "/deployments/orders_v1/member", {"process": 1, "pid": 2})
    assert status == 404 and "runs no cluster across hosts" in doc["error"], doc
    for bad, field in [({"process": 0, "pid": 1}, "process"), ({"process": 1, "pid": -1}, "pid"),
                       ({"process": 1, "pid": 1, "partitions": ["x"]}, "partitions"),
                       ({"process": 1, "pid": 1, "reports": [[1, []]]}, "reports"),
                       ({"process": 1, "pid": 1, "reports": [["on_step", []]] * 10_001}, "reports"),
                       ({"process": 1, "pid": 1, "run": "x"}, "run")]:  # fmt: skip
        status, _, doc = stack.call("POST", "/deployments/orders_v1/member", bad)
        assert status == 400 and field in doc["error"], (bad, doc)
    status, _, metrics = stack.call("GET", "/metrics")
    assert status == 200 and "cqrs_deployment_state" in metrics
    status, _, schema = stack.call("GET", "/schema/openapi.json")
    assert status == 200 and {"/query", "/deployments", "/deploy/init"} <= set(schema["paths"])
    # a replay: created, stopped, started again
    request = {"spec": ORDERS, "source": "orders.yaml", "from": "earliest", "into": "replay_a"}
    status, _, created = stack.call("POST", "/deployments", request)
    assert status == 200 and created["name"] == "replay_a", created
    status, _, again = stack.call("POST", "/deployments", request)
    assert status == 400 and "already exists" in again["error"]
    status, _, stopped = stack.call("POST", "/deployments/replay_a/stop", {})
    assert status == 200 and stopped["desired"] == "stopped"
    status, _, started = stack.call("POST", "/deployments/replay_a/start", {})
    assert status == 200 and started["desired"] == "running"
    # blue/green: init, promote, rollback, abort, cleanup, history
    status, _, state = stack.call("POST", "/deploy/init", {"spec": V2, "source": "v2.yaml"})
    assert status == 200 and state["green"] == "orders_v2", state
    assert stack.call("GET", "/deploy/orders")[2]["green"] == "orders_v2"
    status, _, doc = stack.call("POST", "/deploy/orders/promote", {"max_behind": -1})
    assert status == 400 and "max_behind" in doc["error"]
    status, _, doc = stack.call("POST", "/deploy/orders/promote", {"wait": 301})
    assert status == 400 and "wait" in doc["error"]
    status, _, state = stack.call("POST", "/deploy/orders/promote", {"force": True})
    assert status == 200 and state["active"] == "orders_v2" and state["draining"] == "orders_v1"
    status, _, state = stack.call("POST", "/deploy/orders/rollback", {})
    assert status == 200 and state["active"] == "orders_v1" and state["green"] == "orders_v2"
    status, _, state = stack.call("POST", "/deploy/orders/abort", {})
    assert status == 200 and state["green"] is None and state["active"] == "orders_v1"
    status, _, state = stack.call("POST", "/deploy/orders/cleanup", {})
    assert status == 200 and state["active"] == "orders_v1"
    live = {d["name"] for d in stack.call("GET", "/deployments")[2]}
    status, _, every = stack.call("GET", "/deployments?all=true")
    assert status == 200 and "orders_v2" in {d["name"] for d in every} - live
    status, _, history = stack.call("GET", "/deploy/orders/history")
    assert status == 200 and {"orders_v1", "orders_v2"} <= {v["name"] for v in history["versions"]}
    assert stack.query("SELECT count() FROM query.orders")[0] == 200


def test_specs_from_the_api_name_only_allowed_modules(stack):
    marker = stack.data_dir.parent / "imported"
    before = stack.query("SELECT name, revision FROM cqrs.deployments ORDER BY name")
    refused = [
        (ORDERS.replace("filters:", "modules: [tests.fixtures.import_marker]\nfilters:", 1),
         "'tests.fixtures.import_marker'"),
        (ORDERS.replace("examples.orders.schemas:SCHEMAS", "tests.fixtures.import_marker:SCHEMAS"),
         "'tests.fixtures.import_marker'"),
        (ORDERS.replace("examples.orders.schemas:SCHEMAS", "os:environ"), "'os'"),
        (ORDERS.replace("filters:\n", "filters:\n  - upcast: {rules: [{type: order.placed, "
                        "from: 1, to: 2, function: 'subprocess:run'}]}\n", 1), "'subprocess'"),
    ]  # fmt: skip
    for spec, module in refused:
        for path, body in [("/deployments", {"spec": spec, "into": "evil_1"}),
                           ("/deploy/init", {"spec": spec.replace("version: 1", "version: 9")})]:  # fmt: skip
            status, _, doc = stack.call("POST", path, body)
            assert status == 400, (path, doc)
            assert module in doc["error"] and "--allow-module" in doc["error"], doc
    assert not marker.exists()
    assert stack.query("SELECT name, revision FROM cqrs.deployments ORDER BY name") == before
    assert stack.query("SHOW DATABASES")[1]["rows"].count(["evil_1"]) == 0
    # a module the operator allowed (CQRS_ALLOW_MODULES) is fine
    allowed = ORDERS.replace("filters:", "modules: [tests.fixtures.user_filters]\nfilters:\n"
                             "  - tag_vip: {value: gold}", 1)  # fmt: skip
    status, _, created = stack.call(
        "POST", "/deployments", {"spec": allowed, "into": "allowed_1", "until": "now"}
    )
    assert status == 200 and created["name"] == "allowed_1", created
