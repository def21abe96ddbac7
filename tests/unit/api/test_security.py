"""The ASGI guard on its own, with a stand-in app: the in-flight bound, the order of checks,
and what a refused request never reaches."""

import asyncio
import json

from api.security import Guard, Limits, allowed_hosts

HOSTS = allowed_hosts("127.0.0.1", 8765, ["runtime", "cqrs.example:443"])


def scope(method="GET", path="/health", headers=()):
    base = [(b"host", b"127.0.0.1:8765"), (b"authorization", b"Bearer t0ken")]
    names = {name for name, _ in headers}
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [h for h in base if h[0] not in names] + list(headers),
    }


async def call(guard, s, body=b""):
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await guard(s, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), payload


def test_allowed_hosts():
    assert {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"} <= HOSTS
    assert {"runtime", "runtime:8765", "cqrs.example:443"} <= HOSTS
    assert "cqrs.example:8765" not in HOSTS and "evil.example:8765" not in HOSTS
    assert "10.0.0.5:8765" in allowed_hosts("10.0.0.5", 8765)
    assert "0.0.0.0:8765" not in allowed_hosts("0.0.0.0", 8765)


def test_refusals_come_before_the_app():
    reached = []

    async def app(s, receive, send):
        reached.append(s["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = Guard(app, "t0ken", HOSTS, Limits())
    cases = [
        (scope(headers=[(b"host", b"evil.example:8765")]), 400),
        (scope(headers=[(b"origin", b"http://evil.example")]), 403),
        (scope(headers=[(b"authorization", b"Bearer wrong")]), 401),
        (scope(headers=[(b"authorization", b"bearer t0ken")]), 401),
        (scope(path="/nope", headers=[(b"authorization", b"")]), 401),
        (scope("POST", "/query", [(b"content-type", b"text/plain")]), 415),
        (scope("POST", "/query", [(b"content-type", b"application/json")]), 411),
        (
            scope(
                "POST",
                "/query",
                [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"2"),
                    (b"transfer-encoding", b"chunked"),
                ],
            ),
            411,
        ),
        (
            scope(
                "POST",
                "/query",
                [(b"content-type", b"application/json"), (b"content-length", b"\xc2\xb2")],
            ),
            400,
        ),
        (
            scope(
                "POST",
                "/query",
                [(b"content-type", b"application/json"), (b"content-length", b"99999999999")],
            ),
            413,
        ),
    ]
    for s, status in cases:
        got, headers, payload = asyncio.run(call(guard, s))
        assert got == status, (s["headers"], got, payload)
        assert headers[b"content-type"] == b"application/json"
        assert "error" in json.loads(payload)
    assert reached == []
    # the page is public; the own origin is fine
    public = scope(path="/dashboard", headers=[(b"authorization", b"")])
    assert asyncio.run(call(guard, public))[0] == 200
    own = scope(headers=[(b"origin", b"http://localhost:8765")])
    assert asyncio.run(call(guard, own))[0] == 200


def test_requests_past_the_in_flight_limit_get_503_with_retry_after():
    release = asyncio.Event()

    async def slow(s, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = Guard(slow, "t0ken", HOSTS, Limits(max_in_flight=3))

    async def scenario():
        first = [asyncio.create_task(call(guard, scope())) for _ in range(3)]
        await asyncio.sleep(0.05)
        refused = await call(guard, scope())
        release.set()
        return refused, await asyncio.gather(*first)

    (status, headers, _), served = asyncio.run(scenario())
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert [s for s, _, _ in served] == [200, 200, 200]
    assert asyncio.run(call(guard, scope()))[0] == 200  # the slots were given back


def test_a_body_longer_than_announced_or_slow_is_refused():
    async def app(s, receive, send):
        raise AssertionError("the app must not see it")

    guard = Guard(app, "t0ken", HOSTS, Limits(read_timeout_s=0.2))
    post = scope("POST", "/query", [(b"content-type", b"application/json"),
                                   (b"content-length", b"2")])  # fmt: skip
    assert asyncio.run(call(guard, post, b'{"sql": 1}'))[0] == 400

    async def never():
        await asyncio.sleep(10)

    async def stalled():
        sent = []

        async def send(message):
            sent.append(message)

        await guard(post, never, send)
        return sent[0]["status"], dict(sent[0]["headers"])

    status, headers = asyncio.run(stalled())
    assert status == 408 and headers[b"connection"] == b"close"
