"""`cqrs replay`: rebuild a pipeline's projections from the log into a new database, in the
running runtime or in one of this process, with a progress bar until it is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.progress import TextColumn

from cli.runtime import graceful_sigterm, report_end, shape, spec_text
from cli.ui import console, progress_bar
from core.errors import CqrsError
from deploy import bootstrap
from deploy.client import RuntimeClient
from deploy.model import DeploymentStatus, ReplayRequest, State
from deploy.settings import Settings

if TYPE_CHECKING:
    from deploy.deployment import Deployment


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--from",
    "start",
    default="earliest",
    show_default=True,
    help="earliest, latest, a time (ISO 8601 or epoch ms), or 0:120,1:98",
)
@click.option("--until", help="a time, or now (the default unless --follow)")
@click.option("--into", help="the new deployment's database (default <pipeline>_v<version>)")
@click.option("--follow", is_flag=True, help="keep tailing after the end: become live")
@click.option("--detach", is_flag=True, help="with a runtime running: return at once")
@shape()
@click.pass_obj
def replay(
    settings: Settings,
    spec: Path,
    start: str,
    until: str | None,
    into: str | None,
    follow: bool,
    detach: bool,
    processes: int,
    workers: int,
) -> None:
    """Rebuild a pipeline's projections from the log, into a new database."""
    if follow and until:
        raise click.UsageError("--until and --follow exclude each other: a bound, or tailing")
    text = spec_text(spec)
    request = ReplayRequest(text, str(spec), start, until, follow, into, processes, workers)
    held = bootstrap.held_runtime(settings)
    if held is not None:  # the runtime that runs, over its API (it checks the spec)
        _replay_in(held, request, detach)
        return
    from dataflows.spec import parse_pipeline

    pipeline = parse_pipeline(text, str(spec))  # checked before a runtime opens here
    # one in this process: `kill` stops it cleanly
    with bootstrap.open_runtime(settings) as runtime, graceful_sigterm():
        name = runtime.replay(request).name
        console.print(f"{name}: replaying {pipeline.deployment} spec; API {runtime.url}")
        try:
            _follow_progress(lambda: runtime.get_deployment(name), runtime.settled)
        except KeyboardInterrupt:
            runtime.stop(name)
            console.print(f"cancelled; resume with `cqrs start {name}` (or `cqrs serve`)")
            return
        ended = runtime.settled(name)
    report_end(ended, name)


def _replay_in(client: RuntimeClient, request: ReplayRequest, detach: bool) -> None:
    """The replay in the runtime that runs: started, then followed until done (`detach`: not);
    Ctrl-C stops it there."""
    name = client.replay(request).name
    if detach:
        console.print(f"{name} started in the runtime at {client.url}")
        return
    try:
        _follow_progress(lambda: client.get_deployment(name))
    except KeyboardInterrupt:
        client.stop(name)
        console.print(f"cancelled; resume with `cqrs start {name}`")


def _follow_progress(
    poll: Callable[[], DeploymentStatus],
    until_settled: Callable[[str], Deployment | None] | None = None,
) -> None:
    """A progress bar of offsets done/total, rate and ETA, until the replay completes (or, for
    a following replay, catches up)."""
    with progress_bar(TextColumn("{task.fields[rate]}")) as bar:
        status = poll()
        task = bar.add_task(status.name, total=status.total or 1, rate="")
        started, first_done = time.monotonic(), status.done
        while True:
            status = poll()
            elapsed = time.monotonic() - started
            rate = (status.done - first_done) / elapsed if elapsed > 0 else 0.0
            bar.update(task, completed=status.done, total=status.total or 1,
                       rate=f"{rate:,.0f} cmd/s")  # fmt: skip
            if status.state in (State.COMPLETED, State.FAILED, State.STOPPED):
                break
            if status.follow and status.total and status.done >= status.total:
                break  # caught up: it goes on live
            if until_settled is not None and until_settled(status.name) is not None:
                break
            time.sleep(0.5)
        # Once more, now that it has ended: a status sampled while it ended can pair its final
        # state with the progress read just before (seen as "completed, 0 of 500 offsets").
        status = poll()
        bar.update(task, completed=status.done, total=status.total or 1)
    if status.state == State.FAILED:
        raise CqrsError(f"{status.name} failed: {status.error}")
    console.print(f"{status.name}: {status.state}, {status.done:,} of "
                  f"{status.total:,} offsets")  # fmt: skip


COMMANDS = (replay,)
