"""Supervision of a runtime's deployments, in one thread of its own.

A deployment that crashed is restarted with a growing pause, and how each run ended is
recorded in the registry. A deployment that fails `FAILURES_AT_ONE_PLACE` times in a row at the
same record is not restarted again: it stops with an error naming the partition and offset and
the `cqrs skip` that passes over it. A failure inside a batch names the batch's first offset, so
the restart after it reads that stretch one record per batch (`careful`), and the next failure
names the record.

Every few seconds the supervisor also takes in partitions added to a command log (Bytewax fixes
a run's partitions when it starts, so each tailing deployment of that log restarts from its
snapshot, the new partitions from their beginning), commits each deployment's written offsets to
its consumer group, and sets the state and progress gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from clickhouse_connect.driver.client import Client

from core.errors import (
    CommandLogError,
    ConfigError,
    CqrsError,
    FailedAt,
    RecoveryError,
    SpecError,
    StuckAt,
)
from dataflows.source import BATCH_SIZE
from deploy.deployment import Deployment
from deploy.logs import CommandLogs
from deploy.model import Desired, State
from deploy.records import Record, Records
from deploy.specs import Specs
from deploy.status import describe, written

log = logging.getLogger(__name__)

#: errors that a restart cannot cure: the deployment stays failed until someone acts
_REFUSALS = (RecoveryError, CommandLogError, SpecError, ConfigError, StuckAt)
#: failures in a row at the same record before a deployment waits for `cqrs skip`
FAILURES_AT_ONE_PLACE = 5
_FIRST_RESTART_S = 1.0
_MAX_RESTART_S = 60.0
_COMMIT_EVERY_S = 5.0


def root_cause(exc: BaseException) -> BaseException:
    """The project error under the wrappers Bytewax puts around what a step raised."""
    seen = exc
    while seen is not None:
        if isinstance(seen, CqrsError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return exc


class Supervised(Protocol):
    """What supervision needs of the runtime: its deployments, under its lock, and a way to
    launch one."""

    lock: threading.RLock
    deployments: dict[str, Deployment]

    @property
    def records(self) -> Records: ...

    def launch(self, record: Record, note: str = "") -> Deployment: ...


class Supervisor:
    def __init__(self, host: Supervised, logs: CommandLogs, client: Client, specs: Specs) -> None:
        self._host = host
        self._logs = logs
        self._client = client
        self._specs = specs
        self._restarts: dict[str, tuple[int, float]] = {}  # name -> (attempts, due at)
        # name -> ((partition, offset) of its last failure, failures there in a row, the run
        # that failed last: each run is counted once)
        self._failed_at: dict[str, tuple[tuple[int, int], int, Deployment]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    # -- what the runtime asks -------------------------------------------------------------------

    def careful(self, name: str) -> dict[int, int]:
        """After a failure at a batch: its stretch of the log, to be read a record at a time."""
        failed = self._failed_at.get(name)
        if failed is None:
            return {}
        (partition, offset), _, _ = failed
        return {partition: offset + BATCH_SIZE}

    def reset(self, name: str) -> None:
        """Start counting failures and pauses afresh (after a skip, or a deployment gone)."""
        self._failed_at.pop(name, None)
        self._restarts.pop(name, None)

    def settled(self, deployment: Deployment | None) -> Deployment | None:
        """The deployment if it has ended for good (completed, stopped, or failed in a way a
        restart cannot cure), None while it runs or waits to be restarted."""
        if deployment is None or deployment.join(0) is False:
            return None
        if deployment.state is State.FAILED:
            cause = root_cause(deployment.error) if deployment.error else None
            return deployment if isinstance(cause, _REFUSALS) else None
        return deployment

    def record_end(self, deployment: Deployment, detail: str = "") -> None:
        """How a run ended, in the registry and the deployment's history."""
        records = self._host.records
        record = records.get(deployment.name)
        if record is None or (record.state == deployment.state and not detail):
            return
        record.state = deployment.state
        if deployment.error is not None:
            record.error = str(root_cause(deployment.error))
        records.save(record)
        records.note(record, deployment.state, detail or record.error)

    # -- the passes ------------------------------------------------------------------------------

    def _run(self) -> None:
        last_commit = 0.0
        while not self._stop.wait(0.5):
            try:
                self._check_deployments()
                if time.monotonic() - last_commit >= _COMMIT_EVERY_S:
                    self._take_in_new_partitions()
                    self._commit_offsets()
                    self._update_gauges()
                    last_commit = time.monotonic()
            except Exception:  # the supervisor must outlive any one failure
                log.exception("supervisor pass failed")

    def _check_deployments(self) -> None:
        host, now = self._host, time.monotonic()
        with host.lock:
            for name, deployment in list(host.deployments.items()):
                if deployment.join(0) is False:
                    continue
                record = host.records.get(name)
                if record is None:
                    continue
                if deployment.state is State.FAILED and record.desired == Desired.RUNNING:
                    self._count_failure(deployment)
                    cause = root_cause(deployment.error) if deployment.error else None
                    if isinstance(cause, _REFUSALS):
                        if record.state != State.FAILED:
                            self.record_end(deployment)
                        continue
                    attempts, due = self._restarts.get(name, (0, 0.0))
                    if due == 0.0:
                        pause = min(_MAX_RESTART_S, _FIRST_RESTART_S * 2**attempts)
                        self._restarts[name] = (attempts + 1, now + pause)
                        self.record_end(deployment, f"restart in {pause:.0f}s")
                    elif now >= due:
                        self._restarts[name] = (attempts, 0.0)
                        try:
                            host.launch(record, note=f"restarted (attempt {attempts})")
                        except CqrsError as exc:
                            record.state, record.error = State.FAILED, str(exc)
                            host.records.save(record)
                    continue
                if record.state != deployment.state:
                    self.record_end(deployment)
                    self._restarts.pop(name, None)

    def _count_failure(self, deployment: Deployment) -> None:
        """Count a failure at the record it names; the last one allowed becomes `StuckAt`."""
        cause = root_cause(deployment.error) if deployment.error else None
        if not isinstance(cause, FailedAt):
            return
        site = (cause.partition, cause.offset)
        last, count, counted = self._failed_at.get(deployment.name, (site, 0, None))
        if counted is deployment:
            return
        count = count + 1 if last == site else 1
        self._failed_at[deployment.name] = (site, count, deployment)
        if count >= FAILURES_AT_ONE_PLACE:
            partition, offset = site
            deployment.error = StuckAt(
                f"{deployment.name} {cause} ({count} times in a row); to pass over that record "
                f"(it goes to the DLQ as skipped_by_operator): cqrs skip {deployment.name} "
                f"--partition {partition} --offset {offset}"
            )

    def _take_in_new_partitions(self) -> None:
        """Restart each tailing deployment whose log has partitions it does not read."""
        host = self._host
        with host.lock:
            running = [
                d
                for d in host.deployments.values()
                if d.state is State.RUNNING and d.config.stop_at is None
                and d.config.partitions is None
            ]  # fmt: skip
            fresh: dict[str, list[int]] = {}
            for deployment in running:
                topic = deployment.config.topic
                if topic not in fresh:
                    fresh[topic] = self._logs.partitions(topic, fresh=True)
                added = sorted(set(fresh[topic]) - set(deployment.partitions))
                record = host.records.get(deployment.name)
                if not added or record is None or record.desired != Desired.RUNNING:
                    continue
                log.info("%s: taking in new partitions %s of %s", record.name, added, topic)
                deployment.stop()
                host.launch(record, note=f"took in new partitions {added}")

    def _commit_offsets(self) -> None:
        """Monitoring only: Bytewax recovery stays the one record of where to resume."""
        with self._host.lock:
            running = [d for d in self._host.deployments.values() if d.state is State.RUNNING]
        for deployment in running:
            tables = [t.name for t in deployment.config.pipeline.tables]
            offsets = written(self._client, deployment.database, tables)
            if offsets:
                self._logs.commit(deployment.name, deployment.config.topic, offsets)

    def _update_gauges(self) -> None:
        """Deployment state and progress, for Prometheus."""
        with self._host.lock:
            deployments = list(self._host.deployments.values())
        for deployment in deployments:
            deployment.metrics.set_state(deployment.state.value)
            record = self._host.records.get(deployment.name)
            if record is None:
                continue
            status = describe(self._client, record, self._logs.end_offsets, self._specs)
            if status.total:
                deployment.metrics.set_progress(status.done / status.total)
