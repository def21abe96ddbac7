"""A deployment as a Bytewax cluster of processes on one machine: the runtime's side.

With the embedded engine only one process may open the store, and the runtime holds it, so
process 0 of the cluster is the runtime's own deployment thread: it lists every partition of
every table sink and so receives, over Bytewax's TCP exchange, the rows the other processes
made. Processes 1 to N-1 are children (`python -m deploy.cluster_process`) that build the same
dataflow from the same spec and settings, read their share of the log partitions, and never
open the store. Their DLQ and topic sinks write to Kafka themselves, flushing before their
epoch closes as in one process, so a snapshot never covers a reject still in a buffer.

A child reports what its source and steps observe (commands read, positions, lag, rejects) to
the runtime as JSON lines on its stdout; the runtime applies them to the deployment's metrics,
so lag per partition and the counts stay whole whichever process reads a partition, and the
deployment knows which process reads which partition.

The cluster is one unit: a child that dies breaks Bytewax's exchange and process 0's run
raises, so the supervisor restarts the whole cluster from the last snapshot. No orphan outlives
its runtime (even one killed by kill -9): a child reads its stdin until the end and exits
there, and on Linux the kernel kills it when the runtime's thread that started it ends
(`deploy.cluster_process`). The same pipe carries `stop`, the graceful stop.

A cluster across hosts (`cqrs run --addresses … --process-id i`) has no children: its other
processes are members on their hosts (`deploy.member`), which get the same payload, less what
their own settings say (`shared_payload`), from process 0's API. Its addresses are checked
here (`check_addresses`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from core.errors import ConfigError, CqrsError

if TYPE_CHECKING:
    from deploy.deployment import DeploymentConfig

log = logging.getLogger(__name__)

#: the largest cluster a deployment may be on one machine (processes, workers per process)
MAX_PROCESSES = 8
MAX_WORKERS = 8
#: how long a child may take to import, parse its spec and build its dataflow
READY_TIMEOUT_S = 120.0
#: how long children get to finish their last epoch after process 0's run ended
EXIT_TIMEOUT_S = 30.0
READY = "ready"
STOP = "stop"
#: the metric callbacks a child reports, by name (`dataflows.metrics.DeploymentMetrics`)
REPORTED = frozenset(
    {"on_consumed", "on_step", "on_rejected", "on_skipped", "on_accepted", "on_watermark"}
)
#: (process id, callback name, its arguments): a report of a child
Report = Callable[[int, str, list[Any]], None]


class ClusterError(CqrsError):
    """A process of a deployment's cluster failed to start or ended badly."""


def check_addresses(addresses: list[str], process_id: int) -> None:
    """Refuse a cluster across hosts that Bytewax could not form: the messages name the flag
    (`cqrs run --addresses … --process-id i`) and the fix."""
    if not 1 <= len(addresses) <= MAX_PROCESSES:
        raise ConfigError(
            f"--addresses names {len(addresses)} processes; a cluster has 1 to {MAX_PROCESSES}: "
            f"host:port of each process, comma-separated, process 0 first"
        )
    for address in addresses:
        host, _, port = address.rpartition(":")
        if (
            not host
            or not re.fullmatch(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]", host)
            or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)
        ):
            raise ConfigError(
                f"--addresses: {address!r} is not host:port (a host name or address, and a "
                f"port from 1 to 65535), e.g. cqrs-runtime-0.cqrs-runtime:9000"
            )
    if len(set(addresses)) != len(addresses):
        raise ConfigError(f"--addresses names a process twice: {','.join(addresses)}")
    if not 0 <= process_id < len(addresses):
        raise ConfigError(
            f"--process-id {process_id} is not a process of --addresses (0 to "
            f"{len(addresses) - 1}): give each process its index in the list"
        )


class Reporter:
    """Stands in for a deployment's metrics in a process other than 0: each callback its
    source and steps make goes to `send` (a child's stdout, a member's next ask), and process
    0 applies it to the metrics it serves (`Deployment._reported`)."""

    def __init__(self, send: Callable[[str, list[Any]], None]) -> None:
        self._send = send

    def __getattr__(self, method: str) -> Callable[..., None]:
        if method not in REPORTED:
            return _ignore

        def report(*args: Any) -> None:
            self._send(method, list(args))

        return report


def _ignore(*args: Any) -> None:
    return None


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports no one listens on now, held open together so they differ."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]


