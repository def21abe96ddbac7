"""The runtime and its deployments: `serve`, `run`, `start`, `stop`, `skip`; and what the other
command groups share to run a runtime in this process or to reach the one that runs."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.ui import console
from core.errors import ConfigError, CqrsError, SpecError
from dataflows.spec_file import read_spec
from deploy import bootstrap
from deploy.bootstrap import resolve_brokers
from deploy.client import connect
from deploy.cluster import MAX_PROCESSES, MAX_WORKERS, check_addresses
from deploy.settings import Settings
from deploy.token import read_token

if TYPE_CHECKING:
    from deploy.deployment import Deployment
    from deploy.runtime import Runtime

_allow_module = click.option(
    "--allow-module",
    "allow_modules",
    multiple=True,
    help="a module (with its submodules) that specs sent to this runtime's API may name, "
    "besides the project's own (repeatable; CQRS_ALLOW_MODULES)",
)

_panels = click.option(
    "--panels",
    metavar="MODULE:ATTR",
    help="the domain's dashboard panels (CQRS_PANELS; the orders demo's: "
    "examples.orders.dashboard:PANELS); none: the dashboard shows health only",
)


def shape(registered: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--processes N --workers W`: the deployment as a Bytewax cluster on this machine. With
    `registered`, a flag left out keeps the shape the deployment was registered with (a restart
    does not rescale it); otherwise a new deployment gets one process of one worker."""
    default = None if registered else 1
    kept = "; default: as registered, 1 for a new deployment" if registered else ""

    def options(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--workers",
            type=click.IntRange(1, MAX_WORKERS),
            default=default,
            show_default=not registered,
            help=f"Bytewax workers in each process (threads: they share the GIL){kept}",
        )(command)
        return click.option(
            "--processes",
            type=click.IntRange(1, MAX_PROCESSES),
            default=default,
            show_default=not registered,
            help="processes of the deployment's cluster on this machine; the log's partitions "
            f"are spread over them, the runtime's own process writes ClickHouse{kept}",
        )(command)

    return options


def spec_text(path: Path) -> str:
    """A spec file's text, for a command that sends it to the runtime (which checks the rest);
    a file it cannot read gets the error `cqrs validate` gives."""
    try:
        return read_spec(path).decode()
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc})") from None


def _served(
    settings: Settings,
    http_port: int | None,
    allow_modules: tuple[str, ...],
    panels: str | None,
) -> Settings:
    if http_port is not None:
        settings = settings.with_(http_port=http_port)
    if panels is not None:
        settings = settings.with_(panels=panels)
    return settings.with_(allow_modules=(*settings.allow_modules, *allow_modules))


@click.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--http-port", type=int, help="API port (CQRS_HTTP_PORT, default 8765; 0 = any)")
@_allow_module
@_panels
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="stop at the log's end offsets as of the start, instead of tailing",
)
@shape(registered=True)
@click.option(
    "--addresses",
    metavar="HOST:PORT,…",
    help="a cluster across hosts: the Bytewax address of each process, process 0 (the runtime, "
    "which serves the API) first; every process gets the same list (with --process-id)",
)
@click.option(
    "--process-id",
    type=click.IntRange(0, MAX_PROCESSES - 1),
    help="this process's index in --addresses; a process other than 0 is a member: it serves "
    "no API and takes its run from process 0's",
)
@click.option(
    "--runtime-url",
    metavar="URL",
    help="a member's way to process 0's API (default: http://<host of the first address>:"
    "<CQRS_HTTP_PORT>); the token is CQRS_TOKEN or the data dir's, process 0's",
)
@click.pass_obj
def run(
    settings: Settings,
    spec: Path,
    http_port: int | None,
    allow_modules: tuple[str, ...],
    panels: str | None,
    until_caught_up: bool,
    processes: int | None,
    workers: int | None,
    addresses: str | None,
    process_id: int | None,
    runtime_url: str | None,
) -> None:
    """Run a pipeline's deployment in a runtime of this process, until Ctrl-C. Another
    --processes/--workers than the registered shape resumes it on the new shape. With
    --addresses/--process-id the deployment is one Bytewax cluster across hosts."""
    from dataflows.spec import load_pipeline
    from deploy.runtime import Runtime

    pipeline = load_pipeline(spec)
    hosts = _hosts(addresses, process_id, processes, runtime_url)
    if hosts and process_id:
        run_member(settings, pipeline.deployment, hosts, process_id, workers, runtime_url)
        return
    if hosts:
        processes = len(hosts)
    settings = _served(settings, http_port, allow_modules, panels)
    brokers = resolve_brokers(settings)
    runtime = Runtime(
        settings,
        brokers,
        reserved={pipeline.deployment},
        hosts={pipeline.deployment: hosts} if hosts else None,
    )
    with graceful_sigterm(), runtime:
        text = spec.read_text()
        name = runtime.ensure(pipeline, text, until_caught_up, processes, workers).name
        console.print(f"{name} running; API {runtime.url}; dashboard {runtime.dashboard_url}")
        ended = _wait(runtime, name)
    report_end(ended, name)


