"""`cqrs`: the command line. Settings come from `CQRS_*` variables; flags override them."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table as RichTable

import operators.builtin  # noqa: F401 - registers the built-in filters
from commands.dead_letters import DeadLetter, first_of_each, read_dead_letters
from commands.dead_letters import replay as replay_letters
from commands.load import LoadStats, produce_load
from commands.log import ENFORCED, CommandLog
from commands.producer import CommandProducer
from core.errors import CqrsError
from dataflows.graph import mermaid, text
from dataflows.spec import load_pipeline
from deploy.bootstrap import DEMO_SPEC, local_broker, resolve_brokers
from deploy.deployment import Deployment
from deploy.legacy import RuntimeClient, connect, describe, query
from deploy.memory import limit_malloc_arenas
from deploy.model import MAX_BEHIND_S, QueryResult
from deploy.records import Records as Registry
from deploy.runtime import Runtime
from deploy.runtime_file import find_runtime
from deploy.settings import Settings
from deploy.status import listed
from deploy.supervisor import root_cause
from examples.orders.generator import OrderGenerator
from operators.code import allow_list
from sinks.dlq import dlq_topic, ensure_dlq
from sinks.store import open_client

console = Console(stderr=True)
out = Console()


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), help="CQRS_DATA_DIR (default .data)")
@click.option("--brokers", help="CQRS_BROKERS: host:port of a running broker (default: local)")
@click.option("--clickhouse", help="CQRS_CLICKHOUSE: chdb:///dir or http(s)://host:8123")
@click.option("--topic", help="CQRS_TOPIC: the command log topic (default commands)")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def cli(ctx: click.Context, log_level: str, **overrides: Any) -> None:
    """CQRS on streaming data: a Kafka command log, Bytewax filters, ClickHouse projections."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    # kafka-python's IO thread warns whenever the GIL kept it waiting: noise under load
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    ctx.obj = Settings.from_env(**overrides)


# --- broker -----------------------------------------------------------------------------------


@cli.group()
def broker() -> None:
    """The local Kafka broker (not used when CQRS_BROKERS is set)."""


@broker.command("start")
@click.option("--port", type=int, help="listen on this port (default: a free one, kept after)")
@click.pass_obj
def broker_start(settings: Settings, port: int | None) -> None:
    """Fetch Kafka from Maven Central (first time only), start it, wait until it answers."""
    launcher = local_broker(settings, port)
    if not launcher.dist.is_cached:
        console.print(f"fetching Apache Kafka {launcher.dist.version} from Maven Central (once)…")
    started = time.monotonic()
    state = launcher.start()
    console.print(
        f"broker up on {state.bootstrap} (pid {state.pid}, {time.monotonic() - started:.1f}s)"
    )
    out.print(state.bootstrap)


@broker.command("stop")
@click.pass_obj
def broker_stop(settings: Settings) -> None:
    """Stop the local broker cleanly; its log stays on disk for the next start."""
    stopped = local_broker(settings).stop()
    console.print("broker stopped" if stopped else "no local broker was running")


@broker.command("status")
@click.pass_obj
def broker_status(settings: Settings) -> None:
    state = local_broker(settings).status()
    if state is None:
        out.print("stopped")
        sys.exit(1)
    out.print(f"running on {state.bootstrap} (pid {state.pid})")


# --- the command log --------------------------------------------------------------------------


@cli.group()
def topic() -> None:
    """The command log topic."""


@topic.command("create")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(1, 1000))
@click.pass_obj
def topic_create(settings: Settings, partitions: int) -> None:
    """Create the command log (retention unlimited, log time set by the broker) and its DLQ, if
    missing; an existing log is given the settings it lacks."""
    brokers = resolve_brokers(settings)
    with CommandLog(brokers, settings.topic) as log:
        count = log.ensure(partitions)
        changed = log.enforce(ENFORCED)
    for name, (was, now) in changed.items():
        console.print(f"topic {settings.topic}: {name} was {was or 'unset'}, set to {now}")
    dlq = ensure_dlq(brokers, settings.topic)
    console.print(f"topic {settings.topic}: {count} partitions; DLQ {dlq}")