class Cluster:
    """The child processes of one run of a deployment, from their start to their end."""

    def __init__(
        self, name: str, payload: dict[str, Any], processes: int, workers: int, report: Report
    ) -> None:
        self.name = name
        self._report = report
        self.processes = processes
        self.workers = workers
        self.addresses = [f"127.0.0.1:{p}" for p in free_ports(processes)]
        self._payload = payload
        self._children: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    @property
    def pids(self) -> list[int]:
        """The children's process ids, process 1 first."""
        return [c.pid for c in self._children]

    def start(self) -> None:
        """Start processes 1 to N-1 and wait until each has built its dataflow (a child that
        cannot parse its spec fails here, before process 0 waits for it on the network)."""
        for proc_id in range(1, self.processes):
            doc = {**self._payload, "addresses": self.addresses, "proc_id": proc_id,
                   "parent": os.getpid()}  # fmt: skip
            child = subprocess.Popen(
                [sys.executable, "-m", "deploy.cluster_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
            self._children.append(child)
            assert child.stdin is not None
            child.stdin.write(json.dumps(doc).encode() + b"\n")
            child.stdin.flush()
        deadline = time.monotonic() + READY_TIMEOUT_S
        for proc_id, child in enumerate(self._children, start=1):
            self._await_ready(proc_id, child, deadline)
        for proc_id, child in enumerate(self._children, start=1):
            threading.Thread(
                target=self._read_reports, args=(proc_id, child), name=f"{self.name}-{proc_id}",
                daemon=True,
            ).start()  # fmt: skip
        log.info("%s: cluster of %d processes, children %s", self.name, self.processes, self.pids)

    def _await_ready(self, proc_id: int, child: subprocess.Popen[bytes], deadline: float) -> None:
        assert child.stdout is not None
        wait = max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([child.stdout], [], [], wait)
        line = child.stdout.readline() if readable else b""
        if line.strip() != READY.encode():
            self.kill()
            raise ClusterError(
                f"{self.name}: process {proc_id} of {self.processes} did not start "
                f"(exit code {child.poll()}; its error is in the runtime's log above)"
            )

    def _read_reports(self, proc_id: int, child: subprocess.Popen[bytes]) -> None:
        """Apply a child's reports until its stdout ends (it must never fill: the child would
        block on it)."""
        assert child.stdout is not None
        for line in child.stdout:
            try:
                method, args = json.loads(line)
                if method in REPORTED:
                    self._report(proc_id, method, args)
            except Exception:  # a report is for monitoring: it never stops the cluster
                log.exception("%s: process %d sent a bad report %r", self.name, proc_id, line)

    def stop(self) -> None:
        """Ask every child to end its partitions at their next batch (a graceful stop)."""
        with self._lock:
            for child in self._children:
                with contextlib.suppress(OSError, ValueError):
                    assert child.stdin is not None
                    child.stdin.write(STOP.encode() + b"\n")
                    child.stdin.flush()

    def kill(self) -> None:
        """End every child now (process 0's run failed: the cluster restarts as one)."""
        for child in self._children:
            if child.poll() is None:
                child.kill()
        self._reap(EXIT_TIMEOUT_S)

    def finish(self) -> None:
        """After process 0's run completed: wait for the children, and fail if any failed."""
        self._reap(EXIT_TIMEOUT_S)
        for child in self._children:
            if child.poll() is None:
                child.kill()
        self._reap(5.0)
        failed = {i: c.returncode for i, c in enumerate(self._children, start=1) if c.returncode}
        if failed:
            raise ClusterError(f"{self.name}: cluster processes ended with exit codes {failed}")

    def _reap(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
            if child.returncode is not None:
                for pipe in (child.stdin, child.stdout):
                    with contextlib.suppress(OSError):
                        if pipe is not None:
                            pipe.close()


def payload(config: DeploymentConfig, partitions: list[int]) -> dict[str, Any]:
    """What a child needs to build the same dataflow as process 0, as JSON: the spec itself
    (not a path), the settings, and where this run starts, stops and passes over."""
    start = config.start
    return {
        "spec": msgspec.json.encode(config.pipeline.spec).decode(),
        "source": config.pipeline.source,
        "brokers": config.brokers,
        "topic": config.topic,
        "clickhouse_dsn": config.clickhouse_dsn,
        "recovery_root": str(config.recovery_root),
        "name": config.name,
        "start": {"kind": start.kind, "timestamp_ms": start.timestamp_ms,
                  "offsets": dict(start.offsets) if start.offsets is not None else None},
        "stop_at": config.stop_at,
        "epoch_s": config.epoch.total_seconds(),
        "partitions": partitions,
        "skips": {p: sorted(offsets) for p, offsets in config.skips.items()},
        "careful": config.careful,
        "processes": config.processes,
        "workers": config.workers,
    }  # fmt: skip


#: where a process finds the broker, the store and its recovery directory: its own settings
#: say that on another host (and a DSN may hold a password, which no answer should carry)
LOCAL_KEYS = ("brokers", "clickhouse_dsn", "recovery_root")


def shared_payload(doc: dict[str, Any]) -> dict[str, Any]:
    """The payload a member on another host gets from process 0: all but the local keys."""
    return {k: v for k, v in doc.items() if k not in LOCAL_KEYS}
