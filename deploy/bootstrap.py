"""Wires settings to the things they name, in one place: the broker to use and the local
broker launcher, and the `Service` an entrypoint calls.

Where the service is depends on who holds the data dir. A runtime that holds it (with embedded
ClickHouse, the only process that may open the store) is asked over HTTP (`connect`); without
one, a command that only reads opens the store itself (`service`), and a command that runs
deployments opens a runtime in its own process (`open_runtime`; `serve`, `run` and `demo`
make theirs with their own options).

Importing this module is cheap (the standard library, the settings, the HTTP client), so a
command that asks a running runtime loads none of the machinery it would run without one: the
store service and the runtime (Bytewax, the ClickHouse clients, kafka-python, the HTTP server)
are imported by the function that makes one, when it is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import ConfigError
from deploy.broker import KafkaDistribution, LocalBroker
from deploy.client import RuntimeClient, connect
from deploy.runtime_file import find_runtime
from deploy.service import Service
from deploy.settings import Settings
from examples.orders import SPECS

if TYPE_CHECKING:
    from deploy.runtime import Runtime

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


def held_runtime(settings: Settings) -> RuntimeClient | None:
    """The runtime that holds the embedded store, over HTTP (waiting for one that is
    starting); None when none runs, and with a ClickHouse server, which every process reads
    itself."""
    held = find_runtime(settings.data_dir) if settings.embedded else None
    return connect(settings, held.url) if held is not None else None


def service(settings: Settings) -> Service:
    """For commands that read (`status`, `query`): the runtime that holds the store, else the
    store read in this process."""
    held = held_runtime(settings)
    if held is not None:
        return held
    from deploy.offline import StoreService

    return StoreService(settings, lambda: resolve_brokers(settings))


def runtime_service(settings: Settings) -> RuntimeClient:
    """For commands that change deployments (`start`, `stop`, `skip`, `deploy …`): the runtime
    of the data dir, which must be running."""
    held = find_runtime(settings.data_dir)
    if held is None:
        raise ConfigError(
            f"no runtime runs on data dir {settings.data_dir}; start one with `cqrs serve`"
        )
    return connect(settings, held.url)


def open_runtime(settings: Settings) -> Runtime:
    """A runtime in this process (a `replay` with none running), not opened yet: `with
    open_runtime(settings) as runtime: …`."""
    from deploy.runtime import Runtime

    return Runtime(settings, resolve_brokers(settings))
