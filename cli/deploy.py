"""`cqrs deploy`: blue/green, a pipeline's filters changed with zero downtime: the whole
lifecycle (`cqrs deploy SPEC`) or one step of it, each asked of the running runtime."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec
from rich.console import Group
from rich.progress import TextColumn
from rich.text import Text

from cli.runtime import shape, spec_text
from cli.ui import console, out, progress_bar
from core.errors import CqrsError
from deploy import bootstrap
from deploy.model import MAX_BEHIND_S, BlueGreenState, History, InitRequest, PromoteRequest
from deploy.service import Service
from deploy.settings import Settings


class _DeployGroup(click.Group):
    """`cqrs deploy <spec>` runs the whole lifecycle; `cqrs deploy <step> …` one step."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["all", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DeployGroup)
def deploy() -> None:
    """Blue/green: change a pipeline's filters with zero downtime.

    `cqrs deploy SPEC` runs init, await, promote and, after the rollback window, cleanup.
    """


def _show(state: BlueGreenState) -> None:
    console.print(
        f"{state.pipeline}: active {state.active}, green {state.green or '-'}, "
        f"draining {state.draining or '-'}",
        highlight=False,
    )


_MAX_BEHIND = click.option(
    "--max-behind",
    default=MAX_BEHIND_S,
    show_default=True,
    type=click.FloatRange(min=0),
    help="seconds the oldest command green has not applied may have been on the log",
)
#: after `await` saw the gate pass, how long promote itself may wait for it again (a sample
#: just over the gate under a burst must not undo a catch-up of minutes)
PROMOTE_GRACE_S = 30.0


@deploy.command("all")
@click.argument("spec", type=click.Path(path_type=Path))
@_MAX_BEHIND
@click.option("--timeout", default=1800.0, show_default=True, help="seconds to wait for catch-up")
@click.option(
    "--rollback-window",
    default=0.0,
    show_default=True,
    help="seconds blue keeps running after promote before cleanup",
)
@click.option("--keep-blue", is_flag=True, help="stop after promote; clean up by hand")
@click.option("--keep-green", is_flag=True, help="if await or promote fails, leave green in flight")
@shape()
@click.pass_obj
def deploy_all(
    settings: Settings, spec: Path, max_behind: float, timeout: float, rollback_window: float,
    keep_blue: bool, keep_green: bool, processes: int, workers: int,
) -> None:  # fmt: skip
    """The whole lifecycle for SPEC. A failed await or promote aborts green again (blue never
    stopped serving), so the pipeline is left as it was and the next deploy is not refused;
    `--keep-green` leaves green in flight instead."""
    client = bootstrap.runtime_service(settings)
    state = client.deploy_init(InitRequest(spec_text(spec), str(spec), processes, workers))
    pipeline, green, blue = state.pipeline, state.green, state.active
    _show(state)
    if green is not None:
        try:
            _await(client, pipeline, max_behind, timeout)
            promote = PromoteRequest(max_behind=max_behind, wait=PROMOTE_GRACE_S)
            _show(client.deploy_promote(pipeline, promote))
        except KeyboardInterrupt:
            console.print(
                f"interrupted: {green} keeps catching up beside {blue}, which still serves; go "
                f"on with `cqrs deploy promote {pipeline}`, or undo with `cqrs deploy abort "
                f"{pipeline}`"
            )
            raise
        except CqrsError as exc:
            if keep_green:
                raise CqrsError(
                    f"{exc}\n{green} is left in flight (--keep-green) and {blue} still serves: "
                    f"`cqrs deploy promote {pipeline}` when it has caught up, or `cqrs deploy "
                    f"abort {pipeline}`; another version cannot be deployed until then"
                ) from None
            _undo(client, pipeline, green, blue, exc)
    if keep_blue:
        return
    try:
        if rollback_window > 0:
            console.print(f"blue keeps running for {rollback_window:.0f}s (rollback window)…")
            time.sleep(rollback_window)
        _show(client.deploy_cleanup(pipeline))
    except (CqrsError, KeyboardInterrupt) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        raise CqrsError(
            f"{why}\n{green or state.active} serves; {blue} is still draining: `cqrs deploy "
            f"cleanup {pipeline}` to retire it (or `cqrs deploy rollback {pipeline}`); the next "
            f"deploy is refused until then"
        ) from None


def _undo(client: Service, pipeline: str, green: str, blue: str, cause: CqrsError) -> None:
    """Take green out again after a failed await or promote, and say what is left."""
    try:
        client.deploy_abort(pipeline)
    except CqrsError as exc:
        raise CqrsError(
            f"{cause}\naborting {green} failed too ({exc}): run `cqrs deploy abort {pipeline}` "
            f"before the next deploy"
        ) from None
    raise CqrsError(
        f"{cause}\nrolled back: {green} aborted (its database dropped); {blue} still serves, "
        f"untouched. Deploy again when the cause is fixed (a longer --timeout, a higher "
        f"--max-behind, or --keep-green to leave it running)"
    ) from None


@deploy.command("init")
@click.argument("spec", type=click.Path(path_type=Path))
@shape()
@click.pass_obj
def deploy_init(settings: Settings, spec: Path, processes: int, workers: int) -> None:
    """Start green from the earliest offset, tailing, beside blue."""
    request = InitRequest(spec_text(spec), str(spec), processes, workers)
    _show(bootstrap.runtime_service(settings).deploy_init(request))


