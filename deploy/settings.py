"""The one settings object: `CQRS_*` environment variables, overridden by CLI flags.

Nothing else in the project reads the environment; everything that needs a setting is handed
this object (or a value from it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.schema import is_ident

ENV_PREFIX = "CQRS_"
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,200}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_REF = re.compile(_MODULE.pattern + r":[A-Za-z_][A-Za-z0-9_]*")
_DSN_SCHEMES = ("chdb://", "http://", "https://")


@dataclass(frozen=True)
class Settings:
    """Where the data lives, which broker and ClickHouse to use, and what the runtime binds.

    `brokers` None means the local broker started from `data_dir`; `clickhouse` None means the
    embedded engine at `<data_dir>/clickhouse`.
    """

    data_dir: Path = Path(".data")
    cache_dir: Path = Path(".cache")
    brokers: str | None = None
    clickhouse: str | None = None
    #: with a ClickHouse server: the DSN of the read-only user the query path uses
    clickhouse_reader: str | None = None
    #: with ClickHouse servers: the cluster (in their `remote_servers`) every table, view and
    #: database is made on, `ON CLUSTER`, replicated and sharded (README, "A ClickHouse server")
    clickhouse_cluster: str | None = None
    topic: str = "commands"
    http_host: str = "127.0.0.1"
    #: the runtime's API port; 0 picks any free one (the runtime file says which)
    http_port: int = 8765
    #: the API's bearer token; None: the one in `<data dir>/token` (made at the first start)
    token: str | None = None
    #: Host names (`name` or `name:port`) the API answers besides loopback and its own address
    allowed_hosts: tuple[str, ...] = ()
    #: modules (and their submodules) a spec sent to the runtime may name, besides the
    #: project's own packages
    allow_modules: tuple[str, ...] = ()
    #: `module:ATTR` of the domain's dashboard panels (a `core.panels.Panels`); None: the
    #: dashboard shows the runtime's health only
    panels: str | None = None
    #: seconds a client may take to send a request's head or body
    http_read_timeout: float = 10.0
    #: seconds a query of the query path may run
    query_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not _TOPIC.fullmatch(self.topic):
            raise ConfigError(
                f"CQRS_TOPIC={self.topic!r} is not a valid topic name: use letters, digits, "
                f"'.', '_' or '-' (at most 200)"
            )
        if self.clickhouse is not None and not self.clickhouse.startswith(_DSN_SCHEMES):
            raise ConfigError(
                f"CQRS_CLICKHOUSE={self.clickhouse!r} is not a DSN this runtime can use: give "
                f"chdb:///path/to/dir (embedded) or http(s)://host:8123 (a ClickHouse server)"
            )
        if self.clickhouse_reader is not None and not self.clickhouse_reader.startswith(
            _DSN_SCHEMES[1:]
        ):
            raise ConfigError(
                f"CQRS_CLICKHOUSE_READER={self.clickhouse_reader!r} must be the http(s):// DSN of "
                f"a read-only ClickHouse user (embedded stores need none)"
            )
        if self.clickhouse_cluster is not None:
            if not is_ident(self.clickhouse_cluster):
                raise ConfigError(
                    f"CQRS_CLICKHOUSE_CLUSTER={self.clickhouse_cluster!r} is not a cluster name "
                    f"this runtime can use: letters, digits and '_', starting with a letter "
                    f"(rename it in the servers' remote_servers)"
                )
            if self.clickhouse is None or self.clickhouse.startswith("chdb://"):
                raise ConfigError(
                    f"CQRS_CLICKHOUSE_CLUSTER={self.clickhouse_cluster!r} needs a ClickHouse "
                    f"server: set CQRS_CLICKHOUSE=http(s)://host:8123 (the embedded engine is one "
                    f"host), or unset the cluster"
                )
        if not 0 <= self.http_port < 65536:
            raise ConfigError(
                f"CQRS_HTTP_PORT={self.http_port} must be a port from 1 to 65535 (0: any free port)"
            )
        for module in self.allow_modules:
            if not _MODULE.fullmatch(module):
                raise ConfigError(
                    f"CQRS_ALLOW_MODULES / --allow-module: {module!r} is not a module name "
                    f"(dotted Python identifiers, like mycompany.filters)"
                )
        if self.panels is not None and not _REF.fullmatch(self.panels):
            raise ConfigError(
                f"CQRS_PANELS / --panels: {self.panels!r} is not a module:ATTR reference (like "
                f"examples.orders.dashboard:PANELS, the orders demo's panels)"
            )
        for name, value in (("HTTP_READ_TIMEOUT", self.http_read_timeout),
                            ("QUERY_TIMEOUT", self.query_timeout)):  # fmt: skip
            if not 0 < value <= 3600:
                raise ConfigError(f"CQRS_{name}={value} must be seconds, above 0 and at most 3600")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `CQRS_<FIELD>` from `env` (the process environment by default); `overrides`
        that are not None win, as CLI flags should."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse or f"chdb://{self.data_dir.resolve() / 'clickhouse'}"

    @property
    def reader_dsn(self) -> str:
        """Where the query path reads: the read-only user's DSN with a server, else the store."""
        return self.clickhouse_reader or self.clickhouse_dsn

    @property
    def token_file(self) -> Path:
        return self.data_dir / "token"

    @property
    def embedded(self) -> bool:
        """True when ClickHouse runs inside this process (chDB): one process per data dir."""
        return self.clickhouse_dsn.startswith("chdb://")

    @property
    def broker_home(self) -> Path:
        return self.data_dir / "broker"

    @property
    def recovery_dir(self) -> Path:
        return self.data_dir / "recovery"

    #: the database of stable views that dashboards and `cqrs query` read
    query_database: str = "query"
    #: the database of the deployment registry and its history
    control_database: str = "cqrs"


def _coerce(name: str, raw: str) -> Any:
    if name in ("data_dir", "cache_dir"):
        return Path(raw)
    if name == "http_port":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"CQRS_HTTP_PORT={raw!r} is not a port number") from None
    if name in ("http_read_timeout", "query_timeout"):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"CQRS_{name.upper()}={raw!r} is not a number of seconds") from None
    if name in ("allowed_hosts", "allow_modules"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
