"""Process 1 to N-1 of a deployment's Bytewax cluster (`python -m deploy.cluster_process`).

The runtime writes one JSON line to stdin (`deploy.cluster.payload`, with the cluster's
addresses and this process's id); this process builds the same dataflow, says `ready` on
stdout, and runs its share until the cluster ends, reporting what its metrics would count on
stdout. It then keeps reading stdin: `stop` ends its partitions gracefully, and the end of
stdin means the runtime is gone, so it exits at once rather than outlive it. That needs this
process's Python to run, which a Bytewax worker stuck in Rust may not let it do, so on Linux
the kernel also kills it when the runtime's thread that started it ends (`PR_SET_PDEATHSIG`:
that thread ends only after the cluster has). It never opens the store.

Its configuration is read from the payload as a member's on another host is
(`deploy.member.config_from`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any, TextIO, cast

from dataflows.metrics import DeploymentMetrics
from deploy.cluster import READY, STOP, Reporter
from deploy.deployment import Deployment
from deploy.member import config_from

#: exit code of a child whose runtime went away
ORPHANED = 70
#: exit code of a child whose cluster port someone else took
PORT_TAKEN = 71
#: prctl(2): the signal this process gets when its parent thread ends
PR_SET_PDEATHSIG = 1


class Lines:
    """A child's reports, as JSON lines on its stdout to the runtime."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()  # workers of this process report from their threads

    def send(self, method: str, args: list[Any]) -> None:
        line = json.dumps([method, args]) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()


def _follow_runtime(deployment: Deployment) -> None:
    """`stop` from the runtime stops gracefully; the end of stdin ends this process."""
    for line in sys.stdin:
        if line.strip() == STOP:
            deployment.stop(timeout_s=0)
    os._exit(ORPHANED)


def _die_with_parent(parent: int) -> None:
    """SIGKILL from the kernel when the thread that started this process ends (Linux); a
    parent already gone by now (this process was adopted) ends it here."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(ORPHANED)


def _check_port(address: str) -> None:
    """Exit before `ready` if this process's port is taken (someone took it after the runtime
    chose it): past `ready`, process 0 would wait for this process forever in Bytewax's
    connection setup. The port stays free for Bytewax's own bind (which reuses the address)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
    except OSError as exc:
        print(f"cluster port {address} is taken ({exc}): the runtime restarts the cluster on "
              f"other ports", file=sys.stderr)  # fmt: skip
        os._exit(PORT_TAKEN)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    ready_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # stdout carries `ready` only
    doc = json.loads(sys.stdin.readline())
    _die_with_parent(doc["parent"])
    config = config_from(doc)
    deployment = Deployment(config, cast(DeploymentMetrics, Reporter(Lines(ready_out).send)))
    threading.Thread(target=_follow_runtime, args=(deployment,), daemon=True).start()
    _check_port(doc["addresses"][doc["proc_id"]])
    ready_out.write(READY + "\n")
    ready_out.flush()
    deployment.run_member(doc["partitions"], doc["addresses"], doc["proc_id"])


if __name__ == "__main__":
    main()
