"""Blue/green deployment of a pipeline: change its filters with no downtime.

    init      green (the new spec version) starts from the earliest offset, tailing, beside
              blue (the active one); the stable views gain a branch for it, still reading blue
    promote   once green has caught up: the pointer moves to green (one insert: every view of
              the pipeline switches at once); projections only green has get their views;
              blue keeps running, draining, for a rollback window
    rollback  the pointer moves back to blue while it still runs
    abort     green is stopped and its database dropped; blue is untouched (the same version
              may be deployed again later, from scratch)
    cleanup   after the window: blue is stopped, its branch leaves the views (and views of
              projections green no longer has are dropped), its database is dropped

Every step reads where things stand from the registry and the pointer, and is safe to run again
after a crash of the CLI or the runtime: a step that finds its work done finishes the rest.
Only one new deployment may be in flight per pipeline.

Blue/green asks the runtime for deployments through `DeploymentHost` (the runtime hands itself
over once, when it opens) and switches the stable views through its `StableLayer`.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from core.errors import ConfigError
from dataflows.source import StartAt
from dataflows.spec import Pipeline
from deploy.deployment import Deployment
from deploy.model import (
    LIVE,
    MAX_BEHIND_S,
    BlueGreenState,
    DeploymentStatus,
    Desired,
    History,
    Origin,
    Stage,
    Version,
)
from deploy.records import Record, Records
from deploy.spec_diff import diff_specs
from deploy.specs import Specs
from deploy.stable import StableLayer


class DeploymentHost(Protocol):
    """What blue/green asks of the runtime that runs the deployments."""

    #: held while a step reads and changes the registry and the pointer
    lock: AbstractContextManager[Any]
    specs: Specs

    @property
    def records(self) -> Records: ...

    def topic_of(self, pipeline: Pipeline) -> str: ...
    def start_offsets(self, topic: str, start: StartAt) -> dict[int, int]: ...
    def database_exists(self, name: str) -> bool: ...
    def launch(self, record: Record, note: str = "") -> Deployment: ...
    def start_deployment(self, name: str) -> Record: ...
    def stop_deployment(self, name: str) -> Record: ...
    def get_deployment(self, name: str) -> DeploymentStatus: ...
    def failure(self, name: str) -> str | None: ...
    def drop(self, name: str) -> None: ...


class BlueGreen:
    def __init__(self, host: DeploymentHost, layer: StableLayer) -> None:
        self._host = host
        self.layer = layer

    # -- steps ---------------------------------------------------------------------------------

    def init(
        self,
        spec_text: str,
        source: str,
        origin: Origin = Origin.LOCAL,
        processes: int = 1,
        workers: int = 1,
    ) -> BlueGreenState:
        """A spec from the API (`Origin.API`) may name only allowed modules. Green runs as
        a cluster of `processes` by `workers` when asked (blue keeps its own shape)."""
        rt = self._host
        pipeline = rt.specs.parse(spec_text, source, origin)
        name = pipeline.deployment
        with rt.lock:
            mine = self._records(pipeline.name)
            existing = mine.get(name)
            if (
                existing is not None and existing.stage != Stage.ABORTED
            ):  # an aborted try goes again
                if existing.stage in (Stage.GREEN, Stage.ACTIVE):
                    if self._spec(existing).spec != pipeline.spec:
                        raise ConfigError(
                            f"{name} is deployed with another spec; give the new one a new version"
                        )
                    if existing.stage == Stage.GREEN:
                        rt.start_deployment(name)
                    return self.state(pipeline.name)
                raise ConfigError(
                    f"{name} was {existing.stage or 'deployed outside blue/green'} before; "
                    f"deploy the change as a new version"
                )
            for other in mine.values():
                if other.stage == Stage.GREEN:
                    raise ConfigError(
                        f"{other.name} is already in flight for {pipeline.name}; promote it "
                        f"(cqrs deploy promote {pipeline.name}) or abort it first"
                    )
                if other.stage == Stage.DRAINING:
                    raise ConfigError(
                        f"{other.name} is still draining after the last promote; run "
                        f"`cqrs deploy cleanup {pipeline.name}` (or roll back) first"
                    )
            if rt.database_exists(name):
                raise ConfigError(f"database {name} already exists; deploy a new version")
            active = self._active(mine)
            topic = rt.topic_of(pipeline)
            starts = rt.start_offsets(topic, StartAt("earliest"))
            record = Record(
                name=name, pipeline=pipeline.name, version=pipeline.version, spec=spec_text,
                source=source, topic=topic, start=starts, stop=None, origin=origin,
                stage=Stage.GREEN if active is not None else Stage.ACTIVE,
                processes=processes, workers=workers,
            )  # fmt: skip
            rt.records.save(record)
            rt.records.note(record, "init", f"green beside {active.name}" if active else "first")
            rt.launch(record)
            if active is None:
                self.layer.switch(pipeline.name, name)
                rt.records.note(record, "promoted", "first deployment of the pipeline")
                self._rebuild(pipeline.name)
            else:
                # green's branch joins the views of the projections blue serves; projections
                # only green has appear at promote
                served = {p.name for p in self._spec(active).projections}
                self._rebuild(pipeline.name, only=served)
        return self.state(pipeline.name)

    def promote(
        self,
        pipeline_name: str,
        force: bool = False,
        max_behind_s: float = MAX_BEHIND_S,
        wait_s: float = 0.0,
    ) -> BlueGreenState:
        """Switch to green once the oldest command it has not applied has been on the log at
        most `max_behind_s`, waiting up to `wait_s` for that; a green still further behind is
        refused (unless forced). The gate is time, not a count of commands: under a steady
        producer a green that keeps up is always some commands behind, but only its flush
        delay in time. The runtime's lock is not held while the broker is asked.

        Green must also have written, in every partition, as far as blue had when the promote
        was asked (`_served`): a log younger than the time gate (a backlog loaded a moment
        ago) passes that gate whatever green has written, and the views would then answer
        from less than before, empty at first. A green within the time gate that keeps up
        gets there within about `max_behind_s`, so that long is waited for it at least."""
        rt = self._host
        deadline = time.monotonic() + wait_s
        late, lag, short = float("inf"), 0, 0
        served: dict[int, int] | None = None
        graced = False
        while True:
            with rt.lock:
                mine = self._records(pipeline_name)
                green = next((r for r in mine.values() if r.stage == Stage.GREEN), None)
                pointer = self.layer.active(pipeline_name)
                if green is None:
                    active = self._active(mine)
                    if active is not None and pointer == active.name:
                        self._rebuild(pipeline_name)  # a re-run after a crash: finish the views
                        return self.state(pipeline_name)
                    raise ConfigError(f"{pipeline_name} has no deployment in flight to promote")
                if force:
                    return self._switch(pipeline_name, mine, green, "forced")
                if pointer == green.name:  # a re-run after a crash: the switch was made
                    return self._switch(pipeline_name, mine, green, "finishing a promote")
                if late <= max_behind_s and short == 0:
                    gate = f"{late:.1f}s behind the head of the log ({lag:,} commands)"
                    return self._switch(pipeline_name, mine, green, gate)
                blue = self._active(mine)
            if served is None:
                served = self._served(blue, green)
            late, lag, short = self._behind(green.name, served)
            if late <= max_behind_s:
                if short == 0:
                    continue  # switch under the lock, if green is still the one in flight
                if not graced:  # in time: about max_behind_s (once) to reach what blue serves
                    deadline, graced = max(deadline, time.monotonic() + max_behind_s), True
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait_s:.0f}s" if wait_s else ""
                how_far = "an unknown time" if late == float("inf") else f"{late:.1f}s"
                raise ConfigError(
                    f"{green.name} is {how_far} behind the head of the log{waited} (the gate "
                    f"is {max_behind_s:g}s){_short_of(short, blue)}; it keeps running: wait "
                    f"(`cqrs deploy await {pipeline_name}`), promote with --force, or "
                    f"`cqrs deploy abort {pipeline_name}`"
                )
            time.sleep(0.25)

    def _switch(
        self, pipeline_name: str, mine: dict[str, Record], green: Record, gate: str
    ) -> BlueGreenState:
        rt = self._host
        blue = self._active(mine)
        self.layer.switch(pipeline_name, green.name)  # the switch: one insert, every view
        green.stage = Stage.ACTIVE
        rt.records.save(green)
        if blue is not None and blue.name != green.name:
            blue.stage = Stage.DRAINING
            rt.records.save(blue)
        replacing = f"replacing {blue.name}; " if blue else ""
        rt.records.note(green, "promoted", f"{replacing}{gate}")
        self._rebuild(pipeline_name)
        return self.state(pipeline_name)

    def rollback(self, pipeline_name: str) -> BlueGreenState:
        rt = self._host
        with rt.lock:
            mine = self._records(pipeline_name)
            blue = next((r for r in mine.values() if r.stage == Stage.DRAINING), None)
            current = self._active(mine)
            if blue is None:
                raise ConfigError(
                    f"{pipeline_name} has no draining deployment to roll back to (rollback works "
                    f"between promote and cleanup)"
                )
            rt.start_deployment(blue.name)  # a blue that still runs is left as it is
            self.layer.switch(pipeline_name, blue.name)
            blue.stage = Stage.ACTIVE
            rt.records.save(blue)
            if current is not None:
                current.stage = Stage.GREEN
                rt.records.save(current)
            rt.records.note(blue, "rolled back", f"from {current.name}" if current else "")
            self._rebuild(pipeline_name)
        return self.state(pipeline_name)

    def abort(self, pipeline_name: str) -> BlueGreenState:
        rt = self._host
        with rt.lock:
            mine = self._records(pipeline_name)
            green = next((r for r in mine.values() if r.stage == Stage.GREEN), None)
            if green is None:
                raise ConfigError(f"{pipeline_name} has no deployment in flight to abort")
            if self.layer.active(pipeline_name) == green.name:
                raise ConfigError(f"{green.name} is active; roll back before aborting it")
            # views of projections only green had go with it, whether or not it was promoted
            # and rolled back before
            served = {p.name for p in self._spec(green).projections}
            self._retire(green, Stage.ABORTED, rebuild_first=served)
        return self.state(pipeline_name)

    def cleanup(self, pipeline_name: str) -> BlueGreenState:
        rt = self._host
        with rt.lock:
            mine = self._records(pipeline_name)
            blue = next((r for r in mine.values() if r.stage == Stage.DRAINING), None)
            if blue is None:
                return self.state(pipeline_name)  # nothing left to clean: done before
            served = {p.name for p in self._spec(blue).projections}
            self._retire(blue, Stage.RETIRED, rebuild_first=served)
        return self.state(pipeline_name)

    # -- reading -------------------------------------------------------------------------------

    def state(self, pipeline_name: str) -> BlueGreenState:
        mine = self._records(pipeline_name)
        by_stage = {r.stage: r.name for r in mine.values() if r.stage in LIVE}
        green = by_stage.get(Stage.GREEN)
        out = BlueGreenState(
            pipeline=pipeline_name,
            pointer=self.layer.active(pipeline_name),
            active=by_stage.get(Stage.ACTIVE),
            green=green,
            draining=by_stage.get(Stage.DRAINING),
        )
        if green is not None:
            status = self._host.get_deployment(green)
            out.green_status = status
            out.green_lag = sum(status.lag.values())
            out.green_behind_s = status.behind_s
            out.green_failed = self._host.failure(green)
        return out

    def history(self, pipeline_name: str) -> History:
        rt = self._host
        records = sorted(
            self._records(pipeline_name).values(), key=lambda r: (r.version, r.created_at)
        )
        versions = []
        previous = None
        for record in records:
            spec = self._spec(record).spec
            changes = diff_specs(previous, spec) if previous is not None else []
            versions.append(Version(record.name, record.version, record.stage, changes))
            previous = spec
        return History(pipeline_name, versions, rt.records.history(pipeline_name))

    # -- inside --------------------------------------------------------------------------------

    def _behind(self, name: str, served: dict[int, int]) -> tuple[float, int, int]:
        """(seconds of log time behind the head of the log, commands behind its end, commands
        short of the `served` positions)."""
        failure = self._host.failure(name)
        if failure is not None:
            raise ConfigError(f"{name} failed: {failure}; abort it and deploy a fix")
        status = self._host.get_deployment(name)
        late = status.behind_s  # None: the broker did not say, which is not caught up
        short = sum(max(0, offset - status.next.get(p, 0)) for p, offset in served.items())
        return float("inf") if late is None else float(late), sum(status.lag.values()), short

    def _served(self, blue: Record | None, green: Record) -> dict[int, int]:
        """Per partition, the offset blue has written up to: what the views answer from now.
        Nothing to wait for without a blue, or with one on another topic (its offsets say
        nothing of green's log)."""
        if blue is None or blue.name == green.name or blue.topic != green.topic:
            return {}
        return dict(self._host.get_deployment(blue.name).next)

    def _records(self, pipeline_name: str) -> dict[str, Record]:
        return {r.name: r for r in self._host.records.all() if r.pipeline == pipeline_name}

    @staticmethod
    def _active(records: dict[str, Record]) -> Record | None:
        return next((r for r in records.values() if r.stage == Stage.ACTIVE), None)

    def _spec(self, record: Record) -> Pipeline:
        return self._host.specs.of(record)

    def _rebuild(
        self, pipeline_name: str, only: set[str] | None = None, retired: set[str] = frozenset()
    ) -> None:
        live = [r for r in self._records(pipeline_name).values() if r.stage in LIVE]
        live.sort(key=lambda r: r.version)
        self.layer.rebuild(
            pipeline_name, [(r.name, self._spec(r)) for r in live], only=only, retired=retired
        )

    def _retire(self, record: Record, stage: Stage, rebuild_first: set[str] | None = None) -> None:
        """Take a deployment out: stop it, out of the views, drop its database and state."""
        rt = self._host
        rt.stop_deployment(record.name)
        record = rt.records.get(record.name) or record
        record.stage = stage
        record.desired = Desired.STOPPED
        rt.records.save(record)
        # the views lose the branch before the tables it reads are dropped
        self._rebuild(record.pipeline, retired=rebuild_first or set())
        rt.drop(record.name)
        rt.records.note(record, stage, "database dropped")


def _short_of(short: int, blue: Record | None) -> str:
    if not short or blue is None:
        return ""
    return f", and {short:,} commands short of what {blue.name} serves"
