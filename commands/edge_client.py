"""A client of the edge with the producer's interface (`send`, `flush`, `acked`, `errors`), so
`cqrs produce --via URL` drives the edge with the same generator and progress line as the
broker. Commands go in batches over one kept-alive connection; a 503 or 429 is waited out for
its Retry-After and the commands not accepted are sent again with the same ids (the edge
answers those it logged already without a second append)."""

from __future__ import annotations

import http.client
import ssl
import time
from urllib.parse import urlsplit

import msgspec

from core.envelope import Command
from core.errors import CqrsError

RETRY_FOR_S = 120.0


class EdgeClient:
    def __init__(self, url: str, token: str | None, batch: int = 100) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CqrsError(f"--via {url!r}: give the edge's URL, like http://127.0.0.1:8766")
        if not token:
            raise CqrsError("no token for the edge: set CQRS_TOKEN (or use the edge's data dir)")
        self._open = lambda: (
            http.client.HTTPSConnection(parts.hostname, parts.port, timeout=60,
                                        context=ssl.create_default_context())
            if parts.scheme == "https"
            else http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        )  # fmt: skip
        self._conn = self._open()
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self._batch_size = batch
        self._batch: list[Command] = []
        self.acked = 0
        self.errors = 0
        self.last_error: str | None = None

    def send(self, command: Command) -> None:
        self._batch.append(command)
        if len(self._batch) >= self._batch_size:
            self._post()

    def flush(self, timeout_s: float | None = None) -> None:
        if self._batch:
            self._post()

    def close(self) -> None:
        self.flush()
        self._conn.close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self) -> None:
        pending, self._batch = self._batch, []
        deadline = time.monotonic() + RETRY_FOR_S
        while pending:
            status, answer, retry_after = self._request(msgspec.json.encode(pending))
            accepted = {e["id"] for e in answer.get("commands", []) if e.get("status") == 202}
            self.acked += len(accepted)
            pending = [c for c in pending if c.id not in accepted]
            if pending and status not in (None, 429, 503):  # refused: resending cannot help
                self.errors += len(pending)
                self.last_error = f"{status}: {answer.get('error')}"
                return
            if pending and time.monotonic() + retry_after > deadline:
                self.errors += len(pending)
                self.last_error = f"the edge did not take {len(pending)} commands: {answer}"
                return
            if pending:
                time.sleep(retry_after)

    def _request(self, body: bytes) -> tuple[int | None, dict, float]:
        """(status, answer, seconds to wait before a retry); status None when the connection
        failed (it is opened again)."""
        try:
            self._conn.request("POST", "/commands", body=body, headers=self._headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            self._conn = self._open()
            return None, {"error": str(exc)}, 1.0
        try:
            answer = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            answer = {"error": raw[:200].decode("utf-8", "replace")}
        retry = response.getheader("Retry-After", "1")
        return response.status, answer, float(retry) if retry.isdigit() else 1.0
