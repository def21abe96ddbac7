"""Wires settings to the things they name, in one place: the broker to use and the local
broker launcher, and the `Service` an entrypoint calls.

Where the service is depends on who holds the data dir. A runtime that holds it (with embedded
ClickHouse, the only process that may open the store) is asked over HTTP (`connect`); without
one, a command that only reads opens the store itself (`service`), and a command that runs
deployments opens a runtime in its own process (`open_runtime`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import ConfigError
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.client import RuntimeClient, connect
from deploy.offline import StoreService
from deploy.runtime import Runtime
from deploy.runtime_file import find_runtime
from deploy.service import Service
from deploy.settings import Settings
from examples.orders import SPECS

#: the demo pipeline shipped with the package (the orders example)
DEMO_SPEC = SPECS / "orders.yaml"


def local_broker(settings: Settings, port: int | None = None) -> LocalBroker:
    return LocalBroker(settings.broker_home, KafkaDistribution(settings.cache_dir), port=port)


def resolve_brokers(settings: Settings) -> str:
    """`CQRS_BROKERS` if set, else the local broker of this data dir, which must be running."""
    if settings.brokers:
        return settings.brokers
    state = local_broker(settings).status()
    if state is None:
        raise ConfigError(
            f"no broker: start the local one with `cqrs broker start` (data dir "
            f"{settings.data_dir}), or set CQRS_BROKERS=host:port to use a running one"
        )
    return state.bootstrap


def service(settings: Settings) -> Service:
    """For commands that read (`status`, `query`): the runtime, when one holds the embedded
    store (waiting for one that is starting), else the store read in this process. With a
    ClickHouse server every process reads the store itself."""
    held = find_runtime(settings.data_dir) if settings.embedded else None
    if held is not None:
        return connect(settings, held.url)
    return StoreService(settings, lambda: resolve_brokers(settings))


def runtime_service(settings: Settings) -> RuntimeClient:
    """For commands that change deployments (`start`, `stop`, `skip`, `deploy …`, `replay
    --detach`): the runtime of the data dir, which must be running."""
    held = find_runtime(settings.data_dir)
    if held is None:
        raise ConfigError(
            f"no runtime runs on data dir {settings.data_dir}; start one with `cqrs serve`"
        )
    return connect(settings, held.url)


def open_runtime(settings: Settings) -> Runtime:
    """A runtime in this process (`serve`, `run`, `demo`, a `replay` with none running), not
    opened yet: `with open_runtime(settings) as runtime: …`."""
    return Runtime(settings, resolve_brokers(settings))


@contextmanager
def runtime_or_local(settings: Settings) -> Iterator[Service]:
    """For `replay`: the runtime that holds the embedded store if one runs, else a runtime
    opened in this process for the block (closed after it: its deployments stop with it)."""
    held = find_runtime(settings.data_dir) if settings.embedded else None
    if held is not None:
        yield connect(settings, held.url)
        return
    with open_runtime(settings) as runtime:
        yield runtime