def _hosts(
    addresses: str | None,
    process_id: int | None,
    processes: int | None,
    runtime_url: str | None,
) -> list[str]:
    """`--addresses` as a list (empty: no cluster across hosts), the flags checked together."""
    if (addresses is None) != (process_id is None):
        raise click.UsageError("--addresses and --process-id go together: give both, or neither")
    if addresses is None or process_id is None:
        if runtime_url is not None:
            raise click.UsageError("--runtime-url is for a member: give it with --process-id")
        return []
    if processes is not None:
        raise click.UsageError(
            "--processes starts processes on this machine; with --addresses each process is "
            "started on its own host: leave --processes out"
        )
    if runtime_url is not None and process_id == 0:
        raise click.UsageError("--runtime-url is for a member (--process-id > 0): leave it out")
    hosts = [a.strip() for a in addresses.split(",")]
    try:
        check_addresses(hosts, process_id)
    except CqrsError as exc:
        raise click.BadParameter(str(exc), param_hint="--addresses/--process-id") from None
    return hosts


def run_member(
    settings: Settings,
    name: str,
    hosts: list[str],
    process_id: int,
    workers: int | None,
    runtime_url: str | None,
) -> None:
    """Process `process_id` of the cluster: joins process 0's runs until SIGTERM or Ctrl-C."""
    from deploy.member import LEAVE_S, STUCK, Member

    url = runtime_url or f"http://{hosts[0].rpartition(':')[0]}:{settings.http_port}"
    if not (settings.token or read_token(settings.token_file)):
        raise ConfigError(
            f"process {process_id} needs process 0's API token: set CQRS_TOKEN to it (process 0 "
            f"keeps it in its data dir's token file, or takes it from CQRS_TOKEN)"
        )
    brokers = resolve_brokers(settings)
    local = {"brokers": brokers, "clickhouse_dsn": settings.clickhouse_dsn,
             "recovery_root": str(settings.recovery_dir)}  # fmt: skip
    member = Member(connect(settings, url, timeout_s=10.0), name, hosts, process_id, local, workers)
    serving = threading.Thread(target=member.serve, name="member", daemon=True)
    console.print(f"{name}: process {process_id} of {len(hosts)}, joining {url}")
    with graceful_sigterm():
        serving.start()
        try:
            while serving.is_alive():
                serving.join(0.5)
        except KeyboardInterrupt:
            console.print("stopping (ending this process's partitions with the cluster)…")
            member.leave()
            serving.join(LEAVE_S)
    if member.error is not None:
        raise member.error
    console.print(f"{name}: process {process_id} stopped")
    # Bytewax's worker threads may still hold Python objects when the interpreter would tear
    # down (it then aborts): the run's work is done and flushed, so leave without teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if not serving.is_alive() else STUCK)


def _wait(runtime: Runtime, name: str) -> Deployment | None:
    """Until the deployment ends for good, or Ctrl-C (then None)."""
    try:
        while True:
            ended = runtime.settled(name)
            if ended is not None:
                return ended
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping (flushing sinks, writing the last snapshot)…")
        return None


def report_end(ended: Deployment | None, name: str) -> None:
    """How a deployment run by this process ended: stopped, completed, or failed (an error)."""
    from deploy.supervisor import root_cause

    if ended is None:
        console.print(f"{name} stopped")
        return
    if ended.error is not None:
        raise CqrsError(f"{name} failed: {root_cause(ended.error)}")
    console.print(f"{name} {ended.state.value}")


@click.command()
@click.option("--http-port", type=int, help="API port (CQRS_HTTP_PORT, default 8765; 0 = any)")
@_allow_module
@_panels
@click.pass_obj
def serve(
    settings: Settings, http_port: int | None, allow_modules: tuple[str, ...], panels: str | None
) -> None:
    """Run the runtime: resume registered deployments, serve the API, until Ctrl-C."""
    from deploy.runtime import Runtime

    settings = _served(settings, http_port, allow_modules, panels)
    with graceful_sigterm(), Runtime(settings, resolve_brokers(settings)) as runtime:
        running = ", ".join(runtime.deployments) or "none yet"
        console.print(f"runtime serving {runtime.url} (deployments: {running}); Ctrl-C to stop")
        console.print(f"dashboard: {runtime.dashboard_url}", highlight=False, soft_wrap=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
        console.print("stopping (flushing sinks, writing the last snapshots)…")


@click.command("start")
@click.argument("name")
@click.pass_obj
def start(settings: Settings, name: str) -> None:
    """Start (resume) a stopped deployment in the running runtime."""
    console.print(bootstrap.runtime_service(settings).start(name).state)


@click.command("stop")
@click.argument("name")
@click.pass_obj
def stop(settings: Settings, name: str) -> None:
    """Stop a deployment gracefully; it stays stopped until `cqrs start`."""
    console.print(bootstrap.runtime_service(settings).stop(name).state)


@click.command("skip")
@click.argument("name")
@click.option("--partition", required=True, type=click.IntRange(min=0), help="log partition")
@click.option("--offset", required=True, type=click.IntRange(min=0), help="offset in it")
@click.pass_obj
def skip(settings: Settings, name: str, partition: int, offset: int) -> None:
    """Pass over one record of a deployment stuck on it (it goes to the DLQ as
    skipped_by_operator), and run the deployment again."""
    state = bootstrap.runtime_service(settings).skip(name, partition, offset).state
    console.print(f"{name}: offset {offset} of partition {partition} is skipped; {state}")


class graceful_sigterm:
    """Turns SIGTERM into KeyboardInterrupt, so `kill` stops as gracefully as Ctrl-C."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)

    @staticmethod
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt


COMMANDS = (serve, run, start, stop, skip)