class NotCaughtUp(CqrsError):
    """Green is still further behind than the gate when the wait is over."""


@deploy.command("await")
@click.argument("pipeline")
@_MAX_BEHIND
@click.option("--timeout", default=1800.0, show_default=True)
@click.pass_obj
def deploy_await(settings: Settings, pipeline: str, max_behind: float, timeout: float) -> None:
    """Wait until green has caught up with the log (within --max-behind seconds)."""
    try:
        _await(bootstrap.runtime_service(settings), pipeline, max_behind, timeout)
    except NotCaughtUp as exc:
        raise CqrsError(
            f"{exc}; it keeps running: await again, or `cqrs deploy abort {pipeline}`"
        ) from None


def _await(client: Service, pipeline: str, max_behind: float, timeout: float) -> None:
    """Until the oldest command green has not applied has been on the log at most
    `max_behind` seconds, with a progress bar of the offsets it has done and that time."""
    deadline = time.monotonic() + timeout
    with progress_bar(TextColumn("behind {task.fields[behind]}")) as bar:
        task = None
        while True:
            state = client.deploy_state(pipeline)
            if state.green is None:
                raise CqrsError(f"{pipeline} has no deployment in flight")
            status, late = state.green_status, state.green_behind_s
            assert status is not msgspec.UNSET and late is not msgspec.UNSET  # with a green: set
            if task is None:
                task = bar.add_task(f"{state.green} catching up", total=1, behind="")
            said = "?" if late is None else f"{late:,.1f}s"  # None: the broker did not say
            bar.update(task, completed=status.done, total=max(1, status.total), behind=said)
            if isinstance(state.green_failed, str):
                raise CqrsError(f"{state.green} failed: {state.green_failed}")
            if late is not None and late <= max_behind:
                break
            if time.monotonic() > deadline:
                raise NotCaughtUp(
                    f"{state.green} is still {said} behind the head of the log after "
                    f"{timeout:.0f}s (the gate is {max_behind:g}s)"
                )
            time.sleep(1.0)
    console.print(f"{state.green} caught up ({late:.1f}s behind the head of the log)")


@deploy.command("promote")
@click.argument("pipeline")
@click.option("--force", is_flag=True, help="promote even if green has not caught up")
@_MAX_BEHIND
@click.option("--timeout", default=1800.0, show_default=True, help="seconds to wait for the gate")
@click.pass_obj
def deploy_promote(
    settings: Settings, pipeline: str, force: bool, max_behind: float, timeout: float
) -> None:
    """Switch every stable view of the pipeline to green, at once, when it has caught up
    (waiting for that, up to --timeout)."""
    client = bootstrap.runtime_service(settings)
    if not force and client.deploy_state(pipeline).green is not None:
        try:
            _await(client, pipeline, max_behind, timeout)
        except NotCaughtUp as exc:
            raise CqrsError(
                f"{exc}; not promoted: it keeps running (promote again, or `cqrs deploy abort "
                f"{pipeline}`)"
            ) from None
    wait = 0.0 if force else PROMOTE_GRACE_S
    _show(client.deploy_promote(pipeline, PromoteRequest(force, max_behind, wait)))


@deploy.command("rollback")
@click.argument("pipeline")
@click.pass_obj
def deploy_rollback(settings: Settings, pipeline: str) -> None:
    """Switch back to blue while it still runs."""
    _show(bootstrap.runtime_service(settings).deploy_rollback(pipeline))


@deploy.command("abort")
@click.argument("pipeline")
@click.pass_obj
def deploy_abort(settings: Settings, pipeline: str) -> None:
    """Drop green; blue is untouched."""
    _show(bootstrap.runtime_service(settings).deploy_abort(pipeline))


@deploy.command("cleanup")
@click.argument("pipeline")
@click.pass_obj
def deploy_cleanup(settings: Settings, pipeline: str) -> None:
    """After the rollback window: stop blue and drop its database."""
    _show(bootstrap.runtime_service(settings).deploy_cleanup(pipeline))


@deploy.command("history")
@click.argument("pipeline")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def deploy_history(settings: Settings, pipeline: str, as_json: bool) -> None:
    """Who was active when, and what changed between spec versions."""
    history = bootstrap.runtime_service(settings).deploy_history(pipeline)
    if as_json:
        click.echo(msgspec.json.encode(history).decode())
        return
    out.print(history_view(history))


def history_view(history: History) -> Group:
    """The versions, each with what changed from the one before, then the events, one a line
    (a terminal wraps a long one at its spaces; a pipe gets it whole)."""
    lines, before = [], None
    for version in history.versions:
        changes = "; ".join(version.changes)
        if not changes:
            changes = f"the same spec as {before} but its version" if before else "first version"
        lines.append(Text.assemble((version.name, "bold"), f" ({version.stage or '-'}): {changes}"))
        before = version.name
    events = history.events
    name_width = max((len(e.name) for e in events), default=0)
    event_width = max((len(e.event) for e in events), default=0)
    for e in events:
        line = f"  {_when(e.at)}  {e.name:<{name_width}}  {e.event:<{event_width}}"
        lines.append(Text(f"{line}  {e.detail}".rstrip()))
    return Group(*lines)


def _when(at: str) -> str:
    """An event's time in UTC, to the millisecond (the JSON has it in full ISO 8601)."""
    moment = datetime.fromisoformat(at).astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}Z"


COMMANDS = (deploy,)