@cli.command()
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="commands per second")
@click.option("--count", type=click.IntRange(min=1), help="stop after this many commands")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="stop after S s")
@click.option("--seed", default=0, show_default=True, help="same seed, same orders")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(1, 1000))
@click.pass_obj
def produce(
    settings: Settings,
    rate: float | None,
    count: int | None,
    duration: float | None,
    seed: int,
    partitions: int,
) -> None:
    """Generate demo orders onto the command log, with a progress line."""
    brokers = resolve_brokers(settings)
    with CommandLog(brokers, settings.topic) as log:
        log.ensure(partitions)
    generator = OrderGenerator(
        seed=seed, start_ms=int(time.time() * 1000), step_ms=1000.0 / rate if rate else 1.0
    )
    with CommandProducer(brokers, settings.topic) as producer:
        stats = produce_load(
            producer,
            generator,
            rate=rate,
            count=count,
            duration_s=duration,
            on_progress=_progress_line,
        )
    console.print()
    if stats.errors:
        raise CqrsError(f"{stats.errors} commands failed: {producer.last_error}")


def _progress_line(stats: LoadStats) -> None:
    console.print(
        f"sent {stats.sent:>10,}  acked {stats.acked:>10,}  "
        f"rate {stats.rate:>9,.0f}/s  errors {stats.errors}",
        end="\r",
        highlight=False,
    )


# --- pipelines --------------------------------------------------------------------------------


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
def validate(spec: Path) -> None:
    """Check a pipeline spec without starting anything."""
    pipeline = load_pipeline(spec)
    console.print(f"{spec}: ok — {pipeline.deployment}")
    for table in pipeline.tables:
        cols = ", ".join(f"{n} {t}" for n, t in table.columns)
        console.print(f"  projection {table.name}: {cols}", highlight=False)


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid"]), default="text")
@click.pass_obj
def graph(settings: Settings, spec: Path, fmt: str) -> None:
    """Draw a pipeline's dataflow, as text or as a Mermaid flowchart."""
    pipeline = load_pipeline(spec)
    topic = pipeline.spec.source.topic or settings.topic
    click.echo((mermaid if fmt == "mermaid" else text)(pipeline, topic))


_allow_module = click.option(
    "--allow-module",
    "allow_modules",
    multiple=True,
    help="a module (with its submodules) that specs sent to this runtime's API may name, "
    "besides the project's own (repeatable; CQRS_ALLOW_MODULES)",
)


def _served(settings: Settings, http_port: int | None, allow_modules: tuple[str, ...]) -> Settings:
    if http_port is not None:
        settings = settings.with_(http_port=http_port)
    return settings.with_(allow_modules=(*settings.allow_modules, *allow_modules))


@cli.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--http-port", type=int, help="API port (CQRS_HTTP_PORT, default 8765; 0 = any)")
@_allow_module
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="stop at the log's end offsets as of the start, instead of tailing",
)
@click.pass_obj
def run(
    settings: Settings,
    spec: Path,
    http_port: int | None,
    allow_modules: tuple[str, ...],
    until_caught_up: bool,
) -> None:
    """Run a pipeline's deployment in a runtime of this process, until Ctrl-C."""
    pipeline = load_pipeline(spec)
    settings = _served(settings, http_port, allow_modules)
    brokers = resolve_brokers(settings)
    with _graceful_sigterm(), Runtime(settings, brokers) as runtime:
        name = runtime.ensure(pipeline, spec.read_text(), stop_now=until_caught_up).name
        console.print(f"{name} running; API {runtime.url}; dashboard {runtime.dashboard_url}")
        ended = _wait(runtime, name)
    _report_end(ended, name)


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


def _report_end(ended: Deployment | None, name: str) -> None:
    if ended is None:
        console.print(f"{name} stopped")
        return
    if ended.error is not None:
        raise CqrsError(f"{name} failed: {root_cause(ended.error)}")
    console.print(f"{name} {ended.state.value}")


