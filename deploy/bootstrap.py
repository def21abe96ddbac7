"""Wires settings to the things they name: the broker to use and the local broker launcher."""

from __future__ import annotations

from core.errors import ConfigError
from deploy.broker import KafkaDistribution, LocalBroker
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
