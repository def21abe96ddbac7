"""Process i > 0 of a deployment's cluster across hosts (`cqrs run SPEC --addresses … --process-id
i`): a *member*. It serves no API, opens no registry and, with the embedded engine, no store.

Process 0 (the runtime) owns the run: its supervisor starts and restarts the whole cluster as
one unit, and each run has an id. A member asks process 0's control API for the current run
(`POST /deployments/{name}/member`, with the runtime's bearer token), builds the same dataflow
from the payload it gets (the one a local child gets on stdin, `deploy.cluster.payload`, less
the keys its own settings give: broker, store DSN, recovery directory), and joins Bytewax's
cluster. While the run goes, a watcher asks again every `POLL_S`: when process 0 is stopping,
has started another run, or cannot be reached for `LOST_S`, the member ends its partitions.
When its run ends or fails, it asks for the next one (with a growing pause), until SIGTERM.
Each ask carries what its source and steps observed since the last (as a local child's stdout
does), so process 0's metrics count every partition's commands, rejects and lag.

Recovery: Bytewax needs the cluster as a whole to hold every recovery partition, any process
any of them, and reads the one copy it finds (bytewax.recovery). Process 0 makes them all in
its own recovery directory, so a member's directory must hold none: a stale copy there would be
read in place of process 0's. A member refuses to start with one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from core.errors import ConfigError, CqrsError
from dataflows.metrics import DeploymentMetrics
from dataflows.source import StartAt
from dataflows.spec import parse_pipeline
from deploy.client import RequestRefused, RuntimeClient
from deploy.cluster import Reporter
from deploy.deployment import Deployment, DeploymentConfig
from deploy.model import MAX_REPORTS, MemberReport, MemberRun

log = logging.getLogger(__name__)

#: how often a running member asks process 0 whether its run goes on
POLL_S = 1.0
#: process 0 unreachable this long: the member ends its partitions (Bytewax's exchange with it
#: is most likely broken already)
LOST_S = 15.0
#: the pause between asks for a run grows up to this
MAX_PAUSE_S = 5.0
#: a member whose run is over (asked to stop, or process 0 gone or on another run) gives it
#: this long to end; a run still not ended is stuck in Bytewax (connecting to a process 0 that
#: is gone, say), and the member exits with `STUCK` for its own supervisor to start it again
LEAVE_S = 30.0
STUCK = 75


def _ints(doc: dict[str, Any] | None) -> dict[int, Any] | None:
    """JSON's keys are text: the partitions they name, as numbers."""
    return None if doc is None else {int(k): v for k, v in doc.items()}


def config_from(doc: dict[str, Any]) -> DeploymentConfig:
    """The deployment a payload describes (`deploy.cluster.payload`), for a local child and a
    member alike. The spec is parsed without an allow-list: it is the text the runtime parsed
    (and held to its allow-list) when the deployment was registered."""
    start = doc["start"]
    return DeploymentConfig(
        pipeline=parse_pipeline(doc["spec"], doc["source"]),
        brokers=doc["brokers"],
        topic=doc["topic"],
        clickhouse_dsn=doc["clickhouse_dsn"],
        recovery_root=Path(doc["recovery_root"]),
        name=doc["name"],
        start=StartAt(start["kind"], start["timestamp_ms"], _ints(start["offsets"])),
        stop_at=_ints(doc["stop_at"]),
        epoch=timedelta(seconds=doc["epoch_s"]),
        partitions=doc["partitions"],
        skips={p: frozenset(o) for p, o in (_ints(doc["skips"]) or {}).items()},
        careful=_ints(doc["careful"]) or {},
        processes=doc["processes"],
        workers=doc["workers"],
    )