@cli.command()
@click.option("--http-port", type=int, help="API port (CQRS_HTTP_PORT, default 8765; 0 = any)")
@_allow_module
@click.pass_obj
def serve(settings: Settings, http_port: int | None, allow_modules: tuple[str, ...]) -> None:
    """Run the runtime: resume registered deployments, serve the API, until Ctrl-C."""
    settings = _served(settings, http_port, allow_modules)
    with _graceful_sigterm(), Runtime(settings, resolve_brokers(settings)) as runtime:
        running = ", ".join(runtime.deployments) or "none yet"
        console.print(f"runtime serving {runtime.url} (deployments: {running}); Ctrl-C to stop")
        console.print(f"dashboard: {runtime.dashboard_url}", highlight=False, soft_wrap=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
        console.print("stopping (flushing sinks, writing the last snapshots)…")


@cli.command()
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
@click.pass_obj
def replay(
    settings: Settings,
    spec: Path,
    start: str,
    until: str | None,
    into: str | None,
    follow: bool,
    detach: bool,
) -> None:
    """Rebuild a pipeline's projections from the log, into a new database."""
    if follow and until:
        raise click.UsageError("--until and --follow exclude each other: a bound, or tailing")
    pipeline = load_pipeline(spec)
    request = {"spec": spec.read_text(), "source": str(spec), "from": start, "until": until,
               "follow": follow, "into": into}  # fmt: skip
    runtime_info = find_runtime(settings.data_dir) if settings.embedded else None
    if runtime_info is not None:
        client = connect(settings, runtime_info.url)
        status = client.create(**request)
        if detach:
            console.print(f"{status['name']} started in the runtime at {runtime_info.url}")
            return
        try:
            _follow_progress(lambda: client.deployment(status["name"]))
        except KeyboardInterrupt:
            client.stop(status["name"])
            console.print(f"cancelled; resume with `cqrs start {status['name']}`")
        return
    brokers = resolve_brokers(settings)
    with _graceful_sigterm(), Runtime(settings, brokers) as runtime:
        record = runtime.create(request["spec"], str(spec), start, until, follow, into)
        name = record.name
        console.print(f"{name}: replaying {pipeline.deployment} spec; API {runtime.url}")
        try:
            _follow_progress(lambda: runtime.status(name)[0], until_settled=runtime.settled)
        except KeyboardInterrupt:
            runtime.stop(name)
            console.print(f"cancelled; resume with `cqrs start {name}` (or `cqrs serve`)")
            return
        ended = runtime.settled(name)
    _report_end(ended, name)


def _follow_progress(
    poll: Callable[[], dict[str, Any]],
    until_settled: Callable[[str], Deployment | None] | None = None,
) -> None:
    """A progress bar of offsets done/total, rate and ETA, until the replay completes (or, for
    a following replay, catches up)."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console) as bar:
        status = poll()
        task = bar.add_task(status["name"], total=status["total"] or 1, rate="")
        started, first_done = time.monotonic(), status["done"]
        while True:
            status = poll()
            elapsed = time.monotonic() - started
            rate = (status["done"] - first_done) / elapsed if elapsed > 0 else 0.0
            bar.update(task, completed=status["done"], total=status["total"] or 1,
                       rate=f"{rate:,.0f} cmd/s")  # fmt: skip
            if status["state"] in ("completed", "failed", "stopped"):
                break
            if status["follow"] and status["total"] and status["done"] >= status["total"]:
                break  # caught up: it goes on live
            if until_settled is not None and until_settled(status["name"]) is not None:
                break
            time.sleep(0.5)
    if status["state"] == "failed":
        raise CqrsError(f"{status['name']} failed: {status['error']}")
    console.print(f"{status['name']}: {status['state']}, {status['done']:,} of "
                  f"{status['total']:,} offsets")  # fmt: skip


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "everything", is_flag=True, help="also retired and aborted deployments")
@click.pass_obj
def status(settings: Settings, as_json: bool, everything: bool) -> None:
    """Every deployment: state, progress and lag per partition, rows per projection."""
    runtime_info = find_runtime(settings.data_dir) if settings.embedded else None
    if runtime_info is not None:
        statuses = connect(settings, runtime_info.url).deployments(everything)
    else:
        client = open_client(settings.clickhouse_dsn)
        registry = Registry(client, settings.control_database)
        registry.create_tables()
        brokers = resolve_brokers(settings)
        logs: dict[str, CommandLog] = {}

        def log_of(topic: str) -> CommandLog:
            return logs.setdefault(topic, CommandLog(brokers, topic))

        allowed = allow_list(settings.allow_modules)
        statuses = [
            describe(
                client,
                r,
                lambda t: log_of(t).end_offsets(),
                allowed,
                lambda t, o: log_of(t).behind(o),
            )
            for r in listed(registry.all(), everything)
        ]
        for command_log in logs.values():
            command_log.close()
    if as_json:
        click.echo(json.dumps(statuses))
        return
    table = RichTable("deployment", "state", "lag", "behind", "progress", "rows", "in / accepted")
    for s in statuses:
        lag = sum(int(v) for v in s["lag"].values())
        progress = f"{s['done']:,}/{s['total']:,}" if not s["follow"] else "live"
        rows = ", ".join(f"{k} {v:,}" for k, v in s["rows"].items())
        flow = (
            f"{s.get('consumed', 0):,.0f} / {s.get('accepted', 0):,.0f}" if "consumed" in s else ""
        )
        state = s["state"] if s["desired"] == "running" else f"{s['state']} (held)"
        behind = f"{s['behind_s']:.1f}s" if s["behind_s"] is not None else "?"
        table.add_row(s["name"], state, f"{lag:,}", behind, progress, rows, flow)
    out.print(table)


@cli.command("start")
@click.argument("name")
@click.pass_obj
def start_cmd(settings: Settings, name: str) -> None:
    """Start (resume) a stopped deployment in the running runtime."""
    console.print(_runtime_client(settings).start(name)["state"])


@cli.command("stop")
@click.argument("name")
@click.pass_obj
def stop_cmd(settings: Settings, name: str) -> None:
    """Stop a deployment gracefully; it stays stopped until `cqrs start`."""
    console.print(_runtime_client(settings).stop(name)["state"])


@cli.command("skip")
@click.argument("name")
@click.option("--partition", required=True, type=click.IntRange(min=0), help="log partition")
@click.option("--offset", required=True, type=click.IntRange(min=0), help="offset in it")
@click.pass_obj
def skip_cmd(settings: Settings, name: str, partition: int, offset: int) -> None:
    """Pass over one record of a deployment stuck on it (it goes to the DLQ as
    skipped_by_operator), and run the deployment again."""
    state = _runtime_client(settings).skip(name, partition, offset)["state"]
    console.print(f"{name}: offset {offset} of partition {partition} is skipped; {state}")


def _runtime_client(settings: Settings) -> RuntimeClient:
    info = find_runtime(settings.data_dir)
    if info is None:
        raise CqrsError(
            f"no runtime runs on data dir {settings.data_dir}; start one with `cqrs serve`"
        )
    return connect(settings, info.url)


@cli.command("query")
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_obj
def query_cmd(settings: Settings, sql: str, fmt: str) -> None:
    """Run a read-only SQL query (through the runtime when it holds the store)."""
    result = query(settings, sql)
    if fmt == "json":
        click.echo(json.dumps(result.to_json()))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.to_json()["rows"])
    else:
        out.print(_rich_table(result))


def _rich_table(result: QueryResult) -> RichTable:
    table = RichTable(*result.columns)
    for row in result.to_json()["rows"]:
        table.add_row(*(str(v) for v in row))
    return table


# --- blue/green ----------------------------------------------------------------------------


class _DeployGroup(click.Group):
    """`cqrs deploy <spec>` runs the whole lifecycle; `cqrs deploy <step> …` one step."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["all", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_DeployGroup)
def deploy() -> None:
    """Blue/green: change a pipeline's filters with zero downtime.

    `cqrs deploy SPEC` runs init, await, promote and, after the rollback window, cleanup.
    """


def _steps(settings: Settings) -> RuntimeClient:
    return _runtime_client(settings)


def _show(state: dict[str, Any]) -> None:
    console.print(
        f"{state['pipeline']}: active {state['active']}, green {state['green'] or '-'}, "
        f"draining {state['draining'] or '-'}",
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
@click.pass_obj
def deploy_all(
    settings: Settings, spec: Path, max_behind: float, timeout: float, rollback_window: float,
    keep_blue: bool, keep_green: bool,
) -> None:  # fmt: skip
    """The whole lifecycle for SPEC. A failed await or promote aborts green again (blue never
    stopped serving), so the pipeline is left as it was and the next deploy is not refused;
    `--keep-green` leaves green in flight instead."""
    client = _steps(settings)
    state = client.deploy_init(spec.read_text(), str(spec))
    pipeline, green, blue = state["pipeline"], state["green"], state["active"]
    _show(state)
    if green is not None:
        try:
            _await(client, pipeline, max_behind, timeout)
            _show(client.deploy_step(pipeline, "promote", max_behind=max_behind,
                                     wait=PROMOTE_GRACE_S))  # fmt: skip
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
        _show(client.deploy_step(pipeline, "cleanup"))
    except (CqrsError, KeyboardInterrupt) as exc:
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        raise CqrsError(
            f"{why}\n{green or state['active']} serves; {blue} is still draining: `cqrs deploy "
            f"cleanup {pipeline}` to retire it (or `cqrs deploy rollback {pipeline}`); the next "
            f"deploy is refused until then"
        ) from None


def _undo(client: RuntimeClient, pipeline: str, green: str, blue: str, cause: CqrsError) -> None:
    """Take green out again after a failed await or promote, and say what is left."""
    try:
        client.deploy_step(pipeline, "abort")
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
@click.pass_obj
def deploy_init(settings: Settings, spec: Path) -> None:
    """Start green from the earliest offset, tailing, beside blue."""
    _show(_steps(settings).deploy_init(spec.read_text(), str(spec)))


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
        _await(_steps(settings), pipeline, max_behind, timeout)
    except NotCaughtUp as exc:
        raise CqrsError(
            f"{exc}; it keeps running: await again, or `cqrs deploy abort {pipeline}`"
        ) from None


def _await(client: RuntimeClient, pipeline: str, max_behind: float, timeout: float) -> None:
    """Until the oldest command green has not applied has been on the log at most
    `max_behind` seconds, with a progress bar of the offsets it has done and that time."""
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("behind {task.fields[behind]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = None
        while True:
            state = client.deploy_state(pipeline)
            if state["green"] is None:
                raise CqrsError(f"{pipeline} has no deployment in flight")
            status, late = state["green_status"], state["green_behind_s"]
            if task is None:
                task = bar.add_task(f"{state['green']} catching up", total=1, behind="")
            said = "?" if late is None else f"{late:,.1f}s"  # None: the broker did not say
            bar.update(task, completed=status["done"], total=max(1, status["total"]),
                       behind=said)  # fmt: skip
            if state["green_failed"] is not None:
                raise CqrsError(f"{state['green']} failed: {state['green_failed']}")
            if late is not None and late <= max_behind:
                break
            if time.monotonic() > deadline:
                raise NotCaughtUp(
                    f"{state['green']} is still {said} behind the head of the log after "
                    f"{timeout:.0f}s (the gate is {max_behind:g}s)"
                )
            time.sleep(1.0)
    console.print(f"{state['green']} caught up ({late:.1f}s behind the head of the log)")


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
    client = _steps(settings)
    if not force and client.deploy_state(pipeline)["green"] is not None:
        try:
            _await(client, pipeline, max_behind, timeout)
        except NotCaughtUp as exc:
            raise CqrsError(
                f"{exc}; not promoted: it keeps running (promote again, or `cqrs deploy abort "
                f"{pipeline}`)"
            ) from None
    _show(client.deploy_step(pipeline, "promote", force=force, max_behind=max_behind,
                             wait=0.0 if force else PROMOTE_GRACE_S))  # fmt: skip


@deploy.command("rollback")
@click.argument("pipeline")
@click.pass_obj
def deploy_rollback(settings: Settings, pipeline: str) -> None:
    """Switch back to blue while it still runs."""
    _show(_steps(settings).deploy_step(pipeline, "rollback"))


@deploy.command("abort")
@click.argument("pipeline")
@click.pass_obj
def deploy_abort(settings: Settings, pipeline: str) -> None:
    """Drop green; blue is untouched."""
    _show(_steps(settings).deploy_step(pipeline, "abort"))


@deploy.command("cleanup")
@click.argument("pipeline")
@click.pass_obj
def deploy_cleanup(settings: Settings, pipeline: str) -> None:
    """After the rollback window: stop blue and drop its database."""
    _show(_steps(settings).deploy_step(pipeline, "cleanup"))


@deploy.command("history")
@click.argument("pipeline")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def deploy_history(settings: Settings, pipeline: str, as_json: bool) -> None:
    """Who was active when, and what changed between spec versions."""
    history = _steps(settings).deploy_history(pipeline)
    if as_json:
        click.echo(json.dumps(history))
        return
    for version in history["versions"]:
        changes = "; ".join(version["changes"]) or "first version"
        out.print(f"[bold]{version['name']}[/bold] ({version['stage'] or '-'}): {changes}")
    for event in history["events"]:
        out.print(f"  {event['at']}  {event['name']:<16} {event['event']:<12} {event['detail']}")


# --- the DLQ ---------------------------------------------------------------------------------


@cli.group()
def dlq() -> None:
    """The dead-letter topic: what the pipelines refused, and why."""


def _letters(
    settings: Settings, start: int, follow: bool, reason: str | None, repeats: bool = False
) -> Iterator[DeadLetter]:
    """Dead letters from `start` on, each rejection once unless `repeats` (a deployment that
    restarted redid its last epoch, rejects included)."""
    brokers = resolve_brokers(settings)
    # Repeats are recognised from the DLQ's start, whatever `start` shows.
    letters = read_dead_letters(brokers, dlq_topic(settings.topic), 0, None, follow)
    for letter in letters if repeats else first_of_each(letters):
        if letter.offset >= start and (reason is None or letter.reason == reason):
            yield letter


@dlq.command("tail")
@click.option("--from", "start", default=0, show_default=True, help="first DLQ offset")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many")
@click.option("--follow", is_flag=True, help="keep waiting for new ones")
@click.option("--reason", help="only this reason (not_json, late, …)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--all", "repeats", is_flag=True, help="also repeats of a rejection (restarts)")
@click.pass_obj
def dlq_tail(
    settings: Settings,
    start: int,
    limit: int | None,
    follow: bool,
    reason: str | None,
    as_json: bool,
    repeats: bool,
) -> None:
    """Show rejected records with their reason and origin, each rejection once."""
    letters = _letters(settings, start, follow, reason, repeats)
    for letter in itertools.islice(letters, limit):
        if as_json:
            doc = {
                "offset": letter.offset,
                "key": letter.key.decode(errors="replace") if letter.key is not None else None,
                "headers": letter.headers,
                "value": (letter.value or b"")[:2000].decode(errors="replace"),
            }
            click.echo(json.dumps(doc))
            continue
        h = letter.headers
        preview = repr((letter.value or b"")[:60])
        out.print(
            f"[bold]{letter.offset}[/bold] {h.get('reason')} at {h.get('step')} "
            f"({h.get('deployment')}, {h.get('source.topic')}[{h.get('source.partition')}]"
            f"@{h.get('source.offset')}): {h.get('detail', '')[:160]}\n    {preview}",
            highlight=False,
            soft_wrap=True,
        )


@dlq.command("replay")
@click.option("--offset", "offsets", multiple=True, type=int, help="a DLQ offset (repeatable)")
@click.option("--reason", help="every record with this reason")
@click.option("--all", "everything", is_flag=True, help="every record in the DLQ")
@click.option("--dry-run", is_flag=True, help="show what would be replayed")
@click.pass_obj
def dlq_replay(
    settings: Settings,
    offsets: tuple[int, ...],
    reason: str | None,
    everything: bool,
    dry_run: bool,
) -> None:
    """Re-produce chosen records, unchanged, to the command log (after fixing the cause); each
    rejection once, whatever repeats of it the DLQ holds."""
    if not (offsets or reason or everything):
        raise click.UsageError("choose records: --offset N (repeatable), --reason R or --all")
    wanted = set(offsets)
    every = list(_letters(settings, 0, False, reason, repeats=True))
    missing = wanted - {letter.offset for letter in every}
    if missing:
        raise CqrsError(f"no DLQ record at offset(s) {sorted(missing)}; nothing was replayed")
    # An offset stands for its rejection, which is replayed once (as its first dead letter).
    chosen = {x.rejection for x in every if everything or reason or x.offset in wanted}
    letters = [x for x in first_of_each(every) if x.rejection in chosen]
    for letter in letters:
        console.print(
            f"{'would replay' if dry_run else 'replay'} {letter.offset} ({letter.reason})"
        )
    if dry_run:
        return
    acked = replay_letters(resolve_brokers(settings), settings.topic, letters)
    console.print(f"{acked} of {len(letters)} records back on {settings.topic}")
    if acked != len(letters):
        raise CqrsError("some records were not acknowledged by the broker")


# --- the demo ---------------------------------------------------------------------------------

DEMO_QUERY = (
    "SELECT status, count() AS orders, round(sum(amount), 2) AS amount "
    "FROM {views}.orders GROUP BY status ORDER BY status"
)


@cli.command()
@click.option("--rate", default=500.0, show_default=True, help="commands per second")
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def demo(settings: Settings, rate: float, seed: int) -> None:
    """Start the broker, produce orders, run the orders pipeline, show live counts (Ctrl-C)."""
    launcher = None  # set when the demo starts the local broker, so it stops it again
    if settings.brokers:
        brokers = settings.brokers
    else:
        found = local_broker(settings)
        if found.status() is None:
            launcher = found
            if not found.dist.is_cached:
                console.print("fetching Apache Kafka from Maven Central (first run only)…")
        brokers = found.start().bootstrap
    console.print(f"broker {brokers}")
    with CommandLog(brokers, settings.topic) as log:
        log.ensure(6)
    stop = threading.Event()
    stats: dict[str, LoadStats] = {}
    producer = CommandProducer(brokers, settings.topic)
    generator = OrderGenerator(seed=seed, start_ms=int(time.time() * 1000), step_ms=1000.0 / rate)

    def produce_forever() -> None:
        produce_load(
            producer,
            generator,
            rate=rate,
            should_stop=stop.is_set,
            on_progress=lambda s: stats.__setitem__("load", s),
        )

    feeder = threading.Thread(target=produce_forever, name="demo-producer", daemon=True)
    try:
        with _graceful_sigterm(), Runtime(settings, brokers) as runtime:
            name = runtime.ensure(load_pipeline(DEMO_SPEC), DEMO_SPEC.read_text()).name
            feeder.start()
            console.print(f"{name} running; API {runtime.url}; Ctrl-C to stop")
            console.print(f"dashboard: {runtime.dashboard_url}", highlight=False, soft_wrap=True)
            sql = DEMO_QUERY.format(views=settings.query_database)
            ended = None
            try:
                with Live(console=out, refresh_per_second=1) as live:
                    while ended is None:
                        live.update(_demo_view(runtime.query(sql), stats.get("load")))
                        time.sleep(2.0)
                        ended = runtime.settled(name)
            except KeyboardInterrupt:
                console.print("stopping…")
            stop.set()
            feeder.join(30)
        if ended is not None:
            _report_end(ended, name)
    finally:
        stop.set()
        producer.close()
        if launcher is not None:
            launcher.stop()


def _demo_view(result: QueryResult, load: LoadStats | None) -> RichTable:
    table = _rich_table(result)
    if load is not None:
        table.caption = f"produced {load.sent:,} commands at {load.rate:,.0f}/s"
    table.title = "orders by status (query.orders, refreshed every 2 s)"
    return table


# --- plumbing ---------------------------------------------------------------------------------


class _graceful_sigterm:
    """Turns SIGTERM into KeyboardInterrupt, so `kill` stops as gracefully as Ctrl-C."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._previous)

    @staticmethod
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt


def main() -> None:
    limit_malloc_arenas()
    try:
        cli(standalone_mode=False)
    except CqrsError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
