from pathlib import Path

import pytest

from core.errors import ConfigError
from deploy.settings import Settings


def test_defaults_are_embedded_and_local():
    s = Settings.from_env({})
    assert s.brokers is None
    assert s.topic == "commands"
    assert s.embedded
    assert s.clickhouse_dsn == f"chdb://{Path('.data').resolve() / 'clickhouse'}"


def test_environment_then_flags():
    env = {"CQRS_TOPIC": "orders", "CQRS_DATA_DIR": "/tmp/x", "CQRS_HTTP_PORT": "9000"}
    s = Settings.from_env(env, topic="other", brokers=None)
    assert s.topic == "other"  # the flag wins
    assert s.data_dir == Path("/tmp/x")
    assert s.http_port == 9000
    assert s.brokers is None  # a flag left unset does not override


def test_server_dsn_is_not_embedded():
    s = Settings.from_env({"CQRS_CLICKHOUSE": "http://localhost:8123"})
    assert not s.embedded


def test_a_cluster_name_with_a_server():
    env = {"CQRS_CLICKHOUSE": "http://ch:8123", "CQRS_CLICKHOUSE_CLUSTER": "main"}
    assert Settings.from_env(env).clickhouse_cluster == "main"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CQRS_TOPIC": "bad topic!"}, "CQRS_TOPIC='bad topic!' is not a valid topic name"),
        ({"CQRS_CLICKHOUSE": "mysql://x"}, "give chdb:///path/to/dir"),
        ({"CQRS_HTTP_PORT": "eighty"}, "CQRS_HTTP_PORT='eighty' is not a port number"),
        ({"CQRS_HTTP_PORT": "70000"}, "must be a port from 1 to 65535"),
        ({"CQRS_ALLOW_MODULES": "ok.mod, ../evil"}, "'../evil' is not a module name"),
        ({"CQRS_QUERY_TIMEOUT": "0"}, "CQRS_QUERY_TIMEOUT=0.0 must be seconds"),
        ({"CQRS_CLICKHOUSE_READER": "chdb:///x"}, "must be the http(s):// DSN"),
        ({"CQRS_CLICKHOUSE_CLUSTER": "main"}, "needs a ClickHouse server: set CQRS_CLICKHOUSE"),
        (
            {"CQRS_CLICKHOUSE": "http://ch:8123", "CQRS_CLICKHOUSE_CLUSTER": "a;b"},
            "CQRS_CLICKHOUSE_CLUSTER='a;b' is not a cluster name",
        ),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(env, message):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_lists_are_comma_separated():
    settings = Settings.from_env(
        {"CQRS_ALLOWED_HOSTS": "runtime, cqrs.example:443", "CQRS_ALLOW_MODULES": "acme.filters"}
    )
    assert settings.allowed_hosts == ("runtime", "cqrs.example:443")
    assert settings.allow_modules == ("acme.filters",)