class Member:
    """One member's life: runs of process 0, joined one after another until `leave`."""

    def __init__(
        self,
        client: RuntimeClient,
        name: str,
        addresses: list[str],
        process_id: int,
        local: dict[str, str],
        workers: int | None = None,
    ) -> None:
        """`local`: this host's broker, store DSN and recovery root (`LOCAL_KEYS`)."""
        self._client = client
        self.name = name
        self._addresses = addresses
        self._process_id = process_id
        self._local = local
        self._workers = workers
        self._leaving = threading.Event()
        #: what this member's source and steps observed, until its next ask carries it
        self._pending: deque[tuple[str, list[Any]]] = deque(maxlen=MAX_REPORTS)
        self.deployment: Deployment | None = None
        #: runs joined so far (their ids), oldest first
        self.runs: list[str] = []
        #: why the member gave up (a refusal no new run cures), once `serve` has returned
        self.error: ConfigError | None = None

    def serve(self) -> None:
        """Join process 0's runs until `leave`; a run that fails is followed by the next."""
        pause = POLL_S
        while not self._leaving.is_set():
            run = self._next_run()
            if run is None:
                self._leaving.wait(pause)
                pause = min(MAX_PAUSE_S, pause * 2)
                continue
            pause = POLL_S
            try:
                self._join(run)
            except ConfigError as exc:
                self.error = exc
                return
            except Exception as exc:  # the cluster restarts as one: join its next run
                log.warning("%s: process %d's run %s ended: %s", self.name,
                            self._process_id, run.run, exc)  # fmt: skip

    def leave(self) -> None:
        """End this member's partitions (SIGTERM); `serve` returns once its run has ended."""
        self._leaving.set()
        deployment = self.deployment
        if deployment is not None:
            deployment.stop(timeout_s=0)

    def _report(self) -> MemberReport:
        deployment = self.deployment
        partitions = sorted(deployment.placement) if deployment is not None else []
        reports = [self._pending.popleft() for _ in range(len(self._pending))]
        return MemberReport(self._process_id, os.getpid(), partitions, reports)

    def _next_run(self) -> MemberRun | None:
        """Process 0's run, if one runs that this member has not joined yet."""
        try:
            run = self._client.member_run(self.name, self._report())
        except RequestRefused as exc:  # none runs now
            log.info("%s: no run to join yet: %s", self.name, exc)
            return None
        except CqrsError as exc:  # unreachable, or a token refused
            log.warning("%s: %s", self.name, exc)
            return None
        if run.stopping or (self.runs and run.run == self.runs[-1]):
            return None
        return run

    def _join(self, run: MemberRun) -> None:
        config = config_from({**run.payload, **self._local})
        if config.processes != len(self._addresses):
            raise ConfigError(
                f"{self.name} runs on {config.processes} processes in process 0, but this "
                f"member's --addresses names {len(self._addresses)}: give every process the "
                f"same --addresses"
            )
        if self._workers is not None and self._workers != config.workers:
            raise ConfigError(
                f"--workers {self._workers}: process 0 runs {config.workers} in each process; "
                f"give every process the same --workers"
            )
        reporter = Reporter(lambda method, args: self._pending.append((method, args)))
        deployment = Deployment(config, cast(DeploymentMetrics, reporter))
        _empty_recovery(deployment.recovery_dir)
        self.deployment = deployment
        self.runs.append(run.run)
        ended = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(deployment, run.run, ended), name=f"{self.name}-watch",
            daemon=True,
        )  # fmt: skip
        watcher.start()
        try:
            if self._leaving.is_set():
                deployment.stop(timeout_s=0)
            deployment.run_member(config.partitions or [], self._addresses, self._process_id)
        finally:
            self.deployment = None
            ended.set()
            watcher.join()

    def _watch(self, deployment: Deployment, run: str, ended: threading.Event) -> None:
        """End this member's partitions when process 0's run does (or is out of reach); exit
        if the run then does not end."""
        lost = 0.0
        while not ended.wait(POLL_S):
            try:
                now: MemberRun | None = self._client.member_run(self.name, self._report())
                lost = 0.0
            except CqrsError as exc:
                lost += POLL_S
                if lost < LOST_S:
                    continue
                log.warning("%s: process 0 lost (%s): ending this member's run", self.name, exc)
                now = None
            if now is None or now.stopping or now.run != run or self._leaving.is_set():
                deployment.stop(timeout_s=0)
                if not ended.wait(LEAVE_S):
                    log.error("%s: run %s did not end in %.0fs: exiting", self.name, run, LEAVE_S)
                    os._exit(STUCK)
                return


def _empty_recovery(directory: Path) -> None:
    """A member reads no recovery partition of its own (see the module's docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    held = sorted(p.name for p in directory.glob("part-*.sqlite3"))
    if held:
        raise ConfigError(
            f"{directory} holds recovery partitions {held}, but process 0 holds all of this "
            f"deployment's: remove them from this member's data dir (Bytewax could read a "
            f"stale copy in place of process 0's)"
        )
